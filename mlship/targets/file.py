"""file:///path targets: local disks, NFS and SMB mounts.

Updates of shared documents (index, channels) hold an exclusive flock on
`KEY.lock` beside the document across read, change and rename, waiting at most
LOCK_WAIT_S for another writer; on NFS the kernel maps flock to NFS locks.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, BinaryIO, Iterator
from urllib.parse import urlparse

from pydantic import Field

from mlship.errors import InvalidInputError, ServiceError, UsageError
from mlship.fsutil import atomic_write, file_lock, start_writeback
from mlship.model.load import remember_sha256
from mlship.targets.base import Change, Progress, Target

LOCK_WAIT_S = 60.0
STREAM_BLOCK = 16 << 20  # a shared read's block: handed over without a copy


# Written bytes after which the kernel is asked to start writing them to disk (a
# shared filesystem's copy of a 500 MB artifact otherwise all waits for the final fsync).
WRITEBACK_BYTES = 32 << 20
# Direct writes: a reused buffer of DIRECT_BUFFER bytes, written in whole DIRECT_ALIGN blocks
# (a multiple of every logical block size Linux file systems ask O_DIRECT writes to align to).
DIRECT_BUFFER = 16 << 20
DIRECT_ALIGN = 4096


class FileTarget(Target):
    """A directory: local disk, NFS or SMB mount."""

    name = "file"

    class Settings(Target.Settings):
        url: str = Field(..., description="file:///path or a plain path")

    def __init__(self, url: str, **options: Any) -> None:
        super().__init__(url)
        if url.startswith("file://"):
            parsed = urlparse(url)
            # file://./dir and file://../dir are relative paths (the host part would otherwise be dropped)
            self.root = Path(parsed.netloc + parsed.path) if parsed.netloc in (".", "..") else Path(parsed.path)
            if parsed.netloc not in ("", "localhost", ".", ".."):
                raise UsageError(f"{url}: file:// URLs name a local path (file:///abs/path or file://./rel/path)")
        else:
            self.root = Path(url)

    def _path(self, key: str) -> Path:
        path = self.root / self.check_key(key)
        # A symbolic link planted inside the target (bc/channels -> /home/ci/.ssh) must not carry
        # a write, or a read, outside it.
        root = self.root.resolve()
        if not path.resolve().is_relative_to(root):
            raise InvalidInputError(f"{self.url}: {key} leads outside the target (a symbolic link to "
                                    f"{path.resolve()})")
        return path

    def upload(self, key: str, path: Path, progress: Progress) -> str:
        digest = hashlib.sha256()

        def blocks() -> Iterator[bytes]:
            with path.open("rb") as src:
                while block := src.read(8 << 20):
                    digest.update(block)  # one read serves the copy and the digest
                    yield block

        self._store(key, blocks(), progress)
        return remember_sha256(path, digest.hexdigest())  # the push's report reuses it: no second read

    def upload_stream(self, key: str, source: BinaryIO, size: int, progress: Progress, *, sharing: int = 1) -> None:
        self._store(key, iter(lambda: source.read(STREAM_BLOCK), b""), progress)

    def _store(self, key: str, blocks: Iterator[bytes], progress: Progress) -> None:
        """Write the blocks to a temporary name beside `key`, fsync, rename."""
        dest = self._path(key)
        tmp = None
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            # a name of its own: two pushes of one file never write into each other's copy
            fd, name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".partial", dir=dest.parent)
            tmp = Path(name)
            with _Copy(fd) as out:
                for block in blocks:
                    out.write(block)
                    progress(len(block))
                out.finish()  # the last bytes, then fsync
            os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; objects get the usual mode
            os.replace(tmp, dest)
        except BaseException as exc:  # a failed write, or the source's failure: no partial file stays
            if tmp is not None:
                tmp.unlink(missing_ok=True)
            if isinstance(exc, OSError):
                raise ServiceError(f"{self.url}: cannot write {key}: {exc.strerror or exc}") from None
            raise

    def download(self, key: str, dest: Path, progress: Progress) -> None:
        try:
            with self._path(key).open("rb") as src, dest.open("wb") as out:
                shutil.copyfileobj(src, out, 8 << 20)
            progress(dest.stat().st_size)
        except OSError as exc:
            raise ServiceError(f"{self.url}: cannot read {key}: {exc.strerror or exc}") from None

    def read(self, key: str) -> bytes | None:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise ServiceError(f"{self.url}: cannot read {key}: {exc.strerror or exc}") from None

    def stream(self, key: str) -> Iterator[bytes] | None:
        try:
            fh = self._path(key).open("rb")  # opened now: a missing key is None, not a failure later
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise ServiceError(f"{self.url}: cannot read {key}: {exc.strerror or exc}") from None
        return _chunks(fh, f"{self.url}: cannot read {key}")

    def list_keys(self, prefix: str) -> list[str]:
        folder = self._path(prefix.rstrip("/"))
        if not folder.is_dir():
            return []
        root = self.root.resolve()
        return sorted(p.resolve().relative_to(root).as_posix() for p in folder.rglob("*")
                      if p.is_file() and not p.is_symlink() and not p.name.startswith(".")
                      and p.resolve().is_relative_to(root))

    def write(self, key: str, data: bytes) -> None:
        try:
            atomic_write(self._path(key), data)
        except OSError as exc:
            raise ServiceError(f"{self.url}: cannot write {key}: {exc.strerror or exc}") from None

    def update(self, key: str, change: Change) -> bytes | None:
        """Read, change and replace `key` under its lock file: concurrent updates queue up."""
        path = self._path(key)

        def busy(lock: Path) -> ServiceError:
            return ServiceError(f"{self.url}: {key} is locked by another mlship ({lock})",
                                hint="Wait for it to finish, then run the command again")

        try:
            with file_lock(path.with_name(path.name + ".lock"), busy, LOCK_WAIT_S):
                return super().update(key, change)  # the plain read-change-write, now under the lock
        except OSError as exc:  # the lock file could not be made (read-only target, a file in the way)
            raise ServiceError(f"{self.url}: cannot lock {key}: {exc.strerror or exc}") from None


def _chunks(fh: Any, failing: str, size: int = 256 << 10) -> Iterator[bytes]:
    """The file's bytes in chunks; closed when the reader stops (a bound reached) or the end is read."""
    with fh:
        while True:
            try:
                block = fh.read(size)
            except OSError as exc:
                raise ServiceError(f"{failing}: {exc.strerror or exc}") from None
            if not block:
                return
            yield block


