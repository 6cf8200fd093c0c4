"""Tables: named columns of equal length, and the rules that turn a data file's
cells into them (the readers are in `mlship.data.chunks`).

A column is a NumPy array: 1-D for scalars (float64 for numbers, object for
text), or 2-D when every row holds a list of equal length (a tensor feature,
an NPY matrix).
"""

from __future__ import annotations

import csv
import glob
import json
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Iterator

import numpy as np

from mlship.errors import InvalidInputError

FORMATS = {
    ".csv": "csv",
    ".tsv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".npy": "npy",
    ".npz": "npz",
}

NPY_COLUMN = "__array__"  # the one column of an .npy file

# The csv module stops at fields over 128 KiB; real data (JSON blobs, long texts)
# has bigger ones. Past this bound a field is an error naming the file and line.
CSV_FIELD_LIMIT = 64 * 1024 * 1024


@dataclass
class Table:
    """Columns read from `path` (a file, or a label such as "request body")."""

    path: Path | str
    columns: dict[str, np.ndarray]
    first_row: int = 1  # number of the first row in its file, for messages
    row_numbers: np.ndarray | None = None  # each row's number in its file, once rows were dropped

    def numbers(self) -> np.ndarray:
        """The file row number of every row."""
        if self.row_numbers is not None:
            return self.row_numbers
        return np.arange(self.first_row, self.first_row + self.n_rows)

    @property
    def n_rows(self) -> int:
        if self.columns:
            return len(next(iter(self.columns.values())))
        return 0 if self.row_numbers is None else len(self.row_numbers)

    def column(self, name: str) -> np.ndarray:
        return self.columns[name]


def expand_paths(spec: str | Path, suffixes: set[str] | dict[str, str], *, recursive: bool = False) -> list[Path] | None:
    """The files SPEC names, sorted: a directory's files with one of `suffixes`,
    the file itself, or a glob's files. An existing file or directory is taken
    as named before SPEC is tried as a glob (`a[1].csv` is that file, not
    `a1.csv`). None when a plain path is not a file, so each caller words that
    error its own way."""
    text = str(spec)
    path = Path(text)
    if path.is_dir():
        found = path.rglob("*") if recursive else path.iterdir()
        return sorted(p for p in found if p.is_file() and p.suffix.lower() in suffixes)
    if path.is_file():
        return [path]
    if any(ch in text for ch in "*?["):
        return sorted(Path(p) for p in glob.glob(text, recursive=recursive) if Path(p).is_file())
    return None


def csv_rows(fh: IO[str], path: Path | str, delimiter: str = ",") -> Iterator[list[str]]:
    """The rows of an open CSV file (fields up to CSV_FIELD_LIMIT characters);
    a malformed line is an InvalidInputError naming the file and line."""
    csv.field_size_limit(CSV_FIELD_LIMIT)  # the module's limit is global: set it where it matters
    reader = csv.reader(fh, delimiter=delimiter)
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            why = (f"a field is longer than {CSV_FIELD_LIMIT:,} characters" if "field limit" in str(exc)
                   else f"malformed CSV: {exc}")
            raise InvalidInputError(f"{path}:{reader.line_num}: {why}") from None
        yield row


def check_header(path: Path, header: list[str], *, unnamed: bool = False) -> None:
    """A CSV header's names are unique and (unless `unnamed`, as in pandas' index
    column) not empty; otherwise an InvalidInputError naming the file's line 1."""
    seen = set()
    for name in header:
        if not name and not unnamed:
            raise InvalidInputError(f"{path}:1: a column has an empty name")
        if name in seen:
            raise InvalidInputError(f"{path}:1: column '{name}' appears twice")
        seen.add(name)


def column_from_text(values: tuple[str, ...]) -> np.ndarray:
    """A column of CSV text: numbers become float64 (empty cells NaN); anything else stays text."""
    try:
        return np.array([float(v) if v != "" else np.nan for v in values], dtype=np.float64)
    except ValueError:
        return np.array(values, dtype=object)


def iter_json_records(path: Path) -> Iterator[dict[str, Any]]:
    """The objects of a JSON Lines file; blank lines skipped, anything else an
    error naming the line."""
    with path.open(encoding="utf-8") as fh:
        for line_no, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InvalidInputError(f"{path}:{line_no}: invalid JSON: {exc.msg}") from None
            if not isinstance(record, dict):
                raise InvalidInputError(f"{path}:{line_no}: each line must be a JSON object")
            yield record


def column_from_values(values: list[Any], path: Path, name: str) -> np.ndarray:
    """Scalars -> 1-D (float64 when numeric), equal-length lists -> 2-D."""
    if values and all(isinstance(v, list) for v in values):
        try:
            return np.array(values, dtype=np.float64)
        except ValueError:
            raise InvalidInputError(f"{path}: column '{name}' holds lists of different lengths") from None
    if values and all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        try:
            return np.array(values, dtype=np.int64)  # whole numbers stay integers (ids, counts)
        except OverflowError:
            return np.array(values, dtype=object)  # beyond int64: keep them exact, as Python ints
    if all(v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)) for v in values):
        return np.array([np.nan if v is None else v for v in values], dtype=np.float64)
    return np.array(values, dtype=object)
