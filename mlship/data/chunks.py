"""Data files read as a stream of column chunks: the one table reader.

`open_table` yields a file's rows as `Table`s of at most `batch_rows` rows,
reading only the columns asked for: batch scoring and drift stream files
through it, and `read_table` (check's sample and labels, a bundle's
calibration sample, drift's labels) is the whole file as its one chunk.
Parquet and CSV stream through pyarrow's readers (CSV falls back to the csv
module without pyarrow); memory depends on the chunk size, not on the file size.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from mlship.data.arrow import arrow_column
from mlship.data.plain_csv import read_csv
from mlship.data.tables import FORMATS, NPY_COLUMN, Table, check_header, column_from_values, csv_rows, iter_json_records
from mlship.errors import InvalidInputError
from mlship.extras import require


def file_columns(path: Path) -> list[str]:
    """Column names of a file, read from its header or schema."""
    with _reading(path):
        return _file_columns(path)


def _file_columns(path: Path) -> list[str]:
    fmt = FORMATS[path.suffix.lower()]
    if fmt == "parquet":
        with _parquet_file(path) as reader:
            return list(reader.schema_arrow.names)
    if fmt == "csv":
        with path.open(encoding="utf-8-sig") as fh:  # -sig: a byte-order mark is not part of the first name
            header = fh.readline().rstrip("\r\n")
        if not header:
            raise InvalidInputError(f"{path}: the file is empty")
        delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
        names = next(csv_rows(iter([header]), path, delimiter))
        check_header(path, names, unnamed=True)  # pyarrow fails on a repeated name, or silently takes one
        return names
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
            with _parquet_file(path) as reader:
                return reader.metadata.num_rows
        if fmt == "npy":
            array = np.load(path, mmap_mode="r")
            return len(array) if array.ndim else None  # a scalar: open_table says what is wrong
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


def read_table(path: str | Path) -> Table:
    """A whole data file as one Table, read as a sample (see `open_table`'s
    `sample`); InvalidInputError (exit 3) on any problem."""
    path = Path(path)
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        known = ", ".join(sorted(FORMATS))
        raise InvalidInputError(f"{path}: unknown data format '{path.suffix}'", hint=f"Use one of {known}")
    if not path.is_file():
        raise InvalidInputError(f"data file not found: {path}")
    # One chunk, not chunks concatenated: a column's type is decided over the whole
    # file (JSON ids that turn to text in row 70,000 are text in row 1 too).
    chunks = list(open_table(path, batch_rows=None, sample=True))
    if not chunks or not chunks[0].n_rows:  # no rows, or lines without a single key
        raise InvalidInputError(f"{path}: the file has no rows", hint="Give a sample with at least one row")
    return chunks[0]


def open_table(path: Path, columns: list[str] | None = None, batch_rows: int | None = 50_000, *,
               text_columns: frozenset[str] = frozenset(), sample: bool = False) -> Iterator[Table]:
    """The rows of one data file as Tables of at most `batch_rows` rows, in order,
    holding `columns` (all of them when None). `text_columns` stay as written in
    CSV files: ids like 00123 keep their zeros. A failure is an InvalidInputError
    naming the file; a file without rows yields nothing.

    `batch_rows=None` yields the whole file as one Table, its columns typed over
    every row (every key of a JSON Lines file is a column); only so are NPZ files
    read. `sample=True` reads as samples always were: CSV through the csv module
    (line-numbered errors, every column named, Python's float() for numbers) and
    whole numbers as float64 in CSV and Parquet alike."""
    path = Path(path)
    fmt = FORMATS[path.suffix.lower()]
    whole = batch_rows is None
    rows = sys.maxsize if whole else batch_rows
    with _reading(path):
        if fmt == "csv" and sample:
            yield from read_csv(path, columns, rows, text_columns=text_columns, unnamed=False)
        elif fmt == "csv":
            header = file_columns(path)  # checks the names: pyarrow fails on a repeated one, or takes either
            yield from _csv(path, header if columns is None else columns, rows, text_columns)
        elif fmt == "parquet":
            yield from (_whole_parquet(path, columns, sample) if whole else _parquet(path, columns, rows, sample))
        elif fmt == "jsonl":
            yield from _jsonl(path, file_columns(path) if columns is None and not whole else columns, rows)
        elif fmt == "npy":
            yield from _npy(path, batch_rows)
        elif whole:
            yield from _npz(path)
        else:
            raise InvalidInputError(f"{path}: {fmt} files cannot be read in chunks")


def _parquet(path: Path, columns: list[str] | None, batch_size: int, sample: bool = False) -> Iterator[Table]:
    start = 1
    # pre_buffer=False: pre-buffering holds whole column chunks and costs ~150 MB more at peak.
    # buffer_size: pages are read through a 64 KiB buffer, not each column chunk at once into
    # new memory (its first touch was most of the first chunk's decoding): ~40 MB less at peak,
    # ~25% less wall time to the first batch. use_threads=False: the columns are decoded in the
    # calling thread (a batch job's reader, well ahead of inference on one core), not by two more
    # pool threads beside the scorers, each allocating from its own jemalloc arena (1M rows:
    # ~6k more page faults, ~20 MB more at peak, ~25 ms more CPU).
    with _parquet_file(path, pre_buffer=False, buffer_size=1 << 16) as reader:
        leaves = _leaf_indices(reader.column_paths)
        indices = None if columns is None else [i for name in columns for i in leaves.get(name, ())]
        for batch in reader.iter_batches(batch_size, range(reader.num_row_groups), column_indices=indices,
                                         use_threads=False):
            yield _arrow_table(path, batch, start, sample)
            start += batch.num_rows


@contextlib.contextmanager
def _parquet_file(path: Path, **options) -> Iterator[Any]:
    """pyarrow's reader of a local Parquet file (what `pyarrow.parquet.ParquetFile` wraps),
    opened without importing `pyarrow.parquet`: that module imports pyarrow's file systems
    (S3, GCS, Azure, HDFS) and `ssl`, ~13 ms of the GIL before a batch job's first chunk,
    for paths a local file does not need. A pyarrow without that reader takes the usual way."""
    import pyarrow as pa

    try:
        from pyarrow._parquet import ParquetReader
    except ImportError:
        ParquetReader = None
    if ParquetReader is None or not hasattr(ParquetReader, "iter_batches"):
        yield require("pyarrow.parquet").ParquetFile(path, **options).reader
        return
    source = pa.OSFile(str(path))
    try:
        reader = ParquetReader()
        reader.open(source, **options)
        yield reader
    finally:
        source.close()


def _leaf_indices(paths: list[list[str]]) -> dict[str, list[int]]:
    """Column name (a top-level name or a dotted path) -> the leaf columns it reads, as
    ParquetFile resolves `columns`."""
    leaves: dict[str, list[int]] = {}
    for i, path in enumerate(paths):
        for depth in range(1, len(path) + 1):
            leaves.setdefault(".".join(path[:depth]), []).append(i)
    return leaves


def _whole_parquet(path: Path, columns: list[str] | None, sample: bool) -> Iterator[Table]:
    table = require("pyarrow.parquet").read_table(path, columns=columns)
    if table.num_rows:
        yield _arrow_table(path, table, 1, sample)


def _arrow_table(path: Path, data, start: int, sample: bool) -> Table:
    """A pyarrow batch or table as a Table, typed as a sample when `sample`."""
    names = data.schema.names
    if sample:
        return Table(path, {name: _sample_column(data.column(i), path, name) for i, name in enumerate(names)}, start)
    return Table(path, {name: arrow_column(data.column(i)) for i, name in enumerate(names)}, start)


def _sample_column(array, path: Path, name: str) -> np.ndarray:
    """A pyarrow column as samples always had it: lists 2-D, other numbers float64
    (float32 kept), everything else text or Python objects."""
    values = array.to_pylist()
    if values and isinstance(values[0], list):
        return column_from_values(values, path, name)
    numbers = array.to_numpy(zero_copy_only=False)
    if numbers.dtype.kind in "iufb":
        return numbers.astype(np.float64) if numbers.dtype.kind != "f" else numbers
    return numbers.astype(object)


def _csv(path: Path, columns: list[str], batch_size: int,
         text_columns: frozenset[str] = frozenset()) -> Iterator[Table]:
    """pyarrow's streaming CSV reader when installed; the csv module otherwise."""
    try:
        pacsv = require("pyarrow.csv")
    except Exception:
        yield from read_csv(path, columns, batch_size, text_columns=text_columns)
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


def _jsonl(path: Path, columns: list[str] | None, batch_size: int) -> Iterator[Table]:
    records, start = [], 1
    for record in iter_json_records(path):
        records.append(record)
        if len(records) == batch_size:
            yield _records_table(path, records, columns, start)
            records, start = [], start + batch_size
    if records:
        yield _records_table(path, records, columns, start)


def _records_table(path: Path, records: list[dict], columns: list[str] | None, start: int) -> Table:
    # Every requested column, even one this chunk never mentions (all missing); else every key seen.
    names = columns if columns is not None else list(dict.fromkeys(k for r in records for k in r))
    return Table(path, {c: column_from_values([r.get(c) for r in records], path, c) for c in names}, start)


def _npy(path: Path, batch_rows: int | None) -> Iterator[Table]:
    # A sample is loaded whole; chunks come from a memory map, so a big array is never held at once.
    array = np.load(path, allow_pickle=False) if batch_rows is None else np.load(path, mmap_mode="r")
    if array.ndim == 0:
        raise InvalidInputError(f"{path}: the array is a scalar, expected rows")
    if batch_rows is None:
        if len(array):
            yield Table(path, {NPY_COLUMN: array})
        return
    for start in range(0, len(array), batch_rows):
        yield Table(path, {NPY_COLUMN: np.asarray(array[start:start + batch_rows])}, start + 1)


def _npz(path: Path) -> Iterator[Table]:
    with np.load(path, allow_pickle=False) as data:
        columns = {name: data[name] for name in data.files}
    scalar = next((name for name, a in columns.items() if a.ndim == 0), None)
    if scalar is not None:
        raise InvalidInputError(f"{path}: the array '{scalar}' is a scalar, expected rows")
    lengths = {len(a) for a in columns.values()}
    if len(lengths) > 1:
        raise InvalidInputError(f"{path}: arrays have different numbers of rows {sorted(lengths)}")
    if columns and lengths != {0}:
        yield Table(path, columns)


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
