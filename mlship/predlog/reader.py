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
                    yield PredictionRecord.model_validate(json.loads(raw))
                except (json.JSONDecodeError, ValidationError) as exc:
                    reason = exc.msg if isinstance(exc, json.JSONDecodeError) else _first_error(exc)
                    raise InvalidInputError(f"{path}:{line_no}: not a mlship.predlog/v1 record: {reason}") from None


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    return f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}"
