"""Input files for batch scoring, read as a stream of numbered fixed-size chunks.

Chunks never span files and always hold `batch_size` rows (the last one of
a file fewer), so a chunk's index names the same rows on every run: that is
what makes `--resume` possible. Only the columns the model (and
--keep-columns) need are read, through the one chunked reader in
`mlship.data`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from mlship.data.chunks import open_table
from mlship.data.tables import FORMATS, Table, expand_paths
from mlship.errors import InvalidInputError


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


def iter_chunks(files: list[Path], columns: list[str], batch_size: int,
                text_columns: frozenset[str] = frozenset()) -> Iterator[Chunk]:
    """Every chunk of every file, in order. `text_columns` (kept, not fed to the
    model) stay as written in CSV files: ids like 00123 keep their zeros."""
    index = 0
    for path in files:
        fmt = FORMATS[path.suffix.lower()]
        if fmt == "npz":  # named arrays of any length: no rows to cut into chunks
            raise InvalidInputError(f"{path}: {fmt} is not supported for batch scoring")
        produced = False
        for table in open_table(path, columns, batch_size, text_columns=text_columns):
            produced = True
            yield Chunk(index, path, table)
            index += 1
        if not produced:
            raise InvalidInputError(f"{path}: the file has no rows")
