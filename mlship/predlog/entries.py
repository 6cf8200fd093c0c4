"""Turning a batch of predictions into per-row log records.

Serving and batch scoring hand the writer one entry per request or chunk;
the split into rows happens in the writer's thread, off the hot path.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import repeat
from typing import Any

import numpy as np

from mlship import jsonfast
from mlship.predlog.schema import utc_timestamp


class SentRows(Sequence):
    """Rows as sent, read straight from a request's body (mlship.serve.instances.BodyPlan):
    each row's values in `names`' order, and its JSON text as it came. Indexing
    gives a row's object (made then); LineFormat logs each row's own text, which
    is that object's JSON (a text with a line break in it is written again)."""

    __slots__ = ("values", "names", "raw")

    def __init__(self, values: list[tuple[Any, ...]], names: tuple[str, ...], raw: list[bytes]) -> None:
        self.values, self.names, self.raw = values, names, raw

    def __len__(self) -> int:
        return len(self.values)

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return [dict(zip(self.names, row)) for row in self.values[index]]
        return dict(zip(self.names, self.values[index]))

    def texts(self) -> list[bytes]:
        """Each row's JSON object, for a log line (one line: no CR or LF in it)."""
        # `10 in`: a byte's own search, several times faster than a one-byte bytes' one.
        return [text if 10 not in text and 13 not in text else jsonfast.dumps(dict(zip(self.names, row)))
                for text, row in zip(self.raw, self.values)]

    @classmethod
    def first_rows(cls, rows: list[Any]) -> "SentRows | None":
        """The first row of each of these (all SentRows of one model), as one; else None."""
        head = rows[0]
        if type(head) is not cls or not all(type(r) is cls and r.names is head.names for r in rows):
            return None
        return cls([r.values[0] for r in rows], head.names, [r.raw[0] for r in rows])


@dataclass
class LogEntry:
    """One request's (or chunk's) worth of records."""

    base: dict[str, Any]
    when: float
    feeds: dict[str, np.ndarray] | None
    instances: list[dict[str, Any]] | None
    outputs: dict[str, Any] | None
    cached: bool
    features: dict[str, list[str]] | None  # column names of 2-D inputs (Signature.features)
    request_ids: list[str] | None = None  # one per row (batch scoring), else base["request_id"]

    @property
    def rows(self) -> int:
        if self.instances is not None:
            return len(self.instances)
        if self.feeds:
            return len(next(iter(self.feeds.values())))
        return 1

    def records(self) -> list[dict[str, Any]]:
        rows = self.rows
        inputs = self.instances if self.instances is not None else input_rows(self.feeds, self.features)
        outputs = row_outputs(self.outputs, rows) if self.outputs is not None else [{}] * rows
        ts = utc_timestamp(self.when)
        records = []
        for i in range(rows):
            record = {"ts": ts, **self.base, "inputs": inputs[i] if inputs else {}, "outputs": outputs[i]}
            if self.request_ids is not None:
                record["request_id"] = self.request_ids[i]
            elif rows > 1:
                record["row"] = i
            if self.cached:
                record["cached"] = True
            records.append(record)
        return records


    def lines(self) -> list[bytes]:
        """The records as JSON Lines (the writer's path): the same records as
        `records()`, with each row's named numeric inputs written by one
        array encode instead of a dict per row."""
        if self.request_ids is not None:
            return [jsonfast.dumps(r) + b"\n" for r in self.records()]
        rows = self.rows
        head = jsonfast.dumps({"ts": _timestamp(self.when), **self.base})[:-1]  # without its closing brace
        inputs = [jsonfast.dumps(i) for i in self.instances] if self.instances is not None \
            else _input_json(self.feeds, self.features, rows)
        outputs = [jsonfast.dumps(o) for o in row_outputs(self.outputs, rows)] if self.outputs is not None \
            else [b"{}"] * rows
        cached = b',"cached":true' if self.cached else b""
        return [b'%s,"inputs":%s,"outputs":%s%s%s}\n' % (head, inputs[i] if inputs else b"{}", outputs[i],
                                                         b',"row":%d' % i if rows > 1 else b"", cached)
                for i in range(rows)]


