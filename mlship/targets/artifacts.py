"""Pushing, promoting and pulling artifacts in a target.

Layout: NAME/VERSION/FILES, NAME/index.json (versions with each file's
sha256 and size), NAME/channels/CHANNEL.json (a pointer to one version).
The index is written only after every file is in place, so a failed push
leaves no entry; pointers and the index are replaced whole.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from pydantic import BaseModel

from mlship.errors import InvalidInputError, MlshipError, UsageError
from mlship.model.load import sha256_file
from mlship.targets.base import Target


class FileEntry(BaseModel):
    path: str
    sha256: str
    size: int


class PushResult(BaseModel):
    target: str
    status: str  # pushed, skipped, would push, failed
    files: int = 0
    bytes: int = 0
    seconds: float = 0.0
    error: str | None = None


def artifact_files(artifact: Path) -> list[tuple[Path, str]]:
    """A file, or every file under a directory, with their paths inside the artifact."""
    if not artifact.exists():
        raise InvalidInputError(f"artifact not found: {artifact}")
    paths = [artifact] if artifact.is_file() else sorted(p for p in artifact.rglob("*") if p.is_file())
    if not paths:
        raise InvalidInputError(f"artifact {artifact} holds no files")
    root = artifact.parent if artifact.is_file() else artifact
    for p in paths:
        if not os.access(p, os.R_OK):
            raise InvalidInputError(f"cannot read artifact file {p}: permission denied")
    return [(p, p.relative_to(root).as_posix()) for p in paths]


def _entries(files: list[tuple[Path, str]]) -> list[dict[str, Any]]:
    return [FileEntry(path=rel, sha256=sha256_file(p), size=p.stat().st_size).model_dump() for p, rel in files]


def read_index(target: Target, name: str) -> dict[str, Any]:
    raw = target.read(f"{name}/index.json")
    if raw is None:
        return {"name": name, "versions": []}
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        raise InvalidInputError(f"{target.describe()}: {name}/index.json is not valid JSON") from None


def push_artifact(target: Target, name: str, version: str, files: list[tuple[Path, str]], *,
                  dry_run: bool = False, progress: Callable[[int], None] = lambda n: None) -> PushResult:
    """Upload files, then record the version in the index; skip what is already there."""
    started = time.perf_counter()
    total = sum(p.stat().st_size for p, _ in files)
    try:
        index = read_index(target, name)
        known = next((v for v in index["versions"] if v["version"] == version), None)
        if known is not None:
            entries = _entries(files)  # only hashed up front to decide whether anything changed
            if sorted(known["files"], key=lambda f: f["path"]) == sorted(entries, key=lambda f: f["path"]):
                progress(total)
                return PushResult(target=target.describe(), status="skipped", files=len(files))
            raise UsageError(f"{target.describe()}: {name} {version} already exists with other content",
                             hint="Push it as a new version")
        if dry_run:
            return PushResult(target=target.describe(), status="would push", files=len(files), bytes=total)
        entries = []
        for path, rel in files:
            size = path.stat().st_size
            digest = target.upload(f"{name}/{version}/{rel}", path, progress)
            entries.append(FileEntry(path=rel, sha256=digest, size=size).model_dump())
        index["versions"].append({"version": version, "files": entries, "size": total,
                                  "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
        target.write(f"{name}/index.json", json.dumps(index, indent=1).encode())
    except MlshipError as exc:
        return PushResult(target=target.describe(), status="failed", error=exc.one_line(),
                          seconds=round(time.perf_counter() - started, 3))
    return PushResult(target=target.describe(), status="pushed", files=len(files), bytes=total,
                      seconds=round(time.perf_counter() - started, 3))


def promote(target: Target, name: str, version: str, channel: str) -> dict[str, Any]:
    """Point CHANNEL at VERSION (which must be in the index)."""
    index = read_index(target, name)
    if not any(v["version"] == version for v in index["versions"]):
        raise UsageError(f"{target.describe()}: {name} has no version {version}",
                         hint=f"Pushed versions: {', '.join(v['version'] for v in index['versions']) or 'none'}")
    pointer = {"name": name, "channel": channel, "version": version,
               "updated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    target.write(f"{name}/channels/{channel}.json", json.dumps(pointer, indent=1).encode())
    return pointer


def resolve(target: Target, ref: str) -> tuple[str, dict[str, Any]]:
    """NAME, NAME:VERSION or NAME@CHANNEL -> (name, the version's index entry)."""
    if "@" in ref:
        name, channel = ref.split("@", 1)
        raw = target.read(f"{name}/channels/{channel}.json")
        if raw is None:
            raise UsageError(f"{target.describe()}: {name} has no channel {channel}")
        version = json.loads(raw)["version"]
    else:
        name, _, version = ref.partition(":")
    index = read_index(target, name)
    if not index["versions"]:
        raise UsageError(f"{target.describe()}: nothing pushed under {name}")
    entry = index["versions"][-1] if not version else next((v for v in index["versions"] if v["version"] == version),
                                                            None)
    if entry is None:
        raise UsageError(f"{target.describe()}: {name} has no version {version}")
    return name, entry


def pull(target: Target, ref: str, output: Path | None, progress: Callable[[int], None] = lambda n: None) -> Path:
    """Download a version into OUTPUT (default NAME-VERSION), verifying every sha256;
    nothing appears under OUTPUT unless all files match."""
    name, entry = resolve(target, ref)
    dest = output or Path(f"{name}-{entry['version']}")
    if dest.exists():
        raise UsageError(f"{dest} already exists", hint="Remove it or pass -o another directory")
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        for f in entry["files"]:
            local = staging / f["path"]
            local.parent.mkdir(parents=True, exist_ok=True)
            target.download(f"{name}/{entry['version']}/{f['path']}", local, progress)
            digest = sha256_file(local)
            if digest != f["sha256"]:
                raise InvalidInputError(f"{target.describe()}: {name}/{entry['version']}/{f['path']} has sha256 "
                                        f"{digest[:12]}…, the index says {f['sha256'][:12]}… (corrupt or tampered)")
        staging.rename(dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return dest
