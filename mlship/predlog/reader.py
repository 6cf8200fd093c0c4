"""Reading prediction logs back: the one reader, used by drift, the rollout gate and tests.

SPEC is a file, a directory (its log files) or a glob. JSON Lines are read a
line at a time and handed out in chunks of at most `chunk_rows` records
(memory depends on the chunk, not the file), Parquet in record batches. The
rules (docs/prediction-log.md):

- a blank line, or a final line without a newline (a writer still busy, or
  killed), is skipped;
- a malformed line (bad JSON, not an object, a field of the wrong type) is an
  InvalidInputError naming file:line when `strict`, else skipped and counted
  in a `ReadReport`;
- `complete` records must hold every field the schema requires, with exactly
  its types (the gate compares raw values); otherwise present fields are
  type-checked and plain data rows (no inputs/outputs) are read too, one
  kind per file (drift reads data files through here);
- a `LogFilter` keeps one model's records, of some versions or variants, in a
  time window; records of other models are skipped before they are checked.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlship import jsonfast
from mlship.data.tables import expand_paths
from mlship.errors import InvalidInputError
from mlship.predlog.schema import META_TYPES, PredictionRecord, ts_epoch

LOG_SUFFIXES = frozenset({".jsonl", ".ndjson", ".json", ".parquet", ".pq"})
PARQUET_SUFFIXES = frozenset({".parquet", ".pq"})


@dataclass(frozen=True)
class LogFilter:
    """Which records to keep; None keeps any. `since`/`until` ([since, until))
    are ISO 8601 UTC times as records write `ts`, so they compare as text."""

    model: str | None = None
    versions: frozenset[str] | None = None
    variants: frozenset[str] | None = None
    since: str | None = None
    until: str | None = None

    def keeps_model(self, record: dict[str, Any]) -> bool:
        return self.model is None or record.get("model") == self.model

    def keeps(self, record: dict[str, Any]) -> bool:
        """True for a checked record of the wanted versions, variants and window."""
        ts = record.get("ts")
        return ((self.versions is None or record.get("version") in self.versions)
                and (self.variants is None or record.get("variant") in self.variants)
                and (self.since is None or (isinstance(ts, str) and ts >= self.since))
                and (self.until is None or (isinstance(ts, str) and ts < self.until)))

    def may_hold(self, path: Path) -> bool:
        """False for a file last written before the window opened (it holds nothing newer)."""
        if self.since is None:
            return True
        return os.stat(path).st_mtime >= ts_epoch(self.since) - 1


READ_BUFFER = 1 << 20  # bytes: Parquet column chunks are streamed through a buffer this size


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

    def merge(self, other: "ReadReport") -> None:
        """Add what another reading (of other files) skipped, after this one's."""
        self.bad_lines += other.bad_lines
        self.examples = (self.examples + other.examples)[:5]
        self.files += other.files


@dataclass
class LogChunk:
    """Consecutive records of one file: dicts (JSON Lines) or a pyarrow batch (Parquet)."""

    path: Path
    records: list[dict[str, Any]] | None = None
    batch: Any = None

    @property
    def rows(self) -> int:
        return len(self.records) if self.records is not None else self.batch.num_rows


def log_files(spec: str | Path, *, suffixes: Iterable[str] = LOG_SUFFIXES, recursive: bool = False,
              hint: str | None = None) -> list[Path]:
    """A file, a directory (its log files) or a glob, sorted by name; [] for an
    empty directory, an InvalidInputError when SPEC names nothing."""
    files = expand_paths(spec, set(suffixes), recursive=recursive)
    if files is None:
        raise InvalidInputError(f"prediction logs not found: {spec}", hint=hint)
    return files


