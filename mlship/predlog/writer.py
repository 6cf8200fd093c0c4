"""Writing prediction logs off the request path.

`LogWriter.submit` never blocks: records (or entries that expand into
records, so per-row work happens off the request path too) go into a
bounded queue, and a background thread writes them as JSON Lines. When the queue is full the
record is dropped and counted. Files rotate by size and by age; each line is
written whole, so a reader never sees half a record in a closed file.
`close` drains the queue: every accepted record reaches the disk.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from pathlib import Path
from typing import Any, Protocol

from mlship import jsonfast

_STOP = object()


class Entry(Protocol):
    """Something that becomes log records in the writer thread."""

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
    ) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.prefix = prefix
        self.max_bytes = max_bytes
        self.max_age_s = max_age_s
        self.block = block  # batch scoring waits for the writer; serving never does
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=queue_size)
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
        full it is dropped (and counted) instead of waiting."""
        try:
            self._queue.put(item, block=self.block)
        except queue.Full:
            with self._lock:
                self.dropped += rows
            return False
        with self._lock:
            self.accepted += rows
        return True

    def close(self, timeout: float | None = None) -> None:
        """Write everything accepted so far, then close the file."""
        while self._thread.is_alive():
            try:
                self._queue.put(_STOP, timeout=0.5)
                break
            except queue.Full:
                continue
        self._thread.join(timeout)

    @property
    def files(self) -> list[Path]:
        return sorted(self.directory.glob(f"{self.prefix}-*.jsonl"))

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            batch = [item]
            # Take what else is waiting so one write serves many records.
            while len(batch) < 1024:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            stop = any(r is _STOP for r in batch)
            items = [r for r in batch if r is not _STOP]
            try:
                self._write(items)
            except Exception:  # a bad record or a full disk must not stop logging for good
                with self._lock:
                    self.failed += sum(getattr(i, "rows", 1) for i in items)
            if stop:
                self._close_file()
                return

    def _write(self, items: list[Any]) -> None:
        records = [r for item in items for r in (item.records() if hasattr(item, "records") else [item])]
        chunk: list[bytes] = []
        size = 0
        for record in records:
            line = jsonfast.dumps(record) + b"\n"
            if chunk and self._file_bytes + size + len(line) > self.max_bytes:
                self._flush(chunk, size)  # fill this file up to its limit, then rotate
                chunk, size = [], 0
            chunk.append(line)
            size += len(line)
        if chunk:
            self._flush(chunk, size)

    def _flush(self, lines: list[bytes], size: int) -> None:
        self._rotate_if_due(size)
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
