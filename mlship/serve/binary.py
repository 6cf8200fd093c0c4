"""The Open Inference Protocol's binary tensor data extension.

A request may end its JSON header early (`Inference-Header-Content-Length`)
and carry tensors as raw bytes after it: each input that says
`parameters.binary_data_size` takes that many bytes, in the order of the
`inputs` list. Values are little-endian and row-major; BOOL is one byte (0 or
1); BYTES is, per element, a 4-byte little-endian length and the bytes.
Answers use the same layout for outputs asked for as binary.

Every size a client states is checked against the body before a byte is
read, so a lying header or size is a 400 naming it, never a short read.
"""

from __future__ import annotations

import math
import struct
import sys
from typing import Any

import numpy as np

from mlship.serve.errors import RequestError

HEADER = b"inference-header-content-length"
_LENGTH = struct.Struct("<I")
_LITTLE = sys.byteorder == "little"


def split_body(raw: bytes, declared: str | None) -> tuple[bytes, memoryview]:
    """The JSON header and the binary tail of a body, as the header splits them."""
    if declared is None:
        return raw, memoryview(b"")
    length = int(declared) if declared.isdigit() else 0
    if not 0 < length <= len(raw):
        raise RequestError(400, f"Inference-Header-Content-Length {declared[:40]!r} must be a number of bytes "
                                f"from 1 to the body's {len(raw)}")
    return raw[:length], memoryview(raw)[length:]


class BinaryTail:
    """The bytes after the JSON header, handed out to inputs in order."""

    def __init__(self, data: memoryview) -> None:
        self.data = data
        self.offset = 0

    def take(self, name: str, size: Any) -> memoryview:
        """The next `size` bytes for input `name`; a size that is not a
        non-negative integer, or runs past the body, is refused."""
        if type(size) is not int or size < 0:
            raise RequestError(400, f"input {name!r}: binary_data_size must be a non-negative integer, "
                                    f"got {str(size)[:40]!r}")
        left = len(self.data) - self.offset
        if size > left:
            raise RequestError(400, f"input {name!r}: binary_data_size {size} runs past the end of the body "
                                    f"({left} bytes of binary data left)")
        chunk = self.data[self.offset:self.offset + size]
        self.offset += size
        return chunk

    def check_used(self) -> None:
        """Bytes no input claimed mean the sizes and the body disagree."""
        left = len(self.data) - self.offset
        if left:
            raise RequestError(400, f"{left} bytes of binary data after the JSON header belong to no input "
                                    f"(binary_data_size values add up to {self.offset})")


def wire_dtype(datatype: str, dtype: np.dtype) -> np.dtype:
    """The dtype of a tensor's binary data: little-endian, BOOL as one byte."""
    return np.dtype(np.uint8 if datatype == "BOOL" else dtype).newbyteorder("<")


def tensor_from_bytes(name: str, chunk: memoryview, shape: list[int], datatype: str,
                      dtype: np.dtype, wire: np.dtype) -> np.ndarray:
    """An input's array from its binary data, which must hold exactly shape's
    values (`wire`: wire_dtype(datatype, dtype), kept by the caller's plan)."""
    count = math.prod(shape)
    if datatype == "BYTES":
        return _bytes_elements(name, chunk, count).reshape(shape)
    if len(chunk) != count * wire.itemsize:
        raise RequestError(400, f"input {name!r}: binary_data_size {len(chunk)} does not fit shape {shape} of "
                                f"{datatype} ({count} values of {wire.itemsize} bytes = {count * wire.itemsize})")
    values = np.frombuffer(chunk, dtype=wire)
    if datatype == "BOOL":
        if values.size and values.max() > 1:
            raise RequestError(400, f"input {name!r}: BOOL binary data holds a byte other than 0 or 1")
        return values.astype(bool).reshape(shape)
    return values.astype(dtype).reshape(shape)  # a native-order, aligned copy the runner may keep


def _bytes_elements(name: str, chunk: memoryview, count: int) -> np.ndarray:
    """BYTES elements (length-prefixed) as str, exactly `count` of them filling the chunk."""
    offset, end = 0, len(chunk)
    if count * 4 > end:  # every element has its 4-byte length: refuse before allocating for it
        raise RequestError(400, f"input {name!r}: {end} bytes of BYTES binary data cannot hold the {count} "
                                f"elements of its shape")
    out = np.empty(count, dtype=object)
    for i in range(count):
        if offset + 4 > end:
            raise RequestError(400, f"input {name!r}: BYTES binary data ends before element {i + 1} of {count}")
        (length,) = _LENGTH.unpack_from(chunk, offset)
        offset += 4
        if length > end - offset:
            raise RequestError(400, f"input {name!r}: BYTES element {i + 1} says {length} bytes, "
                                    f"{end - offset} are left")
        try:
            out[i] = str(chunk[offset:offset + length], "utf-8")
        except UnicodeDecodeError:
            raise RequestError(400, f"input {name!r}: BYTES element {i + 1} is not UTF-8 text") from None
        offset += length
    if offset != end:
        raise RequestError(400, f"input {name!r}: {end - offset} bytes after the {count} BYTES elements its "
                                f"shape holds")
    return out


def output_bytes(array: np.ndarray, datatype: str) -> bytes:
    """An output's binary form (little-endian, row-major; BYTES length-prefixed)."""
    if datatype == "BYTES":
        parts = []
        for value in array.ravel().tolist():
            data = value if isinstance(value, bytes) else str(value).encode()
            parts += (_LENGTH.pack(len(data)), data)
        return b"".join(parts)
    if datatype == "BOOL":
        return np.ascontiguousarray(array, dtype=np.uint8).tobytes()
    if _LITTLE and array.dtype.isnative:
        return array.tobytes()  # row-major, whatever the array's layout
    return np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()
