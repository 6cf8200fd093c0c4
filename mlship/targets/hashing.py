"""Hashing a file while an uploader reads it: one read serves the upload and the digest."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, BinaryIO

from mlship.model.load import remember_sha256, sha256_file
from mlship.targets.base import Progress


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
