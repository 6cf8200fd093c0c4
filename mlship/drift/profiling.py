"""`mlship profile`: profiles of data or logs, and merging them."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from mlship.drift.profile import Profile, is_profile_file, load_profile
from mlship.drift.sources import ReadReport, iter_frames
from mlship.errors import InvalidInputError


def build_profile(spec: str, *, chunk_rows: int = 50_000, strict: bool = False,
                  progress: Callable[[int], None] = lambda rows: None) -> tuple[Profile, ReadReport]:
    """One pass over the data in chunks (prediction rows with status 200 only)."""
    from mlship.drift.detection import _ok_rows, _rows

    read = ReadReport()
    profile = Profile()
    for frame in iter_frames(spec, chunk_rows=chunk_rows, strict=strict, report=read):
        ok = _ok_rows(frame)
        profile.add_frame(_rows(frame.columns, ok), int(ok.sum()))
        progress(frame.rows)
    if profile.rows == 0:
        raise InvalidInputError(f"{spec}: no rows to profile")
    return profile, read


def merge_profiles(paths: list[str | Path]) -> Profile:
    """Profiles of pieces, merged into the profile of the whole."""
    merged = Profile()
    for path in paths:
        if not is_profile_file(path):
            raise InvalidInputError(f"{path}: not a saved profile (mlship profile DATA -o FILE.json)")
        merged.merge(load_profile(Path(path)))
    return merged
