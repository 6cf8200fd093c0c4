"""Reading references and current data in chunks: prediction logs (JSON Lines
or Parquet) and plain data files (JSON Lines, Parquet, CSV).

A log record becomes a row whose columns are its input features (plain
names) and its outputs (`outputs.NAME`, list outputs as `outputs.NAME_0`,
`outputs.NAME_1`...), plus meta data (time, status, latency, variant,
version, request id, label) kept apart for windows and operations.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from mlship import jsonfast
from mlship.data.tables import FORMATS, _column_from_values, expand_paths
from mlship.errors import InvalidInputError
from mlship.extras import require

META = ("ts", "request_id", "model", "version", "variant", "latency_ms", "status", "error", "label", "cached", "row")


@dataclass
class Frame:
    """A chunk of rows: feature/output columns and per-row meta data."""

    columns: dict[str, np.ndarray]
    rows: int
    ts: np.ndarray | None = None  # epoch seconds
    meta: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class ReadReport:
    """What reading skipped: malformed lines, with where they are."""

    bad_lines: int = 0
    examples: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)

    def note(self, where: str, why: str) -> None:
        self.bad_lines += 1
        if len(self.examples) < 5:
            self.examples.append(f"{where}: {why}")


def data_files(spec: str | Path) -> list[Path]:
    files = expand_paths(spec, FORMATS, recursive=True)
    if files is None:
        raise InvalidInputError(f"not found: {spec}")
    if not files:
        raise InvalidInputError(f"no data or log files in {spec}")
    return files


def iter_frames(spec: str | Path, *, chunk_rows: int = 50_000, strict: bool = False,
                report: ReadReport | None = None) -> Iterator[Frame]:
    """Every chunk of every file; malformed lines counted in `report`
    (an error with --strict)."""
    report = report if report is not None else ReadReport()
    for path in data_files(spec):
        report.files.append(str(path))
        fmt = FORMATS.get(path.suffix.lower())
        try:
            if fmt == "jsonl":
                yield from _jsonl(path, chunk_rows, strict, report)
            elif fmt == "parquet":
                yield from _parquet(path, chunk_rows)
            elif fmt == "csv":
                yield from _csv(path, chunk_rows)
            else:
                raise InvalidInputError(f"{path}: {fmt or path.suffix} files cannot be read for drift")
        except InvalidInputError:
            raise
        except (OSError, ValueError, UnicodeDecodeError) as exc:
            raise InvalidInputError(f"{path}: cannot read: {str(exc).splitlines()[0] if str(exc) else exc}") from None


def _jsonl(path: Path, chunk_rows: int, strict: bool, report: ReadReport) -> Iterator[Frame]:
    records: list[dict[str, Any]] = []
    log: bool | None = None  # the first record decides: a prediction log, or plain rows
    with path.open("rb") as fh:
        for line_no, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            if not raw.endswith(b"\n"):
                continue  # a writer's unfinished last line
            try:
                record = jsonfast.loads(raw)
                if not isinstance(record, dict):
                    raise ValueError("not a JSON object")
                for part in ("inputs", "outputs"):
                    if part in record and record[part] is not None and not isinstance(record[part], dict):
                        raise ValueError(f"'{part}' is not an object")
                is_log = "inputs" in record or "outputs" in record
                if log is not None and is_log != log:
                    raise ValueError("a data row among log records" if log else "a log record among data rows")
                if is_log:
                    _check_meta(record)
                log = is_log
            except (ValueError, RecursionError) as exc:  # RecursionError: deep nesting, without orjson
                if strict:
                    raise InvalidInputError(f"{path}:{line_no}: malformed record: {exc}",
                                            hint="Drop --strict to skip and count such lines") from None
                report.note(f"{path}:{line_no}", str(exc).splitlines()[0] if str(exc) else "malformed")
                continue
            records.append(record)
            if len(records) == chunk_rows:
                yield _records_frame(records)
                records = []
    if records:
        yield _records_frame(records)


_TEXT, _NUMBER = (str,), (int, float)
# Types of the schema's top-level fields (mlship.predlog/v1); None is allowed where the schema allows it.
META_TYPES: dict[str, tuple[tuple[type, ...], bool]] = {
    "ts": (_TEXT, False), "request_id": (_TEXT, False), "model": (_TEXT, False), "version": (_TEXT, False),
    "variant": (_TEXT, True), "latency_ms": (_NUMBER, False), "status": ((int,), False), "error": (_TEXT, True),
    "label": ((str, int, float, bool), True), "cached": ((bool,), True), "row": ((int,), True),
}


def _check_meta(record: dict[str, Any]) -> None:
    """Refuse (ValueError) a log record whose meta data has the wrong type: those
    values become the columns that windows, versions and performance group by."""
    for key, (types, nullable) in META_TYPES.items():
        if key not in record:
            continue
        value = record[key]
        if value is None and nullable:
            continue
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            raise ValueError(f"'{key}' is {type(value).__name__}, not {' or '.join(t.__name__ for t in types)}")


def _records_frame(records: list[dict[str, Any]]) -> Frame:
    """Log records (inputs/outputs) or plain rows, as columns."""
    if "inputs" in records[0] or "outputs" in records[0]:
        rows = [_flatten_record(r) for r in records]
        meta = {k: _column_from_values([r.get(k) for r in records], "", k) for k in META
                if any(k in r for r in records) and k != "ts"}
        ts = np.array([_epoch(r.get("ts")) for r in records], dtype=np.float64)
    else:
        rows, meta, ts = records, {}, None
    names = list(dict.fromkeys(k for r in rows for k in r))
    columns = {n: _values([r.get(n) for r in rows]) for n in names}
    return Frame(columns, len(records), ts, meta)


def _flatten_record(record: dict[str, Any]) -> dict[str, Any]:
    return {**(record.get("inputs") or {}), **flatten_outputs(record.get("outputs") or {})}


def flatten_outputs(outputs: dict[str, Any]) -> dict[str, Any]:
    """A record's outputs as columns: `outputs.NAME`, and `outputs.NAME_j` for each item of a list."""
    row: dict[str, Any] = {}
    for name, value in outputs.items():
        if isinstance(value, list) and value and not isinstance(value[0], (list, dict)):
            for j, item in enumerate(value):
                row[f"outputs.{name}_{j}"] = item
        else:
            row[f"outputs.{name}"] = value
    return row


