"""The Open Inference Protocol (KServe v2 / Triton HTTP), JSON tensors.

Requests carry `inputs: [{name, shape, datatype, data}]`; data is row-major,
flat or nested. Responses carry `outputs` in the same form.
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np

from mlship import jsonfast
from mlship.model.feeds import input_dtype, missing_mask, missing_reason
from mlship.model.signature import Signature, TensorSpec
from mlship.serve.binary import BinaryTail, output_bytes, tensor_from_bytes, wire_dtype
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
    feeds; missing values follow mlship.model.feeds' rule (see FeedPlan)."""
    return plan_for(FeedPlan, signature, allow_missing).decode(body, binary)


_PLANS: dict[tuple[type, int, bool], tuple[Signature, Any]] = {}


def plan_for(kind: type, signature: Signature, allow_missing: bool) -> Any:
    """`kind(signature, allow_missing)`, made once per served signature (a
    server has one; the signature is kept, so its id stays its own)."""
    key = (kind, id(signature), allow_missing)
    cached = _PLANS.get(key)
    if cached is None:
        if len(_PLANS) > 64:
            _PLANS.clear()
        cached = _PLANS[key] = (signature, kind(signature, allow_missing))
    return cached[1]


_INT = {int}


class _InputPlan:
    """One input's checks, worked out from its spec once."""

    def __init__(self, spec: TensorSpec, feature_names: list[str] | None, allow_missing: bool) -> None:
        self.spec, self.name, self.feature_names = spec, spec.name, feature_names
        self.datatype = DATATYPES.get(spec.dtype or "")
        self.dtype = input_dtype(spec)
        self.float = self.dtype.kind == "f"
        # NaN (null, "NaN") in a float input: refused unless the model takes missing values
        self.refuse_nan = self.float and missing_reason(self.dtype, allow_missing) is not None
        self.fixed = None if spec.shape is None else [d if isinstance(d, int) and d > 0 else None for d in spec.shape]
        self.fixed_dims = [(i, d) for i, d in enumerate(self.fixed or []) if d is not None]
        self.wire = wire_dtype(self.datatype or "", self.dtype)  # its binary tensor data's dtype


