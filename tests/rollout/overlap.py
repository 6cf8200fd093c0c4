"""Run rollout commands that provably overlap: each one has taken its view of the
rollout and is waiting for the rollout's lock before any of them acts.

The test holds the lock itself, starts every command as a real process, reads
each one's stderr until it reports that it waits for the lock, and only then
lets go. No sleeps: the order comes from the lock and the notices.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import ContextManager

from tests.support import Result

WAITING = "is locked by another mlship"


@contextlib.contextmanager
def file_lock_held(lock: Path) -> Iterator[None]:
    """Hold a FileStateStore's lock (`DIR/NAME.lock`, flock) as another mlship would."""
    import fcntl

    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a+") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


@contextlib.contextmanager
def s3_lock_held(s3, bucket: str, key: str) -> Iterator[None]:
    """Hold the S3 state store's lock object (created with If-None-Match: *) as another mlship would."""
    import json
    import time

    body = json.dumps({"owner": "test", "expires": time.time() + 3600}).encode()
    etag = s3.put_object(Bucket=bucket, Key=key, Body=body, IfNoneMatch="*")["ETag"]
    try:
        yield
    finally:
        s3.delete_object(Bucket=bucket, Key=key, IfMatch=etag)


def run_overlapping(hold: ContextManager[None], *commands: list[str], timeout: float = 300) -> list[Result]:
    """Run `python -m mlship ARGS` for each command while `hold` keeps the rollout locked;
    release once every command said it waits for the lock. Results in command order.

    `timeout` only bounds a failing run (a command that never reports waiting)."""
    procs: list[subprocess.Popen[str]] = []
    readers: list[_StderrReader] = []
    with hold:
        for args in commands:
            proc = subprocess.Popen([sys.executable, "-m", "mlship", *args], stdin=subprocess.DEVNULL,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            procs.append(proc)
            readers.append(_StderrReader(proc))
        waited = [reader.waiting.wait(timeout) and WAITING in "".join(reader.lines) for reader in readers]
        if not all(waited):
            for proc in procs:
                proc.kill()
    results = []
    for proc, reader in zip(procs, readers):
        out = proc.stdout.read()  # small: a line or a JSON document; stderr is the reader's
        proc.wait(timeout)
        reader.join(timeout)
        results.append(Result(proc.returncode, out, "".join(reader.lines)))
    assert all(waited), f"a command did not wait for the lock: {results}"
    return results


class _StderrReader(threading.Thread):
    """Collects a process's stderr; `waiting` is set at the lock notice or at EOF."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        super().__init__(daemon=True)
        self.proc, self.lines, self.waiting = proc, [], threading.Event()
        self.start()

    def run(self) -> None:
        for line in self.proc.stderr:
            self.lines.append(line)
            if WAITING in line:
                self.waiting.set()
        self.waiting.set()
