"""Writing files so that a reader never sees half of one."""

from __future__ import annotations

import contextlib
import functools
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterator


def atomic_write(path: Path, data: bytes) -> None:
    """Write to a temporary file in the same directory, fsync, rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file the usual mode
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def start_writeback(fd: int) -> None:
    """Have the kernel start writing the file's dirty pages to disk now, without waiting
    for them (Linux: sync_file_range with SYNC_FILE_RANGE_WRITE; elsewhere nothing).

    No durability promise: the file still needs its fsync, which then finds little left
    to write. A file written in parts calls this after each part; errors are ignored (the
    fsync reports them)."""
    sync_file_range = _sync_file_range()
    if sync_file_range is not None:
        sync_file_range(fd, 0, 0, 2)  # SYNC_FILE_RANGE_WRITE; ctypes releases the GIL meanwhile


@functools.cache
def _sync_file_range():
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    try:
        call = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError):
        return None
    call.argtypes = (ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint)
    call.restype = ctypes.c_int
    return call


LOCK_WAIT_S = 60.0


@contextlib.contextmanager
def file_lock(path: Path, busy: Callable[[Path], Exception], wait_s: float = LOCK_WAIT_S) -> Iterator[None]:
    """Hold an exclusive flock on `path` (created if needed) for the body.

    Waits at most `wait_s`, then raises `busy(path)`. The kernel drops the lock
    when its holder dies, so a killed process never leaves it held; the lock
    file stays (removing it would let two processes lock two different files).
    """
    import fcntl

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
    try:
        deadline = time.monotonic() + wait_s
        delay = 0.005
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise busy(path) from None
                time.sleep(delay)
                delay = min(delay * 2, 0.1)  # short holders (an index update) are waited out quickly
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock
