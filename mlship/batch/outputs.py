"""Prediction outputs: checkpointed per chunk, merged into the final file.

Each chunk's predictions are appended to the journal in a work directory
beside the output (`mlship.batch.workdir`: a record is whole on disk before
the chunk counts as done; a record cut short is not done). When every chunk is done the parts are merged
into the output under a temporary name, fsynced and renamed: the final name
never holds a half-written file.
"""

from __future__ import annotations

import csv
import io
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from mlship import jsonfast
from mlship.data.arrow import arrow_array, arrow_column
from mlship.errors import InvalidInputError, UsageError
from mlship.extras import require
from mlship.fsutil import start_writeback
from mlship.batch.workdir import Journal, read_payload

OUTPUT_FORMATS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}


def output_format(path: Path) -> str:
    fmt = OUTPUT_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise UsageError(f"--output {path}: unknown format '{path.suffix}'", hint="Use .parquet, .csv or .jsonl")
    return fmt


def check_output(path: Path, flag: str = "--output", *, predictions: bool = True) -> None:
    """Refuse, before any scoring, an output that is a directory, has an unknown
    format (`predictions`) or whose directory cannot be written (exit 2);
    creates that directory if needed."""
    if path.is_dir():
        raise UsageError(f"{flag} {path} is a directory",
                         hint=f"Name a file, e.g. {path / ('predictions.parquet' if predictions else 'rejects.jsonl')}")
    if predictions:
        output_format(path)
    parent = path.parent
    blocking = next((p for p in (parent, *parent.parents) if p.exists() or p.is_symlink()), None)
    if blocking is not None and not blocking.is_dir():
        raise UsageError(f"{flag} {path}: {blocking} is not a directory")
    try:
        parent.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".probe", dir=parent)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise UsageError(f"{flag} {path}: cannot write in {parent}: {exc.strerror or exc}") from None


