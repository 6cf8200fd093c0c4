"""file:///path targets: local disks, NFS and SMB mounts."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from mlship.errors import ServiceError, UsageError
from mlship.fsutil import atomic_write
from mlship.targets.base import Progress, Target


class FileTarget(Target):
    scheme = "file"

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
        return self.root / key

    def upload(self, key: str, path: Path, progress: Progress) -> str:
        dest = self._path(key)
        tmp = dest.with_name(f".{dest.name}.partial")
        digest = hashlib.sha256()
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            with path.open("rb") as src, tmp.open("wb") as out:
                while block := src.read(8 << 20):
                    out.write(block)
                    digest.update(block)  # one read serves the copy and the digest
                    progress(len(block))
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, dest)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise ServiceError(f"{self.url}: cannot write {key}: {exc.strerror or exc}") from None
        return digest.hexdigest()

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

    def write(self, key: str, data: bytes) -> None:
        try:
            atomic_write(self._path(key), data)
        except OSError as exc:
            raise ServiceError(f"{self.url}: cannot write {key}: {exc.strerror or exc}") from None
