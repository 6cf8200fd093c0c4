"""The work directory of a `predict` run: its state file and finished parts.

`.OUTPUT.mlship-work/` beside the output holds `state.json` (the fingerprint
of inputs, model and options) and `parts.journal`, the finished chunks one
after another: a header (magic, chunk index, kind, payload length, CRC-32 of
the payload) then the payload, fdatasynced before the chunk counts as done.
One file instead of a file per chunk: removing a run's work is one unlink,
not one freed file per chunk (30-80 ms for 20 fsynced parts on a disk
mounted with `discard`). A record cut short at the end (a crash while
appending) is a chunk not done: --resume drops it and scores it again. A
record whose magic or checksum is wrong is invalid input (exit 3) naming the
file, as is a state that is empty or corrupt: nothing says which inputs its
parts belong to. The state is written atomically (temporary file, fsync,
rename).
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import zlib
from pathlib import Path
from typing import Any, Callable

from mlship.errors import InvalidInputError
from mlship.fsutil import atomic_write

STATE = "state.json"
JOURNAL = "parts.journal"
_HEAD = struct.Struct("<4sIBQI")  # magic, chunk index, kind, payload length, payload CRC-32
_MAGIC = b"MSJ1"
_ROWS, _NO_ROWS = 1, 0
_RESUME_HINT = "Run again without --resume to start over"


def work_dir(output: Path) -> Path:
    """Where a run writing `output` keeps its work."""
    return output.parent / f".{output.name}.mlship-work"


def prepare(work: Path, fingerprint: str, output: Path, resume: bool,
            info: Callable[[str], None]) -> dict[int, tuple[int, int] | None]:
    """Reuse the work of an interrupted run (with --resume and the same
    fingerprint) or start over; returns the finished chunks (see `finished_parts`)."""
    done: dict[int, tuple[int, int] | None] = {}
    if work.exists() or work.is_symlink():
        if not work.is_dir() or work.is_symlink():
            raise InvalidInputError(f"{work} is in the way: mlship keeps a run's work there",
                                    hint="Remove it, or choose another --output")
        state = work / STATE
        same = resume and (state.exists() or state.is_symlink()) and read_fingerprint(state) == fingerprint
        if same:
            journal = work / JOURNAL
            done, whole = read_journal(journal)
            if journal.exists() and journal.stat().st_size > whole:
                os.truncate(journal, whole)  # a record cut short by a crash: scored again
        else:
            info("starting over: " + ("the inputs or options changed since the interrupted run" if resume
                                      else f"removing an interrupted run's work in {work} (use --resume to continue it)"))
            shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    atomic_write(work / STATE, json.dumps({"fingerprint": fingerprint, "output": str(output)}).encode())
    return done


def read_fingerprint(state: Path) -> str:
    """The fingerprint a state file records; InvalidInputError naming the file otherwise."""
    hint = _RESUME_HINT
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


def finished_parts(work: Path) -> dict[int, tuple[int, int] | None]:
    """The chunks an interrupted run finished: index -> (offset, length) of its payload in
    the journal, or None for a chunk without rows (every row rejected)."""
    return read_journal(work / JOURNAL)[0]


def read_journal(path: Path) -> tuple[dict[int, tuple[int, int] | None], int]:
    """The journal's whole records (see `finished_parts`) and the length they take; a
    record cut short at the end is left out. InvalidInputError naming the file when a
    record's magic or checksum is wrong."""
    done: dict[int, tuple[int, int] | None] = {}
    try:
        fh = path.open("rb")
    except FileNotFoundError:
        return done, 0
    except OSError as exc:
        raise _unreadable(path, 0, exc.strerror or str(exc)) from None
    with fh:
        offset = 0
        while len(head := fh.read(_HEAD.size)) == _HEAD.size:
            magic, index, kind, length, crc = _HEAD.unpack(head)
            if magic != _MAGIC or kind not in (_ROWS, _NO_ROWS):
                raise _unreadable(path, offset, "not a chunk record")
            payload = fh.read(length)
            if len(payload) < length:
                break  # cut short by a crash while it was appended
            if zlib.crc32(payload) != crc:
                raise _unreadable(path, offset, "its checksum does not match")
            done[index] = (offset + _HEAD.size, length) if kind == _ROWS else None
            offset += _HEAD.size + length
    return done, offset


def read_payload(path: Path, where: tuple[int, int]) -> bytes:
    """A finished chunk's payload (checked when the journal was read)."""
    with path.open("rb") as fh:
        fh.seek(where[0])
        return fh.read(where[1])


def _unreadable(path: Path, offset: int, why: str) -> InvalidInputError:
    return InvalidInputError(f"{path}: an interrupted run's part is unreadable at byte {offset}: {why}",
                             hint=_RESUME_HINT)


class Journal:
    """Appends finished chunks to `work/parts.journal` (opened at the first one)."""

    def __init__(self, work: Path) -> None:
        self.path = work / JOURNAL
        self._fh: Any = None

    def append(self, index: int, payload: Any) -> None:
        """Chunk `index` is done once this returns; `payload` (bytes-like) None: no rows."""
        if self._fh is None:
            self._fh = self.path.open("ab")
        data = b"" if payload is None else payload
        self._fh.write(_HEAD.pack(_MAGIC, index, _NO_ROWS if payload is None else _ROWS, memoryview(data).nbytes,
                                  zlib.crc32(data)))
        self._fh.write(data)
        self._fh.flush()
        os.fdatasync(self._fh.fileno())  # whole on disk before the chunk counts as done

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