def _values(values: list[Any]) -> np.ndarray:
    if values and all(isinstance(v, (int, float)) and not isinstance(v, bool) or v is None for v in values):
        return np.array([np.nan if v is None else v for v in values], dtype=np.float64)
    return np.array(values, dtype=object)


def _epoch(ts: Any) -> float:
    if not isinstance(ts, str):
        return math.nan
    try:
        return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return math.nan


def _parquet(path: Path, chunk_rows: int) -> Iterator[Frame]:
    pq = require("pyarrow.parquet")
    from mlship.batch.sources import _arrow_column

    import pyarrow as pa

    for batch in pq.ParquetFile(path, pre_buffer=False).iter_batches(batch_size=chunk_rows):
        # Logs converted from JSON Lines keep inputs/outputs as structs: "inputs.age", "outputs.label".
        batch = pa.Table.from_batches([batch]).flatten().combine_chunks().to_batches()[0] \
            if any(pa.types.is_struct(f.type) for f in batch.schema) else batch
        columns, meta, ts = {}, {}, None
        for i, name in enumerate(batch.schema.names):
            column = batch.column(i)
            if pa.types.is_boolean(column.type):
                values = np.array([None if v is None else str(v).lower() for v in column.to_pylist()], dtype=object)
            else:
                values = _arrow_column(column)
            if values.ndim == 2:  # list outputs, as in JSON logs: NAME_0, NAME_1, ...
                for j in range(values.shape[1]):
                    columns[f"{name}_{j}"] = values[:, j]
                continue
            if name.startswith("inputs."):
                columns[name[len("inputs."):]] = values
            elif name in META:
                if name == "ts":
                    ts = np.array([_epoch(v) for v in batch.column(i).to_pylist()], dtype=np.float64)
                else:
                    meta[name] = values
            else:
                columns[name] = values
        yield Frame(columns, batch.num_rows, ts, meta)


def _csv(path: Path, chunk_rows: int) -> Iterator[Frame]:
    from mlship.batch.sources import _csv as read_csv
    from mlship.batch.sources import file_columns

    for table in read_csv(path, file_columns(path), chunk_rows):
        yield Frame({name: _csv_numbers(values) for name, values in table.columns.items()}, table.n_rows)


_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|[+-]?(?:nan|inf|infinity)", re.IGNORECASE)


def _csv_numbers(values: np.ndarray) -> np.ndarray:
    """A CSV column read as text because some cells are not numbers ("n/a"): the cells
    that are numbers count as numbers, so a type change reports the cells that changed."""
    if values.dtype != object:
        return values
    return np.array([float(v) if isinstance(v, str) and _NUMBER.fullmatch(v) else v for v in values.tolist()],
                    dtype=object)