class _Copy:
    """A copy's bytes going to disk: straight from a reused aligned buffer (O_DIRECT) where
    the file system takes it, else through the page cache with writeback every WRITEBACK_BYTES.

    A big artifact written through the page cache costs this VM's kernel ~0.2-1 CPU s per
    500 MB in newly allocated cache pages and dirty-page throttling, all of it beside the
    other targets of a push; direct writes cost a copy into the buffer (~0.03 s per 500 MB)
    and wait for the disk without the GIL. A file system that refuses O_DIRECT (tmpfs, some
    FUSE mounts), or a direct write it refuses (alignment), gets the same bytes buffered.
    The tail below DIRECT_ALIGN is always written buffered; `finish` fsyncs either way."""

    def __init__(self, fd: int) -> None:
        self.fd, self.unsynced, self.fill = fd, 0, 0
        self.direct = _set_direct(fd, True)
        self.view: memoryview | None = None
        if self.direct:
            import mmap

            self.buffer = mmap.mmap(-1, DIRECT_BUFFER)  # page-aligned, reused for every block
            self.view = memoryview(self.buffer)

    def __enter__(self) -> "_Copy":
        return self

    def __exit__(self, *exc: Any) -> None:
        os.close(self.fd)
        if self.view is not None:
            with contextlib.suppress(BufferError):  # a failed write's traceback may still hold a slice
                self.view.release()
                self.buffer.close()

    def write(self, block: bytes) -> None:
        if self.view is None:
            self._buffered(block)
            return
        data, start = memoryview(block), 0
        while start < len(data):
            n = min(DIRECT_BUFFER - self.fill, len(data) - start)
            self.view[self.fill:self.fill + n] = data[start:start + n]
            self.fill, start = self.fill + n, start + n
            if self.fill == DIRECT_BUFFER:
                self._flush_direct()

    def finish(self) -> None:
        if self.view is not None:
            self._flush_direct()
        os.fsync(self.fd)

    def _flush_direct(self) -> None:
        """The buffer's whole DIRECT_ALIGN blocks go direct; the rest (a file's tail) buffered."""
        assert self.view is not None
        aligned = self.fill - self.fill % DIRECT_ALIGN if self.direct else 0
        start = os.lseek(self.fd, 0, os.SEEK_CUR)
        try:
            _write_all(self.fd, self.view[:aligned])
        except OSError as exc:
            if exc.errno != errno.EINVAL:
                raise
        done = os.lseek(self.fd, 0, os.SEEK_CUR) - start  # a refused write wrote nothing: buffered from there
        if done < self.fill:
            if self.direct:
                _set_direct(self.fd, False)
                self.direct = False
            self._buffered(self.view[done:self.fill])
        self.fill = 0

    def _buffered(self, data: Any) -> None:
        _write_all(self.fd, data)
        self.unsynced += len(data)
        if self.unsynced >= WRITEBACK_BYTES:  # the disk writes while the push goes on
            start_writeback(self.fd)
            self.unsynced = 0


def _write_all(fd: int, data: Any) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _set_direct(fd: int, on: bool) -> bool:
    """Turn O_DIRECT on or off for `fd`; whether that worked (False where there is none)."""
    flag = getattr(os, "O_DIRECT", 0)
    if not flag:
        return False
    import fcntl

    try:
        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
        fcntl.fcntl(fd, fcntl.F_SETFL, flags | flag if on else flags & ~flag)
    except OSError:
        return False
    return True


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