def read_log(specs: str | Path | Iterable[str | Path], *, where: LogFilter | None = None, complete: bool = False,
             strict: bool = True, chunk_rows: int = 50_000, report: ReadReport | None = None,
             suffixes: Iterable[str] = LOG_SUFFIXES, recursive: bool = True,
             hint: str | None = None) -> Iterator[LogChunk]:
    """The records of every log file SPECS name, in chunks, filtered by `where`."""
    report = report if report is not None else ReadReport()
    for spec in [specs] if isinstance(specs, (str, Path)) else specs:
        for path in log_files(spec, suffixes=suffixes, recursive=recursive, hint=hint):
            try:
                if where is not None and not where.may_hold(path):
                    continue
                report.files.append(str(path))
                if path.suffix.lower() in PARQUET_SUFFIXES:
                    yield from (LogChunk(path, batch=b) for b in iter_parquet(path, chunk_rows=chunk_rows, where=where))
                else:
                    yield from (LogChunk(path, records=r) for r in iter_jsonl(
                        path, where=where, complete=complete, strict=strict, chunk_rows=chunk_rows, report=report))
            except FileNotFoundError:
                continue  # rotated away while we looked
            except OSError as exc:
                raise InvalidInputError(f"{path}: cannot read: {exc.strerror or exc}") from None


def read_records(spec: str | Path) -> Iterator[PredictionRecord]:
    """Every record of the JSON Lines logs at SPEC, validated; the first bad line is an error."""
    files = log_files(spec, suffixes={".jsonl"})
    if not files:
        raise InvalidInputError(f"no prediction logs found at {spec}")
    for chunk in read_log(files, complete=True, suffixes={".jsonl"}, recursive=False):
        yield from (PredictionRecord.model_validate(r) for r in chunk.records or [])


def iter_jsonl(path: Path, *, where: LogFilter | None = None, complete: bool = False, strict: bool = True,
               chunk_rows: int = 50_000, report: ReadReport | None = None) -> Iterator[list[dict[str, Any]]]:
    """The kept records of one JSON Lines file, `chunk_rows` at a time (see the module's rules)."""
    report = report if report is not None else ReadReport()
    records: list[dict[str, Any]] = []
    kinds = _Kinds()
    with path.open("rb") as fh:
        for line_no, raw in enumerate(fh, start=1):
            if not raw.endswith(b"\n") or not raw.strip():
                continue  # blank, or a writer's unfinished last line
            try:
                record = _parse(raw)
                if where is not None and not where.keeps_model(record):
                    continue
                _check(record, complete, kinds)
            except (ValueError, RecursionError) as exc:  # RecursionError: deep nesting, without orjson
                _malformed(f"{path}:{line_no}", _reason(exc), complete, strict, report)
                continue
            if where is None or where.keeps(record):
                records.append(record)
            if len(records) == chunk_rows:
                yield records
                records = []
    if records:
        yield records


def _parse(raw: bytes) -> dict[str, Any]:
    record = jsonfast.loads(raw)  # ValueError: bad JSON or UTF-8, a number past the digit limit
    if not isinstance(record, dict):
        raise ValueError("not a JSON object")
    return record


class _Kinds:
    """The first record of a file decides its kind: prediction-log records or plain data rows."""

    def __init__(self) -> None:
        self.log: bool | None = None

    def check(self, is_log: bool) -> None:
        if self.log is not None and is_log != self.log:
            raise ValueError("a data row among log records" if self.log else "a log record among data rows")
        self.log = is_log


def _check(record: dict[str, Any], complete: bool, kinds: _Kinds) -> None:
    """Refuse (ValueError) a record that breaks the schema: its meta data becomes the
    columns that windows, versions and gates group and compare by."""
    if complete:
        PredictionRecord.model_validate(record, strict=True)  # pydantic's ValidationError is a ValueError
        return
    for part in ("inputs", "outputs"):
        if part in record and record[part] is not None and not isinstance(record[part], dict):
            raise ValueError(f"'{part}' is not an object")
    is_log = "inputs" in record or "outputs" in record
    kinds.check(is_log)
    if is_log:
        check_types(record)