def prediction_columns(outputs: dict[str, Any], keep: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Kept input columns, then each output; [N, k] outputs become name_0..name_{k-1}, and a
    sequence of maps (a ZipMap's {class: probability} per row) name_CLASS per class.

    A kept column named like an output column is written as input_NAME."""
    produced: dict[str, np.ndarray] = {}
    for name, value in outputs.items():
        if not isinstance(value, np.ndarray):
            produced.update(_map_columns(name, value))
            continue
        flat = value.reshape(len(value), -1) if value.ndim > 1 else value
        if flat.ndim == 1 or flat.shape[1] == 1:
            produced[name] = flat.reshape(-1)
        else:
            for j in range(flat.shape[1]):
                produced[f"{name}_{j}"] = flat[:, j]
    kept = {(f"input_{k}" if k in produced else k): v for k, v in keep.items()}
    return {**kept, **produced}


def _map_columns(name: str, maps: list[Any]) -> dict[str, np.ndarray]:
    """One column per class of a sequence of maps, in the first map's order (a ZipMap keeps the
    model's class order); anything else a model returns as a sequence becomes JSON text."""
    if not maps or not all(isinstance(m, dict) for m in maps):
        return {name: np.array([jsonfast.dumps(v).decode() for v in maps], dtype=object)}
    classes = list(maps[0])
    if any(m.keys() != maps[0].keys() for m in maps):
        raise InvalidInputError(f"output {name!r}: its maps do not all have the classes {classes}")
    return {f"{name}_{c}": np.array([m[c] for m in maps]) for c in classes}


class Assembler:
    """Builds the output chunk by chunk, checkpointing each chunk in the journal.

    A new chunk is appended to the journal (Arrow IPC for Parquet output, the
    text itself for CSV and JSON Lines) and to `.OUTPUT.partial` beside the
    output; a chunk finished by an interrupted run (`done`: `finished_parts`)
    is read back from the journal instead. `close` fsyncs and
    renames the partial file to the output: only then does the final name
    exist. Encoding overlaps inference, since this runs in the writer thread.
    """

    def __init__(self, work: Path, fmt: str, output: Path, done: dict[int, tuple[int, int] | None] | None = None) -> None:
        self.fmt, self.output = fmt, output
        self.journal, self.done = Journal(work), done or {}
        self.partial = output.with_name(f".{output.name}.partial")
        output.parent.mkdir(parents=True, exist_ok=True)
        self._parquet: Any = None
        self._sink: Any = None  # the Parquet writer's file
        self._text = None if fmt == "parquet" else self.partial.open("wb")
        self._header_done = False
        self.rows = 0

    def add(self, index: int, columns: dict[str, np.ndarray] | None) -> None:
        """A newly scored chunk (None: every row was rejected)."""
        if columns is None:
            self.journal.append(index, None)
            return
        if self.fmt == "parquet":
            pa = require("pyarrow")
            table = pa.Table.from_arrays([arrow_array(v) for v in columns.values()], names=list(columns))
            sink = pa.BufferOutputStream()
            with require("pyarrow.ipc").new_file(sink, table.schema) as writer:
                writer.write_table(table)
            self.journal.append(index, sink.getvalue())
            self._append_table(table)
        else:
            header, body = _text_rows(self.fmt, columns)
            self.journal.append(index, header + body)
            self._append_text(header, body)

    def add_done(self, index: int) -> None:
        """A chunk an interrupted run finished: append its part as it is."""
        where = self.done.get(index)
        if where is None:
            return  # a chunk without rows: nothing to append
        try:
            data = read_payload(self.journal.path, where)
            if self.fmt == "parquet":
                pa = require("pyarrow")
                table = require("pyarrow.ipc").open_file(pa.py_buffer(data)).read_all()
            else:
                cut = data.index(b"\n") + 1 if self.fmt == "csv" else 0
        except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
            raise InvalidInputError(f"{self.journal.path}: an interrupted run's part is unreadable at byte "
                                    f"{where[0]}: {str(exc).splitlines()[0]}",
                                    hint="Run again without --resume to start over") from None
        if self.fmt == "parquet":
            self._append_table(table)
        else:
            self._append_text(data[:cut], data[cut:])

    def close(self) -> int:
        """Finish the output under its final name; rows written."""
        self.journal.close()
        self._close_files()
        if self.rows == 0:
            self.partial.unlink(missing_ok=True)
            return 0
        with self.partial.open("rb") as fh:
            os.fsync(fh.fileno())
        os.replace(self.partial, self.output)
        return self.rows

    def abort(self) -> None:
        """Stop without an output (the journal stays for --resume)."""
        try:
            self.journal.close()
            self._close_files()
        finally:
            self.partial.unlink(missing_ok=True)

    def _close_files(self) -> None:
        try:
            if self._parquet is not None:
                self._parquet.close()
        finally:
            if self._sink is not None:
                self._sink.close()
            if self._text is not None:
                self._text.close()

    def _append_table(self, table: Any) -> None:
        if self._parquet is None:
            pa = require("pyarrow")
            # Dictionary encoding costs ~3x the time on float columns and on unique values
            # (ids), and makes them larger: only columns that repeat their values get it.
            dictionary = [f.name for f in table.schema
                          if not pa.types.is_floating(f.type) and _repeats(table.column(f.name))]
            self._sink = pa.OSFile(str(self.partial), "wb")
            self._parquet = _parquet_writer(self._sink, table.schema, dictionary)
            self._schema = table.schema
        try:
            if not table.schema.equals(self._schema):  # a cast imports pyarrow.compute (~0.1 s)
                table = table.cast(self._schema)
        except (ValueError, TypeError, NotImplementedError) as exc:  # pyarrow's ArrowInvalid is a ValueError
            changed = [f.name for f in table.schema if f.name in self._schema.names
                       and f.type != self._schema.field(f.name).type]
            raise InvalidInputError(
                f"column {', '.join(map(repr, changed)) or '?'} changes type between chunks "
                f"({self._schema.field(changed[0]).type if changed else '?'} first, then "
                f"{table.schema.field(changed[0]).type if changed else '?'}): one Parquet file needs one type",
                hint="Make the column's values one type, or write CSV or JSON Lines") from exc
        self._parquet.write_table(table)
        self.rows += table.num_rows
        start_writeback(self._sink.fileno())  # the fsync in close() then waits for little

    def _append_text(self, header: bytes, body: bytes) -> None:
        if not self._header_done:
            self._text.write(header)
            self._header_done = True
        self._text.write(body)
        self.rows += body.count(b"\n")
        self._text.flush()
        start_writeback(self._text.fileno())


def _parquet_writer(sink: Any, schema: Any, dictionary: list[str]) -> Any:
    """pyarrow's Parquet writer (what `pyarrow.parquet.ParquetWriter` wraps, with its
    defaults: the same bytes), made without importing `pyarrow.parquet`, which imports
    pyarrow's file systems and `ssl` (~13 ms of the GIL in the first chunk's writing). A
    pyarrow whose writer takes other arguments gets the usual way."""
    try:
        from pyarrow._parquet import ParquetWriter

        return ParquetWriter(sink, schema, use_dictionary=dictionary, compression="snappy", version="2.6",
                             write_statistics=True, writer_engine_version="V2", data_page_version="1.0",
                             use_compliant_nested_type=True, store_schema=True)
    except (ImportError, TypeError):
        return require("pyarrow.parquet").ParquetWriter(sink, schema, use_dictionary=dictionary)


def _repeats(column: Any) -> bool:
    """Whether a column's first values hold at most half as many distinct values as rows."""
    values = arrow_column(column[:10_000])
    try:
        distinct = len(set(values.tolist())) if values.dtype.kind == "O" or values.ndim > 1 else _distinct(values)
    except TypeError:  # unhashable values (lists)
        return True
    return distinct <= len(values) // 2


def _distinct(values: np.ndarray) -> int:
    """How many distinct values (np.unique's count without importing numpy.ma, ~20 ms of
    the GIL in the writer's first chunk)."""
    if len(values) == 0:
        return 0
    ordered = np.sort(values)
    return 1 + int(np.count_nonzero(ordered[1:] != ordered[:-1]))


def _text_rows(fmt: str, columns: dict[str, np.ndarray]) -> tuple[bytes, bytes]:
    """(header, body) of CSV or JSON Lines for one chunk."""
    if fmt == "jsonl":
        names = list(columns)
        values = [c.tolist() for c in columns.values()]
        return b"", b"".join(jsonfast.dumps(dict(zip(names, row))) + b"\n" for row in zip(*values))
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    header = buffer.getvalue().encode()
    buffer.seek(0)
    buffer.truncate()
    writer.writerows(zip(*(_csv_values(v) for v in columns.values())))
    return header, buffer.getvalue().encode()


def _csv_values(values: np.ndarray) -> list[Any]:
    if values.dtype.kind == "f" and values.dtype.itemsize == 4:
        return [repr(float(v)) if v != v else f"{v:.9g}" for v in values]  # float32 at its own precision
    return values.tolist()


def write_rejects(path: Path, rejects: list[dict[str, Any]]) -> None:
    """Rejected rows as JSON Lines (file, row, column, value, reason)."""
    buffer = io.BytesIO()
    for reject in rejects:
        buffer.write(jsonfast.dumps(reject) + b"\n")
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(buffer.getvalue())
    os.replace(tmp, path)
