"""The Open Inference Protocol (KServe v2 / Triton HTTP), JSON tensors.

Requests carry `inputs: [{name, shape, datatype, data}]`; data is row-major,
flat or nested. Responses carry `outputs` in the same form.
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np

from mlship.model.feeds import input_dtype, missing_mask, missing_reason
from mlship.model.signature import Signature, TensorSpec
from mlship.serve.binary import BinaryTail, output_bytes, tensor_from_bytes
from mlship.serve.errors import RequestError

# A request id is echoed in the X-Request-ID response header (and joins logs):
# visible ASCII only, so no CR/LF can split the header and no space or byte
# beyond ASCII is changed on the way; 256 characters fit any proxy's buffer.
MAX_ID_LENGTH = 256
_ID = re.compile(r"[\x21-\x7e]{1,%d}" % MAX_ID_LENGTH)

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


def checked_id(value: Any, field: str) -> str | None:
    """A client's request id, safe to echo in a header; None when absent or "".

    Anything else than 1 to 256 visible ASCII characters is refused (400)
    rather than cleaned up: a changed id would no longer join the client's
    own records."""
    if value is None or value == "":
        return None
    if type(value) is int and 0 <= value < 10**20:  # clients that number requests: 0 -> "0"
        return str(value)
    if isinstance(value, str) and _ID.fullmatch(value):
        return value
    shown = ascii(value) if isinstance(value, str) else f"a JSON {type(value).__name__}"
    raise RequestError(400, f"{field} must be a string of 1 to {MAX_ID_LENGTH} printable ASCII characters without "
                            f"spaces (it is echoed in the X-Request-ID header); got {shown[:80]}")


def decode_inputs(body: Any, signature: Signature, *, allow_missing: bool = False,
                  binary: memoryview | None = None) -> dict[str, np.ndarray]:
    """Validate an infer request's `inputs` against the signature and build
    feeds; missing values follow mlship.model.feeds' rule.

    `binary` is the body after its JSON header (binary tensor extension):
    inputs with `parameters.binary_data_size` read from it, in order, and it
    must be used up exactly."""
    if not isinstance(body, dict) or not isinstance(body.get("inputs"), list):
        raise RequestError(400, "request body must be a JSON object with an 'inputs' list")
    specs = {s.name: s for s in signature.inputs}
    tail = BinaryTail(binary if binary is not None else memoryview(b""))
    feeds: dict[str, np.ndarray] = {}
    for i, tensor in enumerate(body["inputs"]):
        if not isinstance(tensor, dict):
            raise RequestError(400, f"inputs[{i}] must be an object with name, shape, datatype and data")
        name = tensor.get("name")
        if name not in specs:
            raise RequestError(400, f"unknown input {name!r}; the model takes {', '.join(specs)}")
        if name in feeds:
            raise RequestError(400, f"input {name!r} appears twice")
        names = signature.feature_names if len(specs) == 1 else None
        feeds[name] = _decode_tensor(tensor, specs[name], allow_missing, names, tail)
    tail.check_used()
    missing = [n for n in specs if n not in feeds]
    if missing:
        raise RequestError(400, f"missing input{'s' if len(missing) > 1 else ''} {', '.join(map(repr, missing))}")
    return feeds


def _decode_tensor(tensor: dict[str, Any], spec: TensorSpec, allow_missing: bool,
                   feature_names: list[str] | None, tail: BinaryTail) -> np.ndarray:
    name = spec.name
    shape, datatype = tensor.get("shape"), tensor.get("datatype")
    if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
        raise RequestError(400, f"input {name!r}: 'shape' must be a list of non-negative integers")
    expected = DATATYPES.get(spec.dtype or "")
    if datatype != expected:
        raise RequestError(400, f"input {name!r}: datatype {datatype!r} does not match the model's {expected}")
    dtype = input_dtype(spec)
    parameters = tensor.get("parameters")
    if isinstance(parameters, dict) and "binary_data_size" in parameters:
        if tensor.get("data") is not None:
            raise RequestError(400, f"input {name!r}: has both 'data' and binary_data_size; send one")
        chunk = tail.take(name, parameters["binary_data_size"])
        array = tensor_from_bytes(name, chunk, shape, datatype, dtype)
    else:
        array = _json_tensor(name, tensor.get("data"), shape, datatype, dtype, allow_missing, feature_names)
    _check_shape(name, array.shape, spec)
    if dtype.kind == "f":  # null and "NaN" are NaN by now
        _refuse_missing(name, np.isnan(array).ravel(), shape, dtype, allow_missing, feature_names)
    return array


def _json_tensor(name: str, data: Any, shape: list[int], datatype: str, dtype: np.dtype, allow_missing: bool,
                 feature_names: list[str] | None) -> np.ndarray:
    """An input's array from its JSON `data` (flat or nested, row-major)."""
    if data is None:
        raise RequestError(400, f"input {name!r}: 'data' is missing")
    count = math.prod(shape)
    if dtype.kind != "f":
        # Casting would hide a missing value (null becomes False for BOOL, "NaN"
        # True), so look at the values as sent; strings keep the text "NaN".
        try:
            raw = np.asarray(data, dtype=object)
        except ValueError:
            raw = None  # ragged: the cast below names it
        if raw is not None and raw.size == count:
            _refuse_missing(name, missing_mask(raw.ravel(), text=dtype.kind != "O"), shape, dtype, allow_missing,
                            feature_names)
    try:
        array = np.asarray(data, dtype=dtype)
    except (ValueError, TypeError):
        raise RequestError(400, f"input {name!r}: data cannot be read as {datatype}") from None
    if array.size != count:
        raise RequestError(400, f"input {name!r}: shape {shape} needs {count} values, data has {array.size}")
    return array.reshape(shape)


