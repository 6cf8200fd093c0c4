"""Pushing, promoting and pulling artifacts in a target.

Layout: NAME/VERSION/FILES, NAME/index.json (versions with each file's
sha256 and size), NAME/channels/CHANNEL.json (a pointer to one version, with
a revision count and the last promotions). The index is written only after
every file is in place, so a failed push leaves no entry; pointers and the
index are replaced whole, through `Target.update`, so concurrent pushes and
promotes lose nothing. Names, versions and channels follow mlship/names.py
whether they come from the caller or from the target (see documents.py).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from pydantic import BaseModel, PrivateAttr

from mlship.errors import InvalidInputError, MlshipError, UsageError
from mlship.model.load import sha256_file, sha256_file_once
from mlship.names import check_name
from mlship.targets.base import Target
from mlship.targets.documents import (HISTORY, Channel, FileEntry, Index, Promotion, VersionEntry,
                                      check_relative_path, dump, parse, parse_ref)


class PushResult(BaseModel):
    target: str
    status: str  # pushed, skipped, would push, failed
    files: int = 0
    bytes: int = 0
    seconds: float = 0.0
    error: str | None = None
    _exc: MlshipError | None = PrivateAttr(None)  # the failure, so the command exits with its code

    @property
    def exception(self) -> MlshipError | None:
        return self._exc


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
        try:
            check_relative_path(p.relative_to(root).as_posix())
        except ValueError:
            raise InvalidInputError(f"artifact file {str(p)!r}: its name cannot be stored in a target "
                                    "(control characters or a backslash)") from None
    return [(p, p.relative_to(root).as_posix()) for p in paths]


def _files(entries: list[FileEntry]) -> list[tuple[str, str, int]]:
    return sorted((f.path, f.sha256, f.size) for f in entries)


def _where(target: Target, key: str) -> str:
    return f"{target.describe()}: {key}"


def _index(target: Target, name: str) -> Index:
    key = f"{name}/index.json"
    raw = target.read(key)
    return Index(name=name, versions=[]) if raw is None else parse(Index, raw, _where(target, key))


def read_index(target: Target, name: str) -> dict[str, Any]:
    """NAME's index as a dict (empty when nothing was pushed); exit 3 when it is damaged or unsafe."""
    return _index(target, check_name(name, "name")).model_dump(mode="json")


def read_channel(target: Target, name: str, channel: str) -> dict[str, Any] | None:
    """The CHANNEL pointer of NAME as a dict, None when there is none; exit 3 when it is damaged or unsafe."""
    key = f"{check_name(name, 'name')}/channels/{check_name(channel, 'channel')}.json"
    raw = target.read(key)
    return None if raw is None else parse(Channel, raw, _where(target, key)).model_dump(mode="json")


def push_artifact(target: Target, name: str, version: str, files: list[tuple[Path, str]], *,
                  dry_run: bool = False, progress: Callable[[int], None] = lambda n: None,
                  upload: Callable[[str, Path, Callable[[int], None]], str] | None = None,
                  digest: Callable[[Path], str] = sha256_file_once) -> PushResult:
    """Upload files (through `upload(key, path, progress) -> sha256`, the target's own by default),
    then record the version in the index; skip what is already there (its files' sha256 from
    `digest`, only then)."""
    check_name(name, "name")
    check_name(version, "version")
    started = time.perf_counter()
    total = sum(p.stat().st_size for p, _ in files)
    key = f"{name}/index.json"
    try:
        known = _index(target, name).find(version)
        if known is not None:
            entries = [FileEntry(path=rel, sha256=digest(p), size=p.stat().st_size) for p, rel in files]
            if _files(known.files) == _files(entries):  # only hashed up front to decide whether anything changed
                progress(total)
                return PushResult(target=target.describe(), status="skipped", files=len(files))
            raise UsageError(f"{target.describe()}: {name} {version} already exists with other content",
                             hint="Push it as a new version")
        if dry_run:
            return PushResult(target=target.describe(), status="would push", files=len(files), bytes=total)
        entries = []
        for path, rel in files:
            size = path.stat().st_size
            digest = (upload or target.upload)(f"{name}/{version}/{rel}", path, progress)
            entries.append(FileEntry(path=rel, sha256=digest, size=size))
        entry = VersionEntry(version=version, files=entries, size=total,
                             created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))

        def add(raw: bytes | None) -> bytes | None:
            # Re-read under the lock (or ETag): other pushes may have added versions since the check above.
            index = Index(name=name, versions=[]) if raw is None else parse(Index, raw, _where(target, key))
            there = index.find(version)
            if there is not None:
                if _files(there.files) == _files(entry.files):
                    return None  # the same push ran beside this one
                raise UsageError(f"{target.describe()}: {name} {version} was pushed with other content meanwhile",
                                 hint="Push it as a new version")
            index.versions.append(entry)
            return dump(index)

        target.update(key, add)
    except MlshipError as exc:
        failed = PushResult(target=target.describe(), status="failed", error=exc.one_line(),
                            seconds=round(time.perf_counter() - started, 3))
        failed._exc = exc
        return failed
    return PushResult(target=target.describe(), status="pushed", files=len(files), bytes=total,
                      seconds=round(time.perf_counter() - started, 3))


def promote(target: Target, name: str, version: str, channel: str) -> dict[str, Any]:
    """Point CHANNEL at VERSION (which must be in the index); the new pointer.

    The pointer counts promotions (`revision`) and keeps the last HISTORY of them; promoting
    the version the channel already points at changes nothing."""
    check_name(name, "name")
    check_name(version, "version")
    check_name(channel, "channel")
    index = _index(target, name)
    if index.find(version) is None:
        raise UsageError(f"{target.describe()}: {name} has no version {version}",
                         hint=f"Pushed versions: {', '.join(v.version for v in index.versions) or 'none'}")
    key = f"{name}/channels/{channel}.json"
    where = _where(target, key)
    raw = target.read(key)
    if raw is not None:
        parse(Channel, raw, where)  # a damaged pointer is refused before anything (even a lock file) is made
    result: dict[str, Any] = {}

    def move(raw: bytes | None) -> bytes | None:
        current = None if raw is None else parse(Channel, raw, where)
        if current is not None and current.version == version:
            result.update(current.model_dump(mode="json"))
            return None
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        revision = (current.revision if current else 0) + 1
        history = (current.history if current else []) + [Promotion(version=version, updated=now, revision=revision)]
        pointer = Channel(name=name, channel=channel, version=version, updated=now, revision=revision,
                          previous=current.version if current else None, history=history[-HISTORY:])
        result.clear()
        result.update(pointer.model_dump(mode="json"))
        return dump(pointer)

    target.update(key, move)
    return result


def resolve(target: Target, ref: str) -> tuple[str, dict[str, Any]]:
    """NAME, NAME:VERSION or NAME@CHANNEL -> (name, the version's index entry).

    A bad ref is a usage error (exit 2); a damaged or unsafe index or channel is invalid
    input (exit 3)."""
    name, version, channel = parse_ref(ref)
    if channel is not None:
        pointer = read_channel(target, name, channel)
        if pointer is None:
            raise UsageError(f"{target.describe()}: {name} has no channel {channel}")
        version = pointer["version"]
    index = _index(target, name)
    if not index.versions:
        raise UsageError(f"{target.describe()}: nothing pushed under {name}")
    entry = index.versions[-1] if not version else index.find(version)
    if entry is None:
        raise UsageError(f"{target.describe()}: {name} has no version {version}")
    return name, entry.model_dump(mode="json")


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
            local = staging / check_relative_path(f["path"])  # checked when read; a path never leaves staging
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
