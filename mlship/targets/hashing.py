"""Hashing a file while an uploader reads it: one read serves the upload and the digest."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, BinaryIO, Callable, TypeVar

from mlship.model.load import remember_sha256, sha256_file
from mlship.targets.base import Progress

T = TypeVar("T")


class HashingReader:
    """A file as the upload reads it, hashed on the way: one read serves the upload and the digest.

    A retried chunk seeks back and reads bytes again; they are hashed once (only bytes past
    the furthest point hashed count). Should the uploader skip ahead, the file is hashed again."""

    def __init__(self, fh: BinaryIO, progress: Progress) -> None:
        self.fh, self.progress = fh, progress
        self.digest, self.hashed, self.gap = hashlib.sha256(), 0, False

    def read(self, size: int = -1) -> bytes:
        start = self.fh.tell()
        data = self.fh.read(size)
        end = start + len(data)
        if start > self.hashed:
            self.gap = True
        elif end > self.hashed:
            self.digest.update(data[self.hashed - start:])
            self.progress(end - self.hashed)
            self.hashed = end
        return data

    def hexdigest(self, path: Path) -> str:
        """The file's sha256: the one computed on the way, unless the reads left a gap."""
        if self.gap or self.hashed != path.stat().st_size:
            return sha256_file(path)
        return remember_sha256(path, self.digest.hexdigest())

    def __getattr__(self, name: str) -> Any:  # seek, tell, name: the file's own
        return getattr(self.fh, name)


