"""A model's signature read from its protobuf bytes without protobuf.

`predict` chooses the columns to read from the model's inputs and starts
reading them while the model is parsed: importing protobuf and onnx's
generated module is ~10 ms of the GIL that reading need not wait for. This
reads only the fields a signature needs (the graph's inputs, outputs and
initializer names, the model's metadata), skipping the others by their
lengths, into stand-ins with the protobuf attributes `signature_of` reads, so
the signature is made by the same code. It answers None for anything it does
not expect (a text format, a truncated file, a field repeated that protobuf
would merge): it is a head start, not a check; the model's full parse follows
and decides what is valid.
"""

from __future__ import annotations

import mmap
from pathlib import Path
from typing import Any, Iterator

from mlship.model.signature import Signature, signature_of

# Field numbers (onnx.proto): what a signature reads, by message.
_MODEL = {7: ("graph", "graph", False), 14: ("metadata_props", "entry", True)}
_GRAPH = {5: ("initializer", "tensor", True), 11: ("input", "value", True), 12: ("output", "value", True)}
_SCHEMAS: dict[str, dict[int, tuple[str, str, bool]]] = {
    "model": _MODEL,
    "graph": _GRAPH,
    "tensor": {8: ("name", "string", False)},
    "entry": {1: ("key", "string", False), 2: ("value", "string", False)},
    "value": {1: ("name", "string", False), 2: ("type", "type", False)},
    "type": {1: ("tensor_type", "tensor_type", False), 4: ("sequence_type", "sequence", False),
             5: ("map_type", "map", False)},
    "tensor_type": {1: ("elem_type", "int", False), 2: ("shape", "shape", False)},
    "shape": {1: ("dim", "dim", True)},
    "dim": {1: ("dim_value", "int", False), 2: ("dim_param", "string", False)},
    "sequence": {1: ("elem_type", "type", False)},
    "map": {1: ("key_type", "int", False), 2: ("value_type", "type", False)},
}
_DEFAULTS = {"string": "", "int": 0}
_MAX_DEPTH = 100  # nested messages protobuf parses (upb's default limit)


class _Unsure(Exception):
    """Bytes this reader does not expect: the full parse decides."""


class _Message:
    """The fields read of one message, with protobuf's HasField and defaults."""

    def __init__(self, kind: str, fields: dict[str, Any], present: set[str]) -> None:
        self.__dict__.update(fields)
        self._kind, self._present = kind, present

    def HasField(self, name: str) -> bool:  # noqa: N802 (protobuf's name)
        return name in self._present

    def __getattr__(self, name: str) -> Any:  # a field the bytes did not set: its default
        for field, sub, repeated in _SCHEMAS[self.__dict__["_kind"]].values():
            if field == name:
                return [] if repeated else _DEFAULTS[sub] if sub in _DEFAULTS else _Message(sub, {}, set())
        raise AttributeError(name)


def quick_signature(path: str | Path) -> Signature | None:
    """The signature `signature_of` gives for the model at `path`, or None when unsure."""
    path = Path(path)
    if path.suffix.lower() != ".onnx":
        return None
    try:
        with path.open("rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as data:
            model = _message(data, 0, len(data), "model")
            if not model.HasField("graph") or not model.graph.output:
                return None
            return signature_of(model)
    except (_Unsure, OSError, ValueError, UnicodeDecodeError):
        return None


def _message(data: Any, start: int, end: int, kind: str, depth: int = 0) -> _Message:
    if depth > _MAX_DEPTH:
        raise _Unsure  # as deep as protobuf refuses (and past what Python's stack allows)
    schema, fields, present = _SCHEMAS[kind], {}, set()
    for number, wire, value in _fields(data, start, end):
        if number not in schema:
            continue
        name, sub, repeated = schema[number]
        if sub == "int":
            if wire != 0:
                raise _Unsure
            parsed: Any = value - (1 << 64) if value >= 1 << 63 else value  # negative int32/int64
        elif wire != 2:
            raise _Unsure
        elif sub == "string":
            parsed = bytes(data[value[0]:value[1]]).decode("utf-8")
        else:
            parsed = _message(data, value[0], value[1], sub, depth + 1)
        if repeated:
            fields.setdefault(name, []).append(parsed)
        elif name in present:
            raise _Unsure  # protobuf would merge or replace it
        else:
            fields[name] = parsed
            present.add(name)
    return _Message(kind, fields, present)


def _fields(data: Any, start: int, end: int) -> Iterator[tuple[int, int, Any]]:
    """(field number, wire type, value) of a message's fields: a varint's value, the
    (start, end) of a length-delimited field, None for fixed-width ones."""
    i = start
    while i < end:
        key, i = _varint(data, i, end)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(data, i, end)
        elif wire == 2:
            length, i = _varint(data, i, end)
            value, i = (i, i + length), i + length
        elif wire in (1, 5):
            value, i = None, i + (8 if wire == 1 else 4)
        else:
            raise _Unsure  # groups: not in onnx.proto
        if i > end or number == 0:
            raise _Unsure
        yield number, wire, value


def _varint(data: Any, i: int, end: int) -> tuple[int, int]:
    result = shift = 0
    while i < end:
        byte = data[i]
        i += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, i
        shift += 7
        if shift > 63:
            break
    raise _Unsure
