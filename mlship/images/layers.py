"""Reproducible image layers: the same files give the same bytes, digest and diff_id.

Tar entries are sorted by path with every parent directory present; mtime is
SOURCE_DATE_EPOCH (or 0), uid/gid 0 with empty user and group names, modes
0755 for directories and executables and 0644 for other files; the tar is
gzipped with no file name, mtime 0 and level 6. diff_id is the sha256 of the
uncompressed tar, digest the sha256 of the gzipped blob.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

GZIP_LEVEL = 6
LAYER_MEDIA_TYPE = "application/vnd.oci.image.layer.v1.tar+gzip"


def source_date_epoch() -> int:
    """SOURCE_DATE_EPOCH when set (reproducible-builds.org), else 0."""
    value = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    return int(value) if value.isdigit() else 0


@dataclass(frozen=True)
class Entry:
    """One file, directory or symlink of a layer; `data` is a file's bytes or a symlink's target."""

    path: str
    kind: str = "file"  # file | dir | symlink
    data: bytes = b""
    executable: bool = False


@dataclass(frozen=True)
class Blob:
    """A content-addressed file: a layer, a config or a manifest."""

    digest: str
    size: int
    media_type: str
    path: Path | None = None  # where its bytes are here; None while they are only in a registry
    diff_id: str | None = None  # layers only: sha256 of the uncompressed tar

    def descriptor(self) -> dict:
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size}


def with_parents(entries: list[Entry]) -> list[Entry]:
    """Entries plus a directory entry for every missing parent, sorted by path."""
    by_path = {e.path.strip("/"): e for e in entries}
    for path in list(by_path):
        for parent in PurePosixPath(path).parents:
            if str(parent) != ".":
                by_path.setdefault(str(parent), Entry(str(parent), "dir"))
    return [by_path[p] for p in sorted(by_path)]


def write_layer(entries: list[Entry], dest: Path) -> Blob:
    """Write a gzipped layer tar of `entries` to `dest`; its Blob (digest, size, diff_id)."""
    mtime = source_date_epoch()
    raw = hashlib.sha256()
    packed = _HashingWriter(dest)
    with packed, gzip.GzipFile(filename="", mode="wb", fileobj=packed, mtime=0,
                               compresslevel=GZIP_LEVEL) as gz:
        tee = _Tee(gz, raw)
        with tarfile.open(fileobj=tee, mode="w|", format=tarfile.PAX_FORMAT) as tar:
            for entry in with_parents(entries):
                info, payload = _tarinfo(entry, mtime)
                tar.addfile(info, io.BytesIO(payload) if payload is not None else None)
    return Blob(digest=f"sha256:{packed.sha.hexdigest()}", size=packed.size, media_type=LAYER_MEDIA_TYPE,
                path=dest, diff_id=f"sha256:{raw.hexdigest()}")


def _tarinfo(entry: Entry, mtime: int) -> tuple[tarfile.TarInfo, bytes | None]:
    info = tarfile.TarInfo(entry.path.strip("/") + ("/" if entry.kind == "dir" else ""))
    info.mtime, info.uid, info.gid, info.uname, info.gname = mtime, 0, 0, "", ""
    if entry.kind == "dir":
        info.type, info.mode = tarfile.DIRTYPE, 0o755
        return info, None
    if entry.kind == "symlink":
        info.type, info.mode, info.linkname = tarfile.SYMTYPE, 0o777, entry.data.decode()
        return info, None
    info.mode, info.size = (0o755 if entry.executable else 0o644), len(entry.data)
    return info, entry.data


class _Tee(io.RawIOBase):
    """Writes to a stream and feeds a hash on the way (the tar's uncompressed bytes)."""

    def __init__(self, out, sha) -> None:
        self._out, self._sha = out, sha

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self._sha.update(data)
        return self._out.write(data)


class _HashingWriter(io.RawIOBase):
    """A file that hashes and counts what is written to it."""

    def __init__(self, path: Path) -> None:
        self._fh = open(path, "wb")
        self.sha = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self.sha.update(data)
        self.size += len(data)
        return self._fh.write(data)

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._fh.close()
        super().close()


def file_digest(path: Path) -> str:
    """sha256:HEX of a file, read in 1 MiB blocks."""
    sha = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            sha.update(block)
    return f"sha256:{sha.hexdigest()}"