class FeedPlan:
    """Decoding infer requests for one model: the per-input checks are
    worked out once, so a request costs its parse, one array and the checks.

    `binary` is the body after its JSON header (binary tensor extension):
    inputs with `parameters.binary_data_size` read from it, in order, and it
    must be used up exactly."""

    def __init__(self, signature: Signature, allow_missing: bool = False) -> None:
        self.allow_missing = allow_missing
        names = signature.feature_names if len(signature.inputs) == 1 else None
        self.inputs = {s.name: _InputPlan(s, names, allow_missing) for s in signature.inputs}
        self.listed = ", ".join(self.inputs)
        # The usual tabular model: one float input [batch, width]. Its plain requests take
        # `_table`, the same checks in a few lines; anything else the full way (and its errors).
        plan = next(iter(self.inputs.values())) if len(self.inputs) == 1 else None
        table = plan is not None and plan.float and plan.fixed is not None and len(plan.fixed) == 2 \
            and plan.fixed[0] is None and plan.fixed[1] is not None
        self._table = (plan, plan.fixed[1]) if table else None

    def decode(self, body: Any, binary: memoryview | None = None) -> dict[str, np.ndarray]:
        tensor = self._table_tensor(body)
        if tensor is not None:
            feeds = self._decode_table(tensor, binary)
            if feeds is not None:
                return feeds
        if not isinstance(body, dict) or not isinstance(body.get("inputs"), list):
            raise RequestError(400, "request body must be a JSON object with an 'inputs' list")
        tail = BinaryTail(binary) if binary is not None else None
        feeds: dict[str, np.ndarray] = {}
        for i, tensor in enumerate(body["inputs"]):
            if not isinstance(tensor, dict):
                raise RequestError(400, f"inputs[{i}] must be an object with name, shape, datatype and data")
            name = tensor.get("name")
            plan = self.inputs.get(name) if isinstance(name, str) else None
            if plan is None:
                raise RequestError(400, f"unknown input {name!r}; the model takes {self.listed}")
            if name in feeds:
                raise RequestError(400, f"input {name!r} appears twice")
            feeds[name] = self._tensor(tensor, plan, tail)
        if tail is not None:
            tail.check_used()
        if len(feeds) != len(self.inputs):
            missing = [n for n in self.inputs if n not in feeds]
            raise RequestError(400, f"missing input{'s' if len(missing) > 1 else ''} "
                                    f"{', '.join(map(repr, missing))}")
        return feeds

    def _decode_table(self, tensor: dict[str, Any], binary: memoryview | None) -> dict[str, np.ndarray] | None:
        """`_tensor`'s checks for a [batch, width] float input sent plainly; None
        when the request needs the full way, which then answers it."""
        plan, width = self._table
        shape = self._table_shape(tensor)
        if shape is None:
            return None
        if binary is None:
            data = tensor.get("data")
            if type(data) is not list or "parameters" in tensor:
                return None
            try:
                array = np.asarray(data, dtype=plan.dtype)
            except (ValueError, TypeError, OverflowError):
                return None
        else:
            if not _binary_sized(tensor, len(binary), shape[0] * width * plan.wire.itemsize):
                return None
            array = np.frombuffer(binary, dtype=plan.wire).astype(plan.dtype)  # native-order, aligned, its own
        if array.size != shape[0] * width or (plan.refuse_nan and _has_nan(array)):
            return None
        return {plan.name: array.reshape(shape)}

    def known_header(self, body: Any, size: int) -> "KnownHeader | None":
        """For a binary request's header that `decode` took the short way with `size`
        bytes of binary data: what decodes the next request with the same header from its
        bytes alone (clients such as tritonclient send the same header for every request
        of a shape). None for any other header."""
        tensor = self._table_tensor(body)
        shape = self._table_shape(tensor) if tensor is not None else None
        if shape is None:
            return None
        plan, width = self._table
        if not _binary_sized(tensor, size, shape[0] * width * plan.wire.itemsize):
            return None
        return KnownHeader(plan, tuple(shape), size)

    def _table_tensor(self, body: Any) -> dict[str, Any] | None:
        """A body's one input tensor when the model takes the short way, else None."""
        if self._table is None or type(body) is not dict:
            return None
        inputs = body.get("inputs")
        if type(inputs) is list and len(inputs) == 1 and type(inputs[0]) is dict:
            return inputs[0]
        return None

    def _table_shape(self, tensor: dict[str, Any]) -> list[int] | None:
        """The tensor's [batch, width] shape when it names the input, its datatype and width; else None."""
        plan, width = self._table
        shape = tensor.get("shape")
        if tensor.get("name") != plan.name or tensor.get("datatype") != plan.datatype or type(shape) is not list \
                or len(shape) != 2 or type(shape[0]) is not int or type(shape[1]) is not int or shape[1] != width \
                or shape[0] < 0:
            return None
        return shape

    def _tensor(self, tensor: dict[str, Any], plan: _InputPlan, tail: BinaryTail | None) -> np.ndarray:
        name = plan.name
        shape, datatype = tensor.get("shape"), tensor.get("datatype")
        if type(shape) is not list or (shape and ({*map(type, shape)} != _INT or min(shape) < 0)):
            raise RequestError(400, f"input {name!r}: 'shape' must be a list of non-negative integers")
        if datatype != plan.datatype:
            raise RequestError(400, f"input {name!r}: datatype {datatype!r} does not match the model's "
                                    f"{plan.datatype}")
        parameters = tensor.get("parameters")
        if isinstance(parameters, dict) and "binary_data_size" in parameters:
            if tensor.get("data") is not None:
                raise RequestError(400, f"input {name!r}: has both 'data' and binary_data_size; send one")
            chunk = (tail or BinaryTail(memoryview(b""))).take(name, parameters["binary_data_size"])
            array = tensor_from_bytes(name, chunk, shape, datatype, plan.dtype, plan.wire)
        else:
            array = _json_tensor(name, tensor.get("data"), shape, datatype, plan.dtype, self.allow_missing,
                                 plan.feature_names)
        if plan.fixed is not None:
            if array.ndim != len(plan.fixed):
                _refuse_shape(name, array, plan)
            for i, want in plan.fixed_dims:
                if array.shape[i] != want:
                    _refuse_shape(name, array, plan)
        if plan.refuse_nan and _has_nan(array):  # null and "NaN" are NaN by now
            _refuse_missing(name, np.isnan(array).ravel(), shape, plan.dtype, self.allow_missing,
                            plan.feature_names)
        return array


