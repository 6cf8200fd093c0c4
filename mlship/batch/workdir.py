"""The work directory of a `predict` run: its state file and finished parts.

`.OUTPUT.mlship-work/` beside the output holds `state.json` (the fingerprint
of inputs, model and options) and one `part-NNNNNN.EXT` per finished chunk.
The state is written atomically (temporary file, fsync, rename). A state that
is empty or corrupt when --resume asks for it is invalid input (exit 3) naming
the file: nothing says which inputs its parts belong to.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Callable

from mlship.errors import InvalidInputError
from mlship.fsutil import atomic_write

STATE = "state.json"
_PART = re.compile(r"part-(\d{6})\.(arrow|csv|jsonl|empty)")


def work_dir(output: Path) -> Path:
    """Where a run writing `output` keeps its work."""
    return output.parent / f".{output.name}.mlship-work"


def prepare(work: Path, fingerprint: str, output: Path, resume: bool, info: Callable[[str], None]) -> set[int]:
    """Reuse the work of an interrupted run (with --resume and the same
    fingerprint) or start over; returns the indexes of finished chunks."""
    done: set[int] = set()
    if work.exists() or work.is_symlink():
        if not work.is_dir() or work.is_symlink():
            raise InvalidInputError(f"{work} is in the way: mlship keeps a run's work there",
                                    hint="Remove it, or choose another --output")
        state = work / STATE
        same = resume and (state.exists() or state.is_symlink()) and read_fingerprint(state) == fingerprint
        if same:
            done = finished_parts(work)
        else:
            info("starting over: " + ("the inputs or options changed since the interrupted run" if resume
                                      else f"removing an interrupted run's work in {work} (use --resume to continue it)"))
            shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    atomic_write(work / STATE, json.dumps({"fingerprint": fingerprint, "output": str(output)}).encode())
    return done


def read_fingerprint(state: Path) -> str:
    """The fingerprint a state file records; InvalidInputError naming the file otherwise."""
    hint = "Run again without --resume to start over"
    try:
        raw = state.read_bytes()
    except OSError as exc:
        raise InvalidInputError(f"{state}: cannot read the interrupted run's state: {exc.strerror or exc}",
                                hint=hint) from None
    if not raw.strip():
        raise InvalidInputError(f"{state}: the interrupted run's state is empty", hint=hint)
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"{state}: the interrupted run's state is corrupt: {str(exc).splitlines()[0]}",
                                hint=hint) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("fingerprint"), str):
        raise InvalidInputError(f"{state}: the interrupted run's state is corrupt: no fingerprint", hint=hint)
    return doc["fingerprint"]


def finished_parts(work: Path) -> set[int]:
    """Indexes of the chunks whose part (or empty marker) is in place."""
    return {int(m[1]) for p in work.iterdir() if (m := _PART.fullmatch(p.name))}
