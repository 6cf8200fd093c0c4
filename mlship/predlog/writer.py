"""Writing prediction logs off the request path.

`LogWriter.submit` never blocks: records (or entries that expand into
records, so per-row work happens off the request path too) go into a
bounded queue, and a background thread writes them as JSON Lines. When the queue is full the
record is dropped and counted. A submit does not wake the writer (a wake-up
per record would make it compete with the server's event loop for the GIL on
every request): it takes what has queued every `interval_s`, or as soon as
the queue is half full. Files rotate by size and by age; each line is
written whole, so a reader never sees half a record in a closed file.
`close` drains the queue: every accepted record reaches the disk.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any, Iterator, Protocol

from mlship import jsonfast

class Entry(Protocol):
    """Something that becomes log records in the writer thread (a record may
    also come as its JSON line, bytes ending in a newline)."""

    def records(self) -> list[dict[str, Any]]: ...


class LogWriter:
    """A background JSON Lines writer with rotation and a bounded queue."""

    def __init__(
        self,
        directory: Path,
        *,
        prefix: str = "predictions",
        max_bytes: int = 64 * 1024 * 1024,
        max_age_s: float = 3600.0,
        queue_size: int = 10_000,
        block: bool = False,
        interval_s: float = 0.05,
    ) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.prefix = prefix
        self.max_bytes = max_bytes
        self.max_age_s = max_age_s
        self.block = block  # batch scoring waits for the writer; serving never does
        self.queue_size = queue_size
        self.interval_s = interval_s
        self._wake_at = max(1, queue_size // 2)
        self._queue: deque[Any] = deque()  # append and popleft are atomic: no lock on the request path
        self._wake = threading.Event()
        self._stopping = False
        self._lock = threading.Lock()
        self.accepted = 0
        self.dropped = 0
        self.written = 0
        self.failed = 0  # records lost to a write error (counted, never fatal)
        self._file: Any = None
        self._file_bytes = 0
        self._file_opened = 0.0
        self._seq = 0
        self._thread = threading.Thread(target=self._run, name="mlship-predlog", daemon=True)
        self._thread.start()

    def submit(self, item: dict[str, Any] | Entry, rows: int = 1) -> bool:
        """Queue a record, or an entry of `rows` records; when the queue is
        full it is dropped (and counted) instead of waiting (`block`: waits)."""
        if len(self._queue) >= self.queue_size:
            if not self.block:
                with self._lock:
                    self.dropped += rows
                return False
            while len(self._queue) >= self.queue_size and self._thread.is_alive():
                self._wake.set()
                time.sleep(0.001)
        self._queue.append(item)
        with self._lock:
            self.accepted += rows
        if self.block or len(self._queue) >= self._wake_at:
            self._wake.set()  # half full (or batch scoring's few large entries): write now, drop nothing
        return True

    def submit_lines(self, lines: list[bytes]) -> bool:
        """Queue finished JSON lines (one record each) together, or drop them all (and count them)."""
        if len(self._queue) + len(lines) > self.queue_size:
            if not self.block:
                with self._lock:
                    self.dropped += len(lines)
                return False
            for line in lines:
                self.submit(line)
            return True
        self._queue.extend(lines)
        with self._lock:
            self.accepted += len(lines)
        if self.block or len(self._queue) >= self._wake_at:
            self._wake.set()
        return True

    def count_failed(self, records: int) -> None:
        """Records lost before they reached the queue (they could not be made)."""
        with self._lock:
            self.failed += records

    def close(self, timeout: float | None = None) -> None:
        """Write everything accepted so far, then close the file."""
        self._stopping = True
        self._wake.set()
        self._thread.join(timeout)

    @property
    def files(self) -> list[Path]:
        return sorted(self.directory.glob(f"{self.prefix}-*.jsonl"))

    def _run(self) -> None:
        while True:
            stop = self._stopping  # read before draining: what was queued before close is written
            while self._queue:
                # Take all that is waiting, so one write serves many records: each time
                # this thread needs the GIL back (after a system call) the event loop waits.
                items = [self._queue.popleft() for _ in range(len(self._queue))]
                try:
                    self._write(items)
                except Exception:  # a bad record or a full disk must not stop logging for good
                    with self._lock:
                        self.failed += sum(getattr(i, "rows", 1) for i in items)
            if stop:
                self._close_file()
                return
            self._wake.wait(self.interval_s)
            self._wake.clear()

    def _write(self, items: list[Any]) -> None:
        if all(type(item) is bytes for item in items):  # lines made on the request path: one join, one write
            size = sum(map(len, items))
            if self._file is not None and self._file_bytes + size <= self.max_bytes:
                self._flush(items, size)
                return
        chunk: list[bytes] = []
        size = 0
        for line in _lines(items):
            if chunk and self._file_bytes + size + len(line) > self.max_bytes:
                self._flush(chunk, size)  # fill this file up to its limit, then rotate
                chunk, size = [], 0
            chunk.append(line)
            size += len(line)
        if chunk:
            self._flush(chunk, size)

    def _flush(self, lines: list[bytes], size: int) -> None:
        self._rotate_if_due(size)
        if _IOV_MAX:
            _write_lines(self._file.fileno(), lines)
        else:  # pragma: no cover - a system without writev
            self._file.write(b"".join(lines))
            self._file.flush()
        self._file_bytes += size
        with self._lock:
            self.written += len(lines)

    def _rotate_if_due(self, incoming: int) -> None:
        now = time.time()
        full = self._file_bytes > 0 and self._file_bytes + incoming > self.max_bytes
        due = self._file is None or full or now - self._file_opened >= self.max_age_s
        if not due:
            return
        self._close_file()
        self._seq += 1
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
        path = self.directory / f"{self.prefix}-{stamp}-{os.getpid()}-{self._seq:04d}.jsonl"
        self._file = path.open("ab")
        self._file_bytes = 0
        self._file_opened = now

    def _close_file(self) -> None:
        if self._file is not None:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            self._file = None
            self._file_bytes = 0


def _iov_max() -> int:
    """Lines per writev call: the system's limit (16, POSIX's least, when it has none
    to tell); 0 without writev (then one joined write)."""
    if not hasattr(os, "writev"):
        return 0
    try:
        limit = os.sysconf("SC_IOV_MAX")
    except (AttributeError, ValueError, OSError):
        limit = -1
    return min(limit, 1024) if limit > 0 else 16


_IOV_MAX = _iov_max()


def _write_lines(fd: int, lines: list[bytes]) -> None:
    """Append the lines with writev, from where they are: no joined copy of them all (a
    write's hundreds of kB, made and freed each time, cost more than the write itself),
    going on after a short write."""
    for start in range(0, len(lines), _IOV_MAX):
        chunk = lines[start:start + _IOV_MAX]
        done = os.writev(fd, chunk)
        if done < sum(map(len, chunk)):
            rest = memoryview(b"".join(chunk))[done:]
            while rest:
                rest = rest[os.write(fd, rest):]


def _lines(items: list[Any]) -> Iterator[bytes]:
    """JSON Lines of records and entries (an entry may write its own lines)."""
    for item in items:
        if type(item) is bytes:  # a line made on the request path
            yield item
        elif hasattr(item, "lines"):
            yield from item.lines()
        elif hasattr(item, "records"):
            yield from (jsonfast.dumps(r) + b"\n" for r in item.records())
        else:
            yield jsonfast.dumps(item) + b"\n"