def _binary_sized(tensor: dict[str, Any], size: int, expected: int) -> bool:
    """Whether a [batch, width] tensor says only `binary_data_size`, of the `size` bytes
    sent, which its shape needs (`expected`)."""
    parameters = tensor.get("parameters")
    return type(parameters) is dict and len(parameters) == 1 and tensor.get("data") is None \
        and type(parameters.get("binary_data_size")) is int and parameters["binary_data_size"] == size == expected


class KnownHeader:
    """A binary request's header already decoded once (FeedPlan.known_header): the
    next request with the same header bytes is decoded from its binary data alone,
    with the same checks (its size; missing values as NaN, unless allowed)."""

    __slots__ = ("name", "shape", "size", "wire", "dtype", "refuse_nan", "answer")

    def __init__(self, plan: _InputPlan, shape: tuple[int, ...], size: int) -> None:
        self.name, self.shape, self.size = plan.name, shape, size
        self.wire, self.dtype, self.refuse_nan = plan.wire, plan.dtype, plan.refuse_nan
        self.answer: Any = None  # what the app keeps with it (the request's id and outputs asked for)

    def decode(self, binary: memoryview) -> dict[str, np.ndarray] | None:
        """The feeds, or None when these bytes need the full way (which answers them)."""
        if len(binary) != self.size:
            return None
        array = np.frombuffer(binary, dtype=self.wire).astype(self.dtype)
        if self.refuse_nan and _has_nan(array):
            return None
        return {self.name: array.reshape(self.shape)}


def _has_nan(array: np.ndarray) -> bool:
    """Whether a float array holds a NaN (count_nonzero: half the cost of .any() on a request's row)."""
    return bool(np.count_nonzero(np.isnan(array)))


def _refuse_shape(name: str, array: np.ndarray, plan: _InputPlan) -> None:
    raise RequestError(400, f"input {name!r}: shape {list(array.shape)} does not fit the model's "
                            f"{plan.spec.shape_text()}")


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
    except (ValueError, TypeError, OverflowError):
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


class InferAnswer:
    """Infer answers written straight to bytes: what never changes for a
    model (its name and version, each output's name and datatype) is
    encoded once; a request adds its id, shapes and data.

    `{model_name, model_version, id, outputs}`; JSON data is flat and
    row-major; an output asked for as binary carries
    `parameters.binary_data_size` instead, its bytes in the tail in order."""

    def __init__(self, name: str, version: str) -> None:
        self.head = b'{"model_name":' + jsonfast.dumps(name) + b',"model_version":' + jsonfast.dumps(version) + \
            b',"id":'
        # (name, dtype, shape) -> the output's JSON up to its data, up to its binary size, datatype, text?
        self._fixed: dict[tuple[str, str, tuple[int, ...]], tuple[bytes, bytes, str, bool]] = {}

    def encode(self, request_id: str, outputs: dict[str, Any], wanted: dict[str, bool] | None) -> tuple[bytes, bytes]:
        """The JSON answer (or binary header) and the binary tail."""
        parts, tail = [], []
        for name, value in outputs.items():
            if wanted is not None and name not in wanted:
                continue
            array = value if type(value) is np.ndarray else np.asarray(value)
            fixed = self._fixed.get((name, array.dtype.char, array.shape)) or self._fix(name, array)
            if wanted is not None and wanted[name]:
                tail.append(output_bytes(array, fixed[2]))
                parts.append(b'%s%d}}' % (fixed[1], len(tail[-1])))
            else:
                data = array.astype(str).ravel().tolist() if fixed[3] else array.ravel()
                parts.append(fixed[0] + jsonfast.dumps(data) + b"}")
        return b"%s%s,\"outputs\":[%s]}" % (self.head, jsonfast.dumps(request_id), b",".join(parts)), b"".join(tail)

    def _fix(self, name: str, array: np.ndarray) -> tuple[bytes, bytes, str, bool]:
        if len(self._fixed) > 1024:  # shapes come from requests: keep the cache small
            self._fixed.clear()
        text = array.dtype.kind in "OUS"
        datatype = DATATYPES.get("string" if text else array.dtype.name, "BYTES")
        head = b'{"name":' + jsonfast.dumps(name) + b',"datatype":' + jsonfast.dumps(datatype) + b',"shape":' + \
            jsonfast.dumps(list(array.shape))
        fixed = self._fixed[name, array.dtype.char, array.shape] = (
            head + b',"data":', head + b',"parameters":{"binary_data_size":', datatype, text)
        return fixed


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
