"""Data files read as a stream of column chunks: the one chunked table reader.

`open_table` yields a file's rows as `Table`s of at most `batch_rows` rows,
reading only the columns asked for; check, batch scoring and drift read data
through it. Parquet and CSV go through pyarrow's streaming readers (CSV falls
back to the csv module without pyarrow); memory depends on the chunk size,
not on the file size.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from mlship.data.tables import FORMATS, NPY_COLUMN, Table, column_from_text, column_from_values, csv_rows, iter_json_records
from mlship.errors import InvalidInputError
from mlship.extras import require


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


def open_table(path: Path, columns: list[str] | None = None, batch_rows: int = 50_000, *,
               text_columns: frozenset[str] = frozenset()) -> Iterator[Table]:
    """The rows of one data file as Tables of at most `batch_rows` rows, in order,
    holding `columns` (all of them when None). `text_columns` stay as written in
    CSV files: ids like 00123 keep their zeros. A failure is an InvalidInputError
    naming the file."""
    path = Path(path)
    fmt = FORMATS[path.suffix.lower()]
    if columns is None:
        columns = file_columns(path)
    with _reading(path):
        if fmt == "parquet":
            yield from _parquet(path, columns, batch_rows)
        elif fmt == "csv":
            yield from _csv(path, columns, batch_rows, text_columns)
        elif fmt == "jsonl":
            yield from _jsonl(path, columns, batch_rows)
        elif fmt == "npy":
            arr = np.load(path, mmap_mode="r")
            for start in range(0, len(arr), batch_rows):
                yield Table(path, {NPY_COLUMN: np.asarray(arr[start:start + batch_rows])}, start + 1)
        else:
            raise InvalidInputError(f"{path}: {fmt} files cannot be read in chunks")


def _parquet(path: Path, columns: list[str], batch_size: int) -> Iterator[Table]:
    pq = require("pyarrow.parquet")
    start = 1
    # pre_buffer=False: pre-buffering holds whole column chunks and costs ~150 MB more at peak.
    for batch in pq.ParquetFile(path, pre_buffer=False).iter_batches(batch_size=batch_size, columns=columns):
        yield Table(path, {name: arrow_column(batch.column(i)) for i, name in enumerate(batch.schema.names)}, start)
        start += batch.num_rows


def arrow_column(array) -> np.ndarray:
    """A pyarrow array as a column: numbers stay numbers (nulls NaN), lists 2-D, the rest text."""
    import pyarrow as pa

    kind = array.type
    if pa.types.is_floating(kind) or pa.types.is_integer(kind) or pa.types.is_boolean(kind):
        if array.null_count == 0 and not pa.types.is_boolean(kind):
            return array.to_numpy(zero_copy_only=False)
        return array.to_numpy(zero_copy_only=False).astype(np.float64)  # nulls -> NaN
    if pa.types.is_list(kind) or pa.types.is_fixed_size_list(kind):
        return column_from_values(array.to_pylist(), "", "")
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
            yield csv_table(path, table.slice(0, batch_size), start, text_columns)
            rest = table.slice(batch_size)
            buffered, rows, start = rest.to_batches(), rest.num_rows, start + batch_size
    if rows:
        yield csv_table(path, pa.Table.from_batches(buffered), start, text_columns)


def csv_table(path: Path | str, table, start: int, text_columns: frozenset[str] = frozenset()) -> Table:
    """A pyarrow table of CSV text as a Table: numbers parsed, empty cells missing."""
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
    return {name: column_from_text(values) for name, values in zip(columns, zip(*rows))}


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
    return Table(path, {c: column_from_values([r.get(c) for r in records], path, c) for c in columns}, start)


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