class LineFormat:
    """One served request's record written straight to its JSON line, on the
    request path, from parts made once per model: the line `LogEntry.lines`
    writes for the same request, byte for byte, without a LogEntry, a dict
    per record or work in the writer's thread (which then only writes, and
    so hardly competes with the event loop for the GIL).

    It takes the usual request: one row, answered (status 200), inputs as the
    object sent or as one numeric input with named columns, numeric outputs.
    `line` returns None for anything else, which goes the LogEntry way."""

    def __init__(self, model: str, version: str, variant: str, features: dict[str, list[str]] | None) -> None:
        fixed = jsonfast.dumps({"model": model, "version": version, "variant": variant})[1:-1]
        self._middle = b"," + fixed + b',"latency_ms":'
        # Per input with named columns: `{"name":%s,...}`, filled from one encode of its row.
        self._rows = {name: (len(names), b"{" + b",".join(k.replace(b"%", b"%%") + b"%s" for k in _keys(tuple(names)))
                             + b"}") for name, names in (features or {}).items() if names}
        self._templates: dict[tuple, bytes] = {}

    def line(self, request_id: str, latency_ms: float, when: float, feeds: dict[str, np.ndarray] | None,
             instances: list[dict[str, Any]] | None, outputs: dict[str, Any], cached: bool) -> bytes | None:
        lines = self._lines([request_id], [latency_ms], when, feeds, instances, outputs, cached)
        return lines[0] if lines is not None else None

    def batch(self, request_ids: list[str], latencies_ms: list[float], when: float | list[float],
              feeds: dict[str, np.ndarray] | None, instances: list[dict[str, Any]] | None,
              outputs: dict[str, Any]) -> list[bytes] | None:
        """The lines of a micro-batch whose requests are one row each (row i is
        request i), answered and not cached: the lines `line` makes one by one,
        byte for byte, from one encode of the batch's inputs and one per output
        (a line is then one bytes formatting of its parts). `when`: the time of
        them all, or of each. None for what `line` would not take (then each
        request goes its own way)."""
        return self._lines(request_ids, latencies_ms, when, feeds, instances, outputs, False)

    def _lines(self, request_ids: list[str], latencies_ms: list[float], when: float | list[float],
               feeds: dict[str, np.ndarray] | None, instances: list[dict[str, Any]] | None,
               outputs: dict[str, Any], cached: bool) -> list[bytes] | None:
        """`batch`'s lines, `cached` or not (`line`: a batch of one)."""
        rows = len(request_ids)
        named = None  # the input whose named columns are in the template, each value a column of its own
        if instances is not None:
            if len(instances) != rows:
                return None
            columns = [instances.texts() if type(instances) is SentRows else list(map(jsonfast.dumps, instances))]
        else:
            columns = self._input_columns(feeds, rows)
            if columns is None:
                return None
            named = next(iter(feeds))
        forms = []  # each output's place in the line: its text, or its row's values inside brackets
        for value in outputs.values():
            found = _output_rows(value, rows)
            if found is None:
                return None
            columns.append(found[0])
            forms.append(found[1])
        names = (tuple(zip(outputs, forms)), cached, named)
        template = self._templates.get(names) or self._template(*names)
        stamps = _stamps(when) if type(when) is list else repeat(_timestamp(when).encode(), rows)
        # One encode of the latencies (floats: each its own encode's text); one formatting per line,
        # not one for the batch: a batch's text is tens of kB, and allocations that size made the
        # whole 2-4x slower now and then (malloc).
        latencies = jsonfast.dumps(latencies_ms)[1:-1].split(b",")
        return [template % parts for parts in zip(stamps, _id_texts(request_ids), latencies, *columns)]

    def _template(self, names: tuple[tuple[str, bytes], ...], cached: bool, named: str | None) -> bytes:
        if len(self._templates) > 64:  # output names are the model's: one set (cached or not, per input)
            self._templates.clear()
        outputs = b",".join(jsonfast.dumps(name).replace(b"%", b"%%") + b":" + form for name, form in names)
        inputs = b"%s" if named is None else self._rows[named][1]
        template = self._templates[names, cached, named] = b'{"ts":"%s","request_id":"%s"' \
            + self._middle.replace(b"%", b"%%") + b'%s,"status":200,"error":null,"inputs":' + inputs \
            + b',"outputs":{' + outputs + (b'},"cached":true}\n' if cached else b"}}\n")
        return template

    def _input_columns(self, feeds: dict[str, np.ndarray] | None, rows: int) -> list[list[bytes]] | None:
        """Each named column's values as text, a list per column (row i's value i), from
        one encode of the batch's input; they fill the template's `{"name": %s, ...}`."""
        if not feeds or len(feeds) != 1:
            return None
        name, value = next(iter(feeds.items()))
        count = self._rows.get(name, (0, b""))[0]
        if not count or value.dtype.kind not in "fiu" or value.size != count * rows or not value.ndim \
                or value.shape[0] != rows or not rows:
            return None
        values = jsonfast.dumps(value.reshape(-1))[1:-1].split(b",")
        return [values[j::count] for j in range(count)]


def _id_texts(ids: list[str]) -> list[bytes]:
    """Each request id's JSON string without its quotes: one encode of them all when none
    needs an escape (the usual ids: printable, no quote or backslash), else one by one."""
    plain = "".join(ids)
    if plain.isprintable() and '"' not in plain and "\\" not in plain:
        return "\n".join(ids).encode().split(b"\n")
    return [jsonfast.dumps(i)[1:-1] for i in ids]


def _output_rows(value: Any, rows: int) -> tuple[list[bytes], bytes] | None:
    """Each row's value of a numeric output with a batch axis (row_outputs' split and scalar(), as text),
    and its form in the line's template: `%s`, or `[%s]` for a row of values (the brackets in the template)."""
    if type(value) is not np.ndarray or value.dtype.kind not in "biuf" or not value.ndim or value.shape[0] != rows:
        return None
    if value.ndim > 1 and value.shape[1] == 1:  # [N, 1, ...]: scalar() drops that axis
        value = value.reshape(rows, *value.shape[2:])
    if value.ndim == 1:
        return (jsonfast.dumps(value)[1:-1].split(b",") if rows else []), b"%s"
    if value.ndim == 2 and value.shape[1]:
        return jsonfast.dumps(value)[2:-2].split(b"],["), b"[%s]"
    return [jsonfast.dumps(row) for row in value], b"%s"


