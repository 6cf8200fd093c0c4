"""`mlship profile --engine ray`: profile the pieces of a large reference in parallel, then merge.

A piece is one file of the reference, or a run of row groups of a Parquet
file when there are fewer files than tasks. Each Ray task profiles a
contiguous run of pieces (the same reading and profiling as the local
engine); the driver merges the partial profiles in input order, so the
result is the single-pass profile: row, missing and category counts, sketch
buckets and distinct-value sketches exactly (bucket boundaries depend on the
value alone), moments up to floating-point rounding (Chan's parallel update),
and row-order signals (an id increasing row by row) as if read in one pass.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from mlship.drift.profile import Profile
from mlship.errors import InvalidInputError, MlshipError
from mlship.model.features import DeclaredFeatures
from mlship.predlog.reader import ReadReport


@dataclass(frozen=True)
class Piece:
    """A file, or some row groups of a Parquet file."""

    path: str
    row_groups: tuple[int, ...] | None = None


@dataclass
class PieceProfile:
    """What one task sends back."""

    profile: Profile
    bad_lines: int
    examples: list[str]


def pieces(spec: str, parts: int) -> list[Piece]:
    """The reference's files in order; Parquet files split by row groups while there are
    fewer pieces than `parts`."""
    from mlship.drift.frames import data_files

    files = data_files(spec)
    if len(files) >= parts:
        return [Piece(str(f)) for f in files]
    per_file = math.ceil(parts / len(files))
    out: list[Piece] = []
    for f in files:
        groups = _row_groups(f)
        k = min(per_file, groups)
        if k <= 1:
            out.append(Piece(str(f)))
            continue
        bounds = [round(i * groups / k) for i in range(k + 1)]
        out += [Piece(str(f), tuple(range(a, b))) for a, b in zip(bounds, bounds[1:]) if b > a]
    return out


def profile_pieces(run: list[Piece], chunk_rows: int, strict: bool) -> PieceProfile:
    """One task: the profile of a contiguous run of pieces (runs in a Ray worker)."""
    from mlship.drift.detection import profile_frames
    from mlship.drift.frames import iter_frames, iter_row_group_frames

    read = ReadReport()
    merged = Profile()
    for piece in run:
        if piece.row_groups is None:
            frames = iter_frames(piece.path, chunk_rows=chunk_rows, strict=strict, report=read)
        else:
            frames = iter_row_group_frames(Path(piece.path), list(piece.row_groups), chunk_rows=chunk_rows)
        merged.merge(profile_frames(frames))
    return PieceProfile(merged, read.bad_lines, read.examples)


def profile_with_ray(spec: str, *, chunk_rows: int = 50_000, strict: bool = False, address: str | None = None,
                     num_cpus: int | None = None, partitions: int | None = None,
                     progress: Callable[[int, int], None] = lambda done, total: None) -> tuple[Profile, ReadReport, int]:
    """The profile of `spec`, made by Ray tasks over its pieces and merged in order; the read
    report and the number of tasks. Starts a local Ray (loopback, `num_cpus`) unless `address`
    names a cluster, and shuts down what it started."""
    from mlship.batch.ray_engine import start_ray
    from mlship.extras import require

    ray = require("ray")
    started = start_ray(ray, address, num_cpus)
    try:
        parts = partitions or max(1, int(ray.cluster_resources().get("CPU", os.cpu_count() or 1)))
        runs = _contiguous(pieces(spec, parts), parts)
        task = ray.remote(num_cpus=1, max_retries=0)(profile_pieces)
        refs = [task.remote(run, chunk_rows, strict) for run in runs]
        results = _gather(ray, refs, progress)
    finally:
        if started:
            ray.shutdown()
    return _merge(results, spec, len(runs))


def build_profile_ray(spec: str, *, chunk_rows: int = 50_000, strict: bool = False, model: Path | None = None,
                      features: DeclaredFeatures | None = None, address: str | None = None, num_cpus: int | None = None,
                      partitions: int | None = None) -> tuple[Profile, int]:
    """`mlship profile --engine ray`: the merged profile and the number of tasks; with `model`,
    data without outputs is then scored once (the batch engine) as `build_profile` does."""
    from mlship.drift.scoring import add_model_outputs, needs_scoring

    profile, _, tasks = profile_with_ray(spec, chunk_rows=chunk_rows, strict=strict, address=address,
                                         num_cpus=num_cpus, partitions=partitions)
    if model is not None and needs_scoring(profile):
        add_model_outputs(profile, spec, model, chunk_rows=chunk_rows, features=features)
    return profile, tasks


def _merge(results: list[PieceProfile], spec: str, tasks: int) -> tuple[Profile, ReadReport, int]:
    profile, read = Profile(), ReadReport()
    for part in results:
        profile.merge(part.profile)
        read.bad_lines += part.bad_lines
        read.examples += part.examples[:max(0, 5 - len(read.examples))]
    if profile.rows == 0:
        raise InvalidInputError(f"{spec}: no rows to profile")
    return profile, read, tasks


def _gather(ray: Any, refs: list[Any], progress: Callable[[int, int], None]) -> list[PieceProfile]:
    """The tasks' results in submission order; a task's mlship error is raised as itself."""
    pending = list(refs)
    while pending:
        _, pending = ray.wait(pending, num_returns=1)
        progress(len(refs) - len(pending), len(refs))
    try:
        return ray.get(refs)
    except ray.exceptions.RayTaskError as exc:
        cause = getattr(exc, "cause", None)
        if isinstance(cause, MlshipError):
            raise cause from None
        raise


def _contiguous(items: list[Piece], parts: int) -> list[list[Piece]]:
    """`items` cut into at most `parts` runs of consecutive items, as even as can be."""
    k = max(1, min(parts, len(items)))
    bounds = [round(i * len(items) / k) for i in range(k + 1)]
    return [items[a:b] for a, b in zip(bounds, bounds[1:]) if b > a]


def _row_groups(path: Path) -> int:
    if path.suffix.lower() != ".parquet":
        return 1
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(path).metadata.num_row_groups
    except (OSError, ValueError):
        return 1  # unreadable: the task's reader names the problem
