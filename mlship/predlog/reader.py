"""Reading prediction logs back: files, directories and globs of JSON Lines."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from pydantic import ValidationError

from mlship.data.tables import expand_paths
from mlship.errors import InvalidInputError
from mlship.predlog.schema import PredictionRecord


def log_files(spec: str | Path) -> list[Path]:
    """A file, a directory (its *.jsonl files) or a glob, sorted by name."""
    files = expand_paths(spec, {".jsonl"})
    if not files:
        raise InvalidInputError(f"no prediction logs found at {spec}")
    return files


def read_records(spec: str | Path) -> Iterator[PredictionRecord]:
    """Every record, validated; a final line without newline (a writer still
    busy, or killed) is skipped rather than reported."""
    for path in log_files(spec):
        with path.open("rb") as fh:
            for line_no, raw in enumerate(fh, start=1):
                if not raw.endswith(b"\n") or not raw.strip():
                    continue
                try:
                    record = PredictionRecord.model_validate(json.loads(raw))
                except (ValueError, RecursionError) as exc:
                    # ValueError: bad JSON or UTF-8, a number past the digit limit, pydantic's ValidationError.
                    raise InvalidInputError(f"{path}:{line_no}: not a mlship.predlog/v1 record: "
                                            f"{_reason(exc)}") from None
                yield record


def _reason(exc: Exception) -> str:
    """Why a line is not a record, in one line."""
    if isinstance(exc, ValidationError):
        err = exc.errors()[0]
        return f"{'.'.join(str(p) for p in err['loc']) or 'record'}: {err['msg']}"
    if isinstance(exc, json.JSONDecodeError):
        return exc.msg
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    return " ".join(str(exc).split()) or type(exc).__name__