def _refuse_missing(name: str, mask: np.ndarray, shape: list[int], dtype: np.dtype, allow_missing: bool,
                    feature_names: list[str] | None) -> None:
    """400 naming the input, row (1-based, as in predict and /predict) and
    feature of the first missing value the rule does not let through."""
    reason = missing_reason(dtype, allow_missing)
    hits = np.flatnonzero(mask) if reason is not None else ()
    if not len(hits):
        return
    where = [int(i) for i in np.unravel_index(int(hits[0]), shape)] if shape else []
    place = f"input {name!r}"
    if where:
        place += f" row {where[0] + 1}"
    if len(where) == 2 and feature_names and len(feature_names) == shape[1]:
        place += f", feature {feature_names[where[1]]!r}"
    elif len(where) > 1:
        place += f", index {where}"
    raise RequestError(400, f"{place}: {reason}")


def _check_shape(name: str, shape: tuple[int, ...], spec: TensorSpec) -> None:
    if spec.shape is None:
        return
    if len(shape) != len(spec.shape):
        raise RequestError(400, f"input {name!r}: shape {list(shape)} does not fit the model's {spec.shape_text()}")
    for got, want in zip(shape, spec.shape):
        if isinstance(want, int) and want > 0 and got != want:
            raise RequestError(400, f"input {name!r}: shape {list(shape)} does not fit the model's {spec.shape_text()}")


def encode_outputs(outputs: dict[str, Any], wanted: dict[str, bool] | None = None) -> tuple[list[dict[str, Any]], bytes]:
    """Model outputs as protocol tensors, and the binary tail of those asked
    for as binary (`wanted`: name -> binary; all as JSON when None).

    JSON data is flat and row-major; a binary output carries
    `parameters.binary_data_size` instead, its bytes in the tail in order."""
    encoded, tail = [], []
    for name, value in outputs.items():
        if wanted is not None and name not in wanted:
            continue
        array = np.asarray(value)
        kind = "string" if array.dtype.kind in "OUS" else array.dtype.name
        datatype = DATATYPES.get(kind, "BYTES")
        tensor: dict[str, Any] = {"name": name, "datatype": datatype, "shape": list(array.shape)}
        if wanted is not None and wanted[name]:
            tail.append(output_bytes(array, datatype))
            tensor["parameters"] = {"binary_data_size": len(tail[-1])}
        else:
            tensor["data"] = array.astype(str).ravel().tolist() if kind == "string" else array.ravel()
        encoded.append(tensor)
    return encoded, b"".join(tail)


def requested_outputs(body: dict[str, Any], names: list[str]) -> dict[str, bool] | None:
    """The outputs a request asks for, each with whether it goes back as
    binary; None for all of them as JSON. Unknown names are errors.

    An output's `parameters.binary_data` decides; without it the request's
    `parameters.binary_data_output` (what tritonclient sends when it names no
    outputs)."""
    spec = body.get("outputs")
    default = bool(_flag(body.get("parameters"), "binary_data_output", "the request"))
    if spec is None:
        return dict.fromkeys(names, True) if default else None
    if not isinstance(spec, list) or not all(isinstance(o, dict) and "name" in o for o in spec):
        raise RequestError(400, "'outputs' must be a list of objects with a name")
    unknown = [o["name"] for o in spec if o["name"] not in names]
    if unknown:
        raise RequestError(400, f"unknown output {unknown[0]!r}; the model returns {', '.join(names)}")
    wanted = {}
    for output in spec:
        parameters = output.get("parameters")
        if isinstance(parameters, dict) and parameters.get("classification"):
            raise RequestError(400, f"output {output['name']!r}: the classification extension is not supported")
        binary = _flag(parameters, "binary_data", f"output {output['name']!r}")
        wanted[output["name"]] = default if binary is None else binary
    return wanted


def _flag(parameters: Any, key: str, owner: str) -> bool | None:
    """A boolean parameter (None when absent); anything else is refused."""
    if parameters is None:
        return None
    if not isinstance(parameters, dict):
        raise RequestError(400, f"{owner}: 'parameters' must be an object")
    value = parameters.get(key)
    if value is not None and not isinstance(value, bool):
        raise RequestError(400, f"{owner}: parameter {key} must be true or false, got {str(value)[:40]!r}")
    return value
