"""Input files for batch scoring, read as a stream of fixed-size chunks.

Chunks never span files and always hold `batch_size` rows (the last one of
a file fewer), so a chunk's index names the same rows on every run: that is
what makes `--resume` possible. Only the columns the model (and
--keep-columns) need are read.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mlship.data.tables import (FORMATS, NPY_COLUMN, Table, _column_from_text, _column_from_values, csv_rows,
                                expand_paths, iter_json_records)
from mlship.errors import InvalidInputError
from mlship.extras import require


@dataclass
class Chunk:
    """Rows [first_row, first_row + rows) of one file (1-based row numbers)."""

    index: int
    path: Path
    table: Table

    @property
    def rows(self) -> int:
        return self.table.n_rows


def input_files(spec: str | Path) -> list[Path]:
    """A file, a directory (its data files) or a glob; sorted; one format only."""
    files = expand_paths(spec, FORMATS)
    if files is None:
        raise InvalidInputError(f"input not found: {spec}")
    if not files:
        raise InvalidInputError(f"no data files match {spec}")
    formats = {FORMATS.get(p.suffix.lower()) for p in files}
    if None in formats:
        bad = next(p for p in files if p.suffix.lower() not in FORMATS)
        raise InvalidInputError(f"{bad}: unknown data format '{bad.suffix}'", hint="Use CSV, Parquet, JSON Lines or NPY")
    if len(formats) > 1:
        raise InvalidInputError(f"{spec}: mixes formats {sorted(formats)}; score one format per run")
    return files


def file_columns(path: Path) -> list[str]:
    """Column names of a file, read from its header or schema."""
    with _reading(path):
        return _file_columns(path)


def _file_columns(path: Path) -> list[str]:
    fmt = FORMATS[path.suffix.lower()]
    if fmt == "parquet":
        return list(require("pyarrow.parquet").ParquetFile(path).schema_arrow.names)
    if fmt == "csv":
        with path.open(encoding="utf-8-sig") as fh:  # -sig: a byte-order mark is not part of the first name
            header = fh.readline().rstrip("\r\n")
        if not header:
            raise InvalidInputError(f"{path}: the file is empty")
        delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
        return next(csv_rows(iter([header]), path, delimiter))
    if fmt == "jsonl":
        with path.open(encoding="utf-8") as fh:
            for line_no, line in enumerate(fh, start=1):
                if line.strip():
                    try:
                        return list(json.loads(line))
                    except (json.JSONDecodeError, TypeError):
                        raise InvalidInputError(f"{path}:{line_no}: not a JSON object") from None
        raise InvalidInputError(f"{path}: the file is empty")
    return [NPY_COLUMN]


def count_rows(path: Path) -> int | None:
    """Row count when it is cheap to know (Parquet metadata, NPY header)."""
    fmt = FORMATS[path.suffix.lower()]
    with _reading(path):
        if fmt == "parquet":
            return require("pyarrow.parquet").ParquetFile(path).metadata.num_rows
        if fmt == "npy":
            return len(np.load(path, mmap_mode="r"))
    return None


def iter_chunks(files: list[Path], columns: list[str], batch_size: int,
                text_columns: frozenset[str] = frozenset()) -> Iterator[Chunk]:
    """Every chunk of every file, in order. `text_columns` (kept, not fed to the
    model) stay as written in CSV files: ids like 00123 keep their zeros."""
    index = 0
    for path in files:
        produced = False
        for table in _read(path, columns, batch_size, text_columns):
            produced = True
            yield Chunk(index, path, table)
            index += 1
        if not produced:
            raise InvalidInputError(f"{path}: the file has no rows")


@contextlib.contextmanager
def _reading(path: Path) -> Iterator[None]:
    """Turn a reader's failure into a one-line error naming the file."""
    fmt = FORMATS[path.suffix.lower()]
    try:
        yield
    except InvalidInputError:
        raise
    except (OSError, ValueError, UnicodeDecodeError, EOFError) as exc:
        raise InvalidInputError(f"{path}: cannot read {fmt} data: {_first_line(exc)}") from None


def _read(path: Path, columns: list[str], batch_size: int, text_columns: frozenset[str] = frozenset()) -> Iterator[Table]:
    fmt = FORMATS[path.suffix.lower()]
    with _reading(path):
        if fmt == "parquet":
            yield from _parquet(path, columns, batch_size)
        elif fmt == "csv":
            yield from _csv(path, columns, batch_size, text_columns)
        elif fmt == "jsonl":
            yield from _jsonl(path, columns, batch_size)
        elif fmt == "npy":
            arr = np.load(path, mmap_mode="r")
            for start in range(0, len(arr), batch_size):
                yield Table(path, {NPY_COLUMN: np.asarray(arr[start:start + batch_size])}, start + 1)
        else:
            raise InvalidInputError(f"{path}: {fmt} is not supported for batch scoring")