_last_ts: tuple[int, str] = (-1, "")
_last_second: tuple[int, str] = (-1, "")


def _millisecond(when: float) -> int | None:
    """The millisecond whose stamp `when` shares; None within a microsecond of the next
    one (datetime's rounding to the microsecond may carry into it: stamped on its own)."""
    scaled = when * 1000
    ms = int(scaled)
    return ms if 0 <= scaled - ms <= 0.999 else None


def _timestamp(when: float) -> str:
    """utc_timestamp, made once per millisecond (records of one write share it)."""
    global _last_ts
    ms = _millisecond(when)
    if ms is None:
        return _utc_stamp(when)
    if _last_ts[0] != ms:
        _last_ts = (ms, _utc_stamp(when))
    return _last_ts[1]


def _utc_stamp(when: float) -> str:
    """utc_timestamp(when), its date and time of day made once a second: the same
    rounding to the microsecond as datetime.fromtimestamp (half to even, a carry
    into the next second), then the milliseconds."""
    global _last_second
    second = int(when)
    micro = round((when - second) * 1e6)
    if when < 0 or micro >= 1_000_000:  # before 1970, or rounded up into the next second
        return utc_timestamp(when)
    if _last_second[0] != second:
        _last_second = (second, time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(second)))
    return f"{_last_second[1]}{micro // 1000:03d}Z"


def _stamps(whens: list[float]) -> list[bytes]:
    """Each time's `ts` text (_timestamp), made once per millisecond."""
    stamps: list[bytes] = []
    last, stamp = None, b""
    for when in whens:
        ms = _millisecond(when)
        if ms is None or ms != last:
            stamp = _timestamp(when).encode()
            last = ms
        stamps.append(stamp)
    return stamps


def _input_json(feeds: dict[str, np.ndarray] | None, features: dict[str, list[str]] | None,
                rows: int) -> list[bytes]:
    """Each row's inputs as a JSON object; one numeric 2-D input with named
    columns (the usual tabular model) as `{"name": value, ...}` from its row's
    array encoding (NumPy's shortest float32 text, as elsewhere in the log)."""
    if feeds and len(feeds) == 1 and rows:
        name, value = next(iter(feeds.items()))
        names = (features or {}).get(name)
        if names and value.dtype.kind in "fiu" and value.size == rows * len(names):
            keys = _keys(tuple(names))
            matrix = value.reshape(rows, len(names))
            return [b"{%s}" % b",".join(map(bytes.__add__, keys, jsonfast.dumps(matrix[i])[1:-1].split(b",")))
                    for i in range(rows)]
    return [jsonfast.dumps(r) for r in input_rows(feeds, features)]


@lru_cache(maxsize=64)
def _keys(names: tuple[str, ...]) -> list[bytes]:
    return [jsonfast.dumps(n) + b":" for n in names]


def input_rows(feeds: dict[str, np.ndarray] | None, features: dict[str, list[str]] | None) -> list[dict[str, Any]]:
    """Inputs per row; a 2-D input with named columns (`features`) as those named values."""
    if not feeds:
        return []
    rows = len(next(iter(feeds.values())))
    if rows == 0:
        return []
    columns: dict[str, Any] = {}
    for name, value in feeds.items():
        names = (features or {}).get(name)
        matrix = value.reshape(rows, -1) if names else None
        if matrix is not None and matrix.shape[1] == len(names):
            columns.update((column, matrix[:, j]) for j, column in enumerate(names))
        else:
            columns[name] = [scalar(v) for v in value]
    return [{n: columns[n][i] for n in columns} for i in range(rows)]


def row_outputs(outputs: dict[str, Any], rows: int) -> list[dict[str, Any]]:
    """Split batch outputs into one dict per row (outputs without a batch axis are repeated)."""
    if rows == 1:  # a lone request's answer: the same, without the loops
        row: dict[str, Any] = {}
        for name, value in outputs.items():
            if type(value) is not np.ndarray:
                break
            if value.ndim and value.shape[0] == 1:
                value = scalar(value[0])
                if type(value) is np.longlong:  # onnxruntime's int64: orjson writes int, not `long long`
                    value = int(value)
            row[name] = value
        else:
            return [row]
    per_row: list[dict[str, Any]] = [{} for _ in range(rows)]
    for name, value in outputs.items():
        array = np.asarray(value)
        if array.ndim and array.shape[0] == rows:
            for i in range(rows):  # NumPy values: JSON writes float32 at its own precision
                per_row[i][name] = scalar(array[i])
        else:
            for i in range(rows):
                per_row[i][name] = array
    return per_row


def scalar(value: Any) -> Any:
    """[x] -> x, so [N, 1] features log as plain values."""
    if isinstance(value, (list, np.ndarray)) and len(value) == 1:
        return value[0]
    return value
