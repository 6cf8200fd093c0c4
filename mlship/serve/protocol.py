"""The Open Inference Protocol (KServe v2 / Triton HTTP), JSON tensors.

Requests carry `inputs: [{name, shape, datatype, data}]`; data is row-major,
flat or nested. Responses carry `outputs` in the same form.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mlship.model.signature import Signature, TensorSpec
from mlship.serve.errors import RequestError

# NumPy dtype name -> protocol datatype
DATATYPES = {
    "bool": "BOOL", "uint8": "UINT8", "uint16": "UINT16", "uint32": "UINT32", "uint64": "UINT64",
    "int8": "INT8", "int16": "INT16", "int32": "INT32", "int64": "INT64",
    "float16": "FP16", "float32": "FP32", "float64": "FP64", "string": "BYTES", "bfloat16": "BF16",
}
NUMPY = {v: k for k, v in DATATYPES.items()}


def tensor_metadata(spec: TensorSpec) -> dict[str, Any]:
    """`{name, datatype, shape}` with -1 for dynamic axes."""
    shape = [d if isinstance(d, int) else -1 for d in (spec.shape or [])]
    return {"name": spec.name, "datatype": DATATYPES.get(spec.dtype or "", "BYTES"), "shape": shape}


def decode_inputs(body: Any, signature: Signature) -> dict[str, np.ndarray]:
    """Validate an infer request's `inputs` against the signature and build feeds."""
    if not isinstance(body, dict) or not isinstance(body.get("inputs"), list):
        raise RequestError(400, "request body must be a JSON object with an 'inputs' list")
    specs = {s.name: s for s in signature.inputs}
    feeds: dict[str, np.ndarray] = {}
    for i, tensor in enumerate(body["inputs"]):
        if not isinstance(tensor, dict):
            raise RequestError(400, f"inputs[{i}] must be an object with name, shape, datatype and data")
        name = tensor.get("name")
        if name not in specs:
            raise RequestError(400, f"unknown input {name!r}; the model takes {', '.join(specs)}")
        if name in feeds:
            raise RequestError(400, f"input {name!r} appears twice")
        feeds[name] = _decode_tensor(tensor, specs[name])
    missing = [n for n in specs if n not in feeds]
    if missing:
        raise RequestError(400, f"missing input{'s' if len(missing) > 1 else ''} {', '.join(map(repr, missing))}")
    return feeds


def _decode_tensor(tensor: dict[str, Any], spec: TensorSpec) -> np.ndarray:
    name = spec.name
    shape, datatype, data = tensor.get("shape"), tensor.get("datatype"), tensor.get("data")
    if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
        raise RequestError(400, f"input {name!r}: 'shape' must be a list of non-negative integers")
    expected = DATATYPES.get(spec.dtype or "")
    if datatype != expected:
        raise RequestError(400, f"input {name!r}: datatype {datatype!r} does not match the model's {expected}")
    if data is None:
        raise RequestError(400, f"input {name!r}: 'data' is missing")
    dtype = object if spec.dtype == "string" else spec.dtype
    try:
        array = np.asarray(data, dtype=dtype)
    except (ValueError, TypeError):
        raise RequestError(400, f"input {name!r}: data cannot be read as {datatype}") from None
    count = int(np.prod(shape)) if shape else 1
    if array.size != count:
        raise RequestError(400, f"input {name!r}: shape {shape} needs {count} values, data has {array.size}")
    array = array.reshape(shape)
    _check_shape(name, array.shape, spec)
    return array


def _check_shape(name: str, shape: tuple[int, ...], spec: TensorSpec) -> None:
    if spec.shape is None:
        return
    if len(shape) != len(spec.shape):
        raise RequestError(400, f"input {name!r}: shape {list(shape)} does not fit the model's {spec.shape_text()}")
    for got, want in zip(shape, spec.shape):
        if isinstance(want, int) and want > 0 and got != want:
            raise RequestError(400, f"input {name!r}: shape {list(shape)} does not fit the model's {spec.shape_text()}")


def encode_outputs(outputs: dict[str, Any], wanted: list[str] | None = None) -> list[dict[str, Any]]:
    """Model outputs as protocol tensors (flat row-major data)."""
    encoded = []
    for name, value in outputs.items():
        if wanted is not None and name not in wanted:
            continue
        array = np.asarray(value)
        kind = "string" if array.dtype.kind in "OUS" else array.dtype.name
        data = array.astype(str).ravel().tolist() if kind == "string" else array.ravel()
        encoded.append({"name": name, "datatype": DATATYPES.get(kind, "BYTES"), "shape": list(array.shape),
                        "data": data})
    return encoded


def requested_outputs(body: dict[str, Any], names: list[str]) -> list[str] | None:
    """The `outputs` a request asks for (all when absent); unknown names are errors."""
    spec = body.get("outputs")
    if spec is None:
        return None
    if not isinstance(spec, list) or not all(isinstance(o, dict) and "name" in o for o in spec):
        raise RequestError(400, "'outputs' must be a list of objects with a name")
    wanted = [o["name"] for o in spec]
    unknown = [n for n in wanted if n not in names]
    if unknown:
        raise RequestError(400, f"unknown output {unknown[0]!r}; the model returns {', '.join(names)}")
    return wanted
