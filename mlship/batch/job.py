"""`mlship predict`: options, the resumable work directory, and the summary."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from mlship.batch.inputs import input_files
from mlship.data.chunks import count_rows, file_columns
from mlship.batch.workdir import prepare, work_dir
from mlship.errors import InvalidInputError
from mlship.model.features import DeclaredFeatures
from mlship.model.providers import ProviderRequest
from mlship.model.feeds import missing_columns_error, needed_columns



class PredictOptions(BaseModel):
    """One batch-scoring job."""

    model: Path
    input: str
    output: Path
    batch_size: int = Field(50_000, ge=1)
    keep_columns: list[str] = Field(default_factory=list)
    on_error: Literal["fail", "skip"] = "fail"
    allow_missing: bool = Field(False, description="Missing values reach float inputs as NaN instead of being "
                                "refused (`missing_values: allow`).")
    rejects: Path | None = None
    resume: bool = False
    threads: int | None = Field(None, ge=1, description="onnxruntime intra-op threads per run (default 1).")
    parallel: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=1, description="Runs scored at once; a large chunk is scored "
                          "as that many row ranges.")
    log_dir: Path | None = None
    name: str = "model"
    version: str = "1"
    engine: Literal["local", "ray"] = "local"
    address: str | None = None
    features: DeclaredFeatures | None = Field(None, description="Column names of 2-D inputs (--features, mlship.yaml).")
    providers: ProviderRequest | None = Field(None, description="Execution providers, best first [cpu].")

    @property
    def rejects_path(self) -> Path:
        return self.rejects or self.output.with_name(self.output.name + ".rejects.jsonl")


class PredictSummary(BaseModel):
    """What a run did."""

    engine: str
    input_files: int
    rows: int = Field(description="Rows scored and written.")
    rejects: int = Field(description="Rows skipped (--on-error skip).")
    chunks: int
    resumed_chunks: int = Field(description="Chunks taken from an interrupted run.")
    seconds: float
    rows_per_s: float
    output: str
    rejects_file: str | None
    log_dir: str | None


@dataclass
class Plan:
    """Input files, the columns to read, and the work directory."""

    files: list[Path]
    columns: list[str]
    total_rows: int | None
    work: Path
    done: dict[int, tuple[int, int] | None] = field(default_factory=dict)  # finished_parts


def plan_job(options: PredictOptions, model_sha256: str, info: Any,
             inputs: tuple[list[Path], list[str], int | None]) -> Plan:
    """The plan for `inputs` (resolve_inputs' answer): prepare (or reuse, with --resume)
    the work directory."""
    files, columns, total = inputs
    work = work_dir(options.output)
    done = prepare(work, _fingerprint(options, files, model_sha256), options.output, options.resume, info)
    return Plan(files, columns, total, work, done)


def resolve_inputs(options: PredictOptions, signature: Any) -> tuple[list[Path], list[str], int | None]:
    """Input files, the columns to read from them, and the row total when known."""
    files = input_files(options.input)
    available = file_columns(files[0])
    absent = [c for c in options.keep_columns if c not in available]
    if absent:
        raise InvalidInputError(f"{files[0]}: no column {', '.join(map(repr, absent))} to keep",
                                hint=f"The file has: {', '.join(available[:12])}")
    needed = needed_columns(signature, available)
    if not needed:
        error = missing_columns_error(files[0], signature, signature.inputs, available)
        raise InvalidInputError(f"{files[0]}: none of the columns the model needs are in the file: "
                                f"{error.message.removeprefix(f'{files[0]}: ')}", hint=error.hint)
    columns = list(dict.fromkeys(needed + options.keep_columns))
    counts = [count_rows(f) for f in files]
    return files, columns, None if None in counts else sum(counts)


def text_columns(options: PredictOptions, signature: Any, columns: list[str]) -> frozenset[str]:
    """Kept columns the model does not read: CSV text stays as written (ids like 00123)."""
    return frozenset(options.keep_columns) - frozenset(needed_columns(signature, columns))


def _fingerprint(options: PredictOptions, files: list[Path], model_sha256: str) -> str:
    """Same inputs, model and options -> same chunks: safe to resume."""
    facts = {
        "model": model_sha256,
        "files": [(str(f.resolve()), f.stat().st_size, f.stat().st_mtime_ns) for f in files],
        "options": options.model_dump(mode="json", include={"batch_size", "keep_columns", "on_error", "allow_missing", "output"}),
    }
    if options.features:  # other names feed other columns: not the same chunks
        facts["features"] = options.features.model_dump(mode="json")
    return hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()