class SharedRead:
    """One read of a file for several uploads running at once (a push to several targets).

    Every block is read from disk once and hashed once, and each upload's reader gets the same
    bytes object (no copy). A reader more than `window` bytes ahead of the slowest one still
    reading waits for it, so memory stays bounded; a reader that stops (its upload failed or
    finished) leaves and holds nobody back. The sha256 is the file's once some reader read to
    the end."""

    def __init__(self, path: Path, readers: int, *, block: int = 16 << 20, window: int = 64 << 20) -> None:
        import threading

        self.path, self.size, self.block, self.window = path, path.stat().st_size, block, window
        self.digest = hashlib.sha256()
        self._cond = threading.Condition()
        self._fh: BinaryIO | None = None  # opened at the first read, closed when every reader has left
        self._blocks: dict[int, bytes] = {}  # block number -> its bytes, while a reader still needs them
        self._loaded = 0  # bytes read from disk and hashed so far
        self._pos = [0] * readers
        self._open = [True] * readers
        self._last: list[tuple[int, int] | None] = [None] * readers  # block number, id of the bytes a
        # reader's last read returned, when that was one whole block
        self._memos: dict[int, BlockMemo] = {}  # block number -> values computed once from its bytes
        self._reading = False  # some reader has asked for bytes: prefetching stops
        self._halted = False  # the whole file was hashed for a check: prefetching stops too
        self._failed: BaseException | None = None  # a prefetch's read failed: every reader gets that

    def reader(self, i: int) -> "SharedReader":
        return SharedReader(self, i)

    def hexdigest(self) -> str | None:
        """The file's sha256, or None while no reader has reached the end."""
        with self._cond:
            return self.digest.hexdigest() if self._loaded == self.size else None

    def prefetch(self, budget: int) -> int:
        """Read and hash whole blocks ahead, up to `budget` bytes, while no reader has asked for
        any (a push's targets are still being opened: the core that does that leaves the other
        free); the bytes read. Readers take these very bytes objects later, so what was hashed
        is what they upload; a failed read is raised to them."""
        done = 0
        while done < budget and not (self._reading or self._halted):
            with self._cond:
                if self._reading or self._halted or self._loaded >= self.size or not any(self._open) or self._failed:
                    break
                before = self._loaded
                try:
                    self._load()
                except BaseException as exc:
                    self._failed = exc
                    raise
                done += self._loaded - before
        return done

    def whole_digest(self) -> str:
        """The file's sha256 for a check before any upload (is this version already there?): what
        the prefetch hashed so far, then the rest read and hashed here without keeping it. The
        prefetch stops; its blocks stay for the readers."""
        self._halted = True
        with self._cond:
            if self._failed is not None:
                raise self._failed
            if self._loaded == self.size:
                return self.digest.hexdigest()
            digest, start = self.digest.copy(), self._loaded
        with self.path.open("rb") as fh:
            fh.seek(start)
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        return remember_sha256(self.path, digest.hexdigest())

    def read(self, i: int, size: int) -> bytes:
        self._reading = True  # before the lock: a prefetch between two blocks stops at the next
        with self._cond:
            if not self._open[i]:
                raise ValueError("read from a reader that has left")
            pos = self._pos[i]
            # Whole blocks: a reader asking for a block gets the very bytes object the others get.
            end = min(self.size, pos + (self.block - pos % self.block if size < 0 else size))
            if end <= pos:
                return b""
            while pos >= self._slowest() + self.window:
                self._cond.wait()
            while self._loaded < end:
                self._load()
            first, last = pos // self.block, (end - 1) // self.block
            self._last[i] = None
            if first == last and pos % self.block == 0 and end - pos == len(self._blocks[first]):
                data = self._blocks[first]
                self._last[i] = (first, id(data))
            else:
                data = b"".join(self._blocks[n][max(pos - n * self.block, 0):end - n * self.block]
                                for n in range(first, last + 1))
            self._pos[i] = end
            self._release()
            return data

    def memo(self, i: int, data: bytes) -> "BlockMemo | None":
        """Values computed once for every reader from `data`, reader i's last read (an S3
        target's part checksums); None when that read was not one whole block."""
        with self._cond:
            last = self._last[i]
            if last is None or last[1] != id(data):  # `data` is alive: an equal id is the same object
                return None
            return self._memos.setdefault(last[0], BlockMemo())

    def leave(self, i: int) -> None:
        """Reader i reads no more (done, or its upload failed): nobody waits for it."""
        with self._cond:
            if self._open[i]:
                self._open[i] = False
                self._release()

    @property
    def started(self) -> bool:
        """Some reader has asked for bytes."""
        return self._reading

    def close(self) -> None:
        """Every reader leaves (nobody will read): the file is closed and the blocks let go."""
        for i in range(len(self._open)):
            self.leave(i)

    def _slowest(self) -> int:
        return min((p for p, o in zip(self._pos, self._open) if o), default=self.size)

    def _load(self) -> None:
        if self._failed is not None:
            raise self._failed
        if self._fh is None:
            self._fh = self.path.open("rb")
        want = min(self.block, self.size - self._loaded)
        data = self._fh.read(want)
        if len(data) != want:
            raise OSError(f"{self.path} changed while it was being pushed (it is shorter than {self.size} bytes)")
        self.digest.update(data)
        self._blocks[self._loaded // self.block] = data
        self._loaded += want
        if self._loaded == self.size:  # read whole: the file is closed now, whatever the readers do
            self._fh.close()
            self._fh = None

    def _release(self) -> None:
        """Drop the blocks every open reader is past; wake readers waiting for the slowest."""
        slowest = self._slowest()
        for n in [n for n in self._blocks if (n + 1) * self.block <= slowest]:
            del self._blocks[n]
        if not any(self._open):
            if self._fh is not None:
                self._fh.close()
                self._fh = None
            self._blocks.clear()
            self._memos.clear()
        self._cond.notify_all()


class BlockMemo:
    """A value computed from one block's bytes by the first reader that asks; the others wait
    for it rather than compute it again. It keeps the value, never the bytes."""

    def __init__(self) -> None:
        import threading

        self._lock = threading.Lock()
        self._value: Any = None
        self._done = False

    def get(self, data: bytes, compute: Callable[[bytes], T]) -> T:
        with self._lock:  # held while computing: a second reader waits instead of hashing again
            if not self._done:
                self._value, self._done = compute(data), True
            return self._value


class SharedReader:
    """One upload's view of a SharedRead: a forward-only file object (it cannot seek)."""

    def __init__(self, shared: SharedRead, i: int) -> None:
        self.shared, self.i = shared, i

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:  # the rest, as a file's read() gives it
            return b"".join(iter(lambda: self.shared.read(self.i, self.shared.block), b""))
        return self.shared.read(self.i, size)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def memo(self, data: bytes) -> BlockMemo | None:
        """Values computed once for every reader from `data`, what the last read returned."""
        return self.shared.memo(self.i, data)

    @property
    def position(self) -> int:
        return self.shared._pos[self.i]

    def close(self) -> None:
        self.shared.leave(self.i)