def check_types(record: dict[str, Any]) -> None:
    """Refuse (ValueError) a record whose top-level fields have the wrong type."""
    for key, (types, nullable) in META_TYPES.items():
        if key not in record:
            continue
        value = record[key]
        if value is None and nullable:
            continue
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            raise ValueError(f"'{key}' is {type(value).__name__}, not {' or '.join(t.__name__ for t in types)}")


def _malformed(where: str, why: str, complete: bool, strict: bool, report: ReadReport) -> None:
    if complete and strict:
        raise InvalidInputError(f"{where}: not a mlship.predlog/v1 record: {why}")
    if strict:
        raise InvalidInputError(f"{where}: malformed record: {why}", hint="Drop --strict to skip and count such lines")
    report.note(where, why)


def _reason(exc: BaseException) -> str:
    """Why a line is not a record, in one line."""
    from pydantic import ValidationError

    if isinstance(exc, ValidationError):
        err = exc.errors()[0]
        return f"{'.'.join(str(p) for p in err['loc']) or 'record'}: {err['msg']}"
    if isinstance(exc, json.JSONDecodeError):
        return exc.msg
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def iter_parquet(path: Path, *, chunk_rows: int = 50_000, where: LogFilter | None = None,
                 row_groups: list[int] | None = None) -> Iterator[Any]:
    """A Parquet file's record batches (of `row_groups` only, when given); inputs/outputs kept
    as structs (logs converted from JSON Lines) are flattened to `inputs.NAME`/`outputs.NAME` columns."""
    from mlship.extras import require

    pq = require("pyarrow.parquet")
    import pyarrow as pa

    # pre_buffer=False: pre-buffering holds whole column chunks and costs ~150 MB more at peak;
    # buffer_size: pages are read through a 1 MiB buffer, not each column chunk whole (a 500,000-row
    # group of 100 columns: ~250 MB less at peak, and faster).
    parquet = pq.ParquetFile(path, pre_buffer=False, buffer_size=READ_BUFFER)
    for batch in parquet.iter_batches(batch_size=chunk_rows, row_groups=row_groups):
        if any(pa.types.is_struct(f.type) for f in batch.schema):
            batch = pa.Table.from_batches([batch]).flatten().combine_chunks().to_batches()[0]
        if where is not None:
            batch = _filter_batch(batch, where)
        yield batch


def _filter_batch(batch: Any, where: LogFilter) -> Any:
    """The rows of a Parquet batch that `where` keeps (a missing column keeps none)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    names = batch.schema.names
    mask = pa.array([True] * batch.num_rows)
    tests = [("model", pc.equal, where.model), ("version", pc.is_in, where.versions),
             ("variant", pc.is_in, where.variants), ("ts", pc.greater_equal, where.since), ("ts", pc.less, where.until)]
    for column, test, value in tests:
        if value is None:
            continue
        if column not in names:
            return batch.slice(0, 0)
        arg = pa.array(sorted(value)) if isinstance(value, frozenset) else value
        kept = test(batch.column(column), value_set=arg) if test is pc.is_in else test(batch.column(column), arg)
        mask = pc.and_kleene(mask, kept)
    return batch.filter(mask)


def flatten_outputs(outputs: dict[str, Any]) -> dict[str, Any]:
    """A record's outputs as columns: `outputs.NAME`, `outputs.NAME_j` for each item of a list,
    and `outputs.NAME_CLASS` for each class of a map (a ZipMap's probabilities), as predict
    writes them."""
    row: dict[str, Any] = {}
    for name, value in outputs.items():
        if isinstance(value, list) and value and not isinstance(value[0], (list, dict)):
            for j, item in enumerate(value):
                row[f"outputs.{name}_{j}"] = item
        elif isinstance(value, dict) and value:
            for key, item in value.items():
                row[f"outputs.{name}_{key}"] = item
        else:
            row[f"outputs.{name}"] = value
    return row