def _parquet(path: Path, columns: list[str], batch_size: int) -> Iterator[Table]:
    pq = require("pyarrow.parquet")
    start = 1
    # pre_buffer=False: pre-buffering holds whole column chunks and costs ~150 MB more at peak.
    for batch in pq.ParquetFile(path, pre_buffer=False).iter_batches(batch_size=batch_size, columns=columns):
        yield Table(path, {name: _arrow_column(batch.column(i)) for i, name in enumerate(batch.schema.names)}, start)
        start += batch.num_rows


def _arrow_column(array) -> np.ndarray:
    import pyarrow as pa

    kind = array.type
    if pa.types.is_floating(kind) or pa.types.is_integer(kind) or pa.types.is_boolean(kind):
        if array.null_count == 0 and not pa.types.is_boolean(kind):
            return array.to_numpy(zero_copy_only=False)
        return array.to_numpy(zero_copy_only=False).astype(np.float64)  # nulls -> NaN
    if pa.types.is_list(kind) or pa.types.is_fixed_size_list(kind):
        return _column_from_values(array.to_pylist(), "", "")
    return np.array(array.to_pylist(), dtype=object)


def _csv(path: Path, columns: list[str], batch_size: int,
         text_columns: frozenset[str] = frozenset()) -> Iterator[Table]:
    """pyarrow's streaming CSV reader when installed; the csv module otherwise."""
    try:
        pacsv = require("pyarrow.csv")
    except Exception:
        yield from _csv_python(path, columns, batch_size)
        return
    import pyarrow as pa

    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    reader = pacsv.open_csv(
        path,
        read_options=pacsv.ReadOptions(block_size=1 << 22),
        parse_options=pacsv.ParseOptions(delimiter=delimiter),
        # Text throughout: values that are not numbers must reach our checks
        # (with the row number), not stop pyarrow's type inference mid-file.
        convert_options=pacsv.ConvertOptions(include_columns=columns,
                                             column_types={c: pa.string() for c in columns}),
    )
    buffered, rows, start = [], 0, 1
    for batch in reader:
        buffered.append(batch)
        rows += batch.num_rows
        while rows >= batch_size:
            table = pa.Table.from_batches(buffered)
            yield _csv_table(path, table.slice(0, batch_size), start, text_columns)
            rest = table.slice(batch_size)
            buffered, rows, start = rest.to_batches(), rest.num_rows, start + batch_size
    if rows:
        yield _csv_table(path, pa.Table.from_batches(buffered), start, text_columns)


def _csv_table(path: Path | str, table, start: int, text_columns: frozenset[str] = frozenset()) -> Table:
    import pyarrow.compute as pc

    columns = {}
    for name in table.column_names:
        if name in text_columns:
            columns[name] = np.array([v if v != "" else None for v in table.column(name).to_pylist()], dtype=object)
            continue
        text = pc.if_else(pc.equal(table.column(name), ""), None, table.column(name))
        columns[name] = _parse_text_column(text, pc)
    return Table(path, columns, start)


def _parse_text_column(text, pc) -> np.ndarray:
    """Whole numbers stay integers, other numbers become float64 (empty: NaN), the rest text."""
    for kind in ("int64", "float64"):
        try:
            numbers = pc.cast(text, kind)
        except Exception:  # pyarrow.ArrowInvalid: not every value parses as `kind`
            continue
        if kind == "int64" and numbers.null_count:
            return numbers.to_numpy(zero_copy_only=False).astype(np.float64)
        return numbers.to_numpy(zero_copy_only=False)
    return np.array(text.to_pylist(), dtype=object)


def _csv_python(path: Path, columns: list[str], batch_size: int) -> Iterator[Table]:
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv_rows(fh, path, delimiter)
        header = next(reader, None) or []
        positions = [header.index(c) for c in columns if c in header]
        rows, start = [], 1
        for row in reader:
            rows.append([row[i] if i < len(row) else "" for i in positions])
            if len(rows) == batch_size:
                yield Table(path, _text_columns(columns, rows), start)
                rows, start = [], start + batch_size
        if rows:
            yield Table(path, _text_columns(columns, rows), start)


def _text_columns(columns: list[str], rows: list[list[str]]) -> dict[str, np.ndarray]:
    return {name: _column_from_text(values) for name, values in zip(columns, zip(*rows))}


def _jsonl(path: Path, columns: list[str], batch_size: int) -> Iterator[Table]:
    records, start = [], 1
    for record in iter_json_records(path):
        records.append(record)
        if len(records) == batch_size:
            yield _records_table(path, records, columns, start)
            records, start = [], start + batch_size
    if records:
        yield _records_table(path, records, columns, start)


def _records_table(path: Path, records: list[dict], columns: list[str], start: int) -> Table:
    # Every requested column, even one this chunk never mentions (all missing).
    return Table(path, {c: _column_from_values([r.get(c) for r in records], path, c) for c in columns}, start)


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
