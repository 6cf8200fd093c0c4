"""CSV and TSV files read with Python's csv module, as column chunks.

Every row is checked against the header, and a problem names the file and
line. Samples are read this way (`read_table`: exact line numbers, no
optional dependency, Python's float() for numbers), and batch scoring and
drift fall back to it when pyarrow is not installed.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from mlship.data.tables import Table, check_header, column_from_text, csv_rows
from mlship.errors import InvalidInputError


def read_csv(path: Path, columns: list[str] | None, batch_rows: int, *,
             text_columns: frozenset[str] = frozenset(), unnamed: bool = True) -> Iterator[Table]:
    """The rows of a CSV file as Tables of at most `batch_rows` rows holding
    `columns` (all when None): numbers float64 (empty cells NaN), other columns
    and `text_columns` text. Blank lines are skipped; a row with too few or too
    many fields, a repeated name or (unless `unnamed`) an empty one is an error."""
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    with path.open(newline="", encoding="utf-8-sig") as fh:  # -sig: a byte-order mark is not part of the first name
        reader = csv_rows(fh, path, delimiter)
        header = next(reader, None)
        if header is None:
            raise InvalidInputError(f"{path}: the file is empty")
        check_header(path, header, unnamed=unnamed)
        names = header if columns is None else columns
        positions = _positions(path, header, names)
        rows: list[list[str]] = []
        start = 1
        for line_no, row in enumerate(reader, start=2):
            if not row:
                continue
            if len(row) != len(header):
                raise InvalidInputError(f"{path}:{line_no}: expected {len(header)} fields, found {len(row)}",
                                        hint="Check for unquoted delimiters or a truncated line")
            rows.append([row[i] for i in positions])
            if len(rows) == batch_rows:
                yield _table(path, names, rows, start, text_columns)
                rows, start = [], start + batch_rows
        if rows:
            yield _table(path, names, rows, start, text_columns)


def _positions(path: Path, header: list[str], names: list[str]) -> list[int]:
    missing = [name for name in names if name not in header]
    if missing:
        raise InvalidInputError(f"{path}:1: no column '{missing[0]}'", hint=f"It has: {', '.join(header)}")
    return [header.index(name) for name in names]


def _table(path: Path, names: list[str], rows: list[list[str]], start: int, text_columns: frozenset[str]) -> Table:
    columns = {}
    for name, values in zip(names, zip(*rows)):
        columns[name] = (np.array([v if v != "" else None for v in values], dtype=object) if name in text_columns
                         else column_from_text(values))
    return Table(path, columns, start)
