"""References and current data as frames (column chunks) for drift: prediction
logs (JSON Lines or Parquet, read by `mlship.predlog.reader`) and plain data
files (JSON Lines, Parquet, CSV; CSV through `mlship.data`).

A log record becomes a row whose columns are its input features (plain
names) and its outputs (`outputs.NAME`, list outputs as `outputs.NAME_0`,
`outputs.NAME_1`...), plus meta data (time, status, latency, variant,
version, request id, label) kept apart for windows and operations.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mlship.data.arrow import dictionary_codes
from mlship.data.chunks import arrow_column, file_columns, open_table
from mlship.data.tables import FORMATS, column_from_values, expand_paths
from mlship.errors import InvalidInputError
from mlship.predlog.reader import ReadReport, flatten_outputs, iter_jsonl, iter_parquet
from mlship.predlog.schema import META, ts_epoch


@dataclass
class Frame:
    """A chunk of rows: feature/output columns and per-row meta data."""

    columns: dict[str, np.ndarray]
    rows: int
    ts: np.ndarray | None = None  # epoch seconds
    meta: dict[str, np.ndarray] = field(default_factory=dict)
    # Text columns that came dictionary-encoded (Parquet categories): (codes, categories), -1 null
    coded: dict[str, tuple[np.ndarray, list[str]]] = field(default_factory=dict)


def data_files(spec: str | Path) -> list[Path]:
    """A file, a directory (read recursively) or a glob of data or log files."""
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
                for records in iter_jsonl(path, chunk_rows=chunk_rows, strict=strict, report=report):
                    yield _records_frame(records)
            elif fmt == "parquet":
                yield from read_ahead(_batch_frame(batch) for batch in iter_parquet(path, chunk_rows=chunk_rows))
            elif fmt == "csv":
                yield from _csv(path, chunk_rows)
            else:
                raise InvalidInputError(f"{path}: {fmt or path.suffix} files cannot be read for drift")
        except InvalidInputError:
            raise
        except (OSError, ValueError, UnicodeDecodeError) as exc:
            raise InvalidInputError(f"{path}: cannot read: {str(exc).splitlines()[0] if str(exc) else exc}") from None


def iter_row_group_frames(path: Path, row_groups: list[int], *, chunk_rows: int = 50_000) -> Iterator[Frame]:
    """The frames of some row groups of one Parquet file (a piece of it, profiled apart)."""
    try:
        yield from (_batch_frame(b) for b in iter_parquet(path, chunk_rows=chunk_rows, row_groups=row_groups))
    except (OSError, ValueError) as exc:
        raise InvalidInputError(f"{path}: cannot read: {str(exc).splitlines()[0] if str(exc) else exc}") from None


def read_ahead(items: Iterator[Any], depth: int = 1) -> Iterator[Any]:
    """`items`, produced on a second thread up to `depth` ahead of the caller: pyarrow decodes and
    NumPy converts the next chunk (mostly without the GIL) while the caller profiles this one.
    The producer's exception is raised here, where the item would have come; a caller that stops
    early stops the producer at its next item."""
    import queue
    import threading

    done = object()
    ahead: queue.Queue = queue.Queue(depth)
    stop = threading.Event()

    def put(entry: tuple[Any, BaseException | None]) -> bool:
        while not stop.is_set():  # never blocked for good by a caller that went away
            try:
                ahead.put(entry, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put((item, None)):
                    return
            put((done, None))
        except BaseException as exc:  # handed to the caller, raised there
            put((done, exc))

    thread = threading.Thread(target=produce, name="mlship-read-ahead", daemon=True)
    thread.start()
    try:
        while True:
            item, error = ahead.get()
            if error is not None:
                raise error
            if item is done:
                return
            yield item
    finally:
        stop.set()


def _records_frame(records: list[dict[str, Any]]) -> Frame:
    """Log records (inputs/outputs) or plain rows, as columns."""
    if "inputs" in records[0] or "outputs" in records[0]:
        rows = [_flatten_record(r) for r in records]
        meta = {k: column_from_values([r.get(k) for r in records], "", k) for k in META
                if any(k in r for r in records) and k != "ts"}
        ts = np.array([ts_epoch(r.get("ts")) for r in records], dtype=np.float64)
    else:
        rows, meta, ts = records, {}, None
    names = list(dict.fromkeys(k for r in rows for k in r))
    columns = {n: _values([r.get(n) for r in rows]) for n in names}
    return Frame(columns, len(records), ts, meta)


def _flatten_record(record: dict[str, Any]) -> dict[str, Any]:
    return {**(record.get("inputs") or {}), **flatten_outputs(record.get("outputs") or {})}


def _values(values: list[Any]) -> np.ndarray:
    if values and all(isinstance(v, (int, float)) and not isinstance(v, bool) or v is None for v in values):
        return np.array([np.nan if v is None else v for v in values], dtype=np.float64)
    return np.array(values, dtype=object)


def _batch_frame(batch: Any) -> Frame:
    """A Parquet batch (a log's, or plain data) as a frame."""
    import pyarrow as pa

    columns, meta, ts, coded = {}, {}, None, {}
    for i, name in enumerate(batch.schema.names):
        column = batch.column(i)
        if pa.types.is_boolean(column.type):
            values = np.array([None if v is None else str(v).lower() for v in column.to_pylist()], dtype=object)
        else:
            values = arrow_column(column)
        if values.ndim == 2:  # list outputs, as in JSON logs: NAME_0, NAME_1, ...
            for j in range(values.shape[1]):
                columns[f"{name}_{j}"] = values[:, j]
            continue
        if name not in META and (codes := dictionary_codes(column)) is not None:
            coded[name[len("inputs."):] if name.startswith("inputs.") else name] = codes
        if name.startswith("inputs."):
            columns[name[len("inputs."):]] = values
        elif name in META:
            if name == "ts":
                ts = np.array([ts_epoch(v) for v in column.to_pylist()], dtype=np.float64)
            else:
                meta[name] = values
        else:
            columns[name] = values
    return Frame(columns, batch.num_rows, ts, meta, coded)


def _csv(path: Path, chunk_rows: int) -> Iterator[Frame]:
    for table in open_table(path, file_columns(path), chunk_rows):
        yield Frame({name: _csv_numbers(values) for name, values in table.columns.items()}, table.n_rows)


_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|[+-]?(?:nan|inf|infinity)", re.IGNORECASE)


def _csv_numbers(values: np.ndarray) -> np.ndarray:
    """A CSV column read as text because some cells are not numbers ("n/a"): the cells
    that are numbers count as numbers, so a type change reports the cells that changed."""
    if values.dtype != object:
        return values
    return np.array([float(v) if isinstance(v, str) and _NUMBER.fullmatch(v) else v for v in values.tolist()],
                    dtype=object)
