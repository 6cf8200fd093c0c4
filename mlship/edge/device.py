"""The device side: sync a channel's bundle, switch atomically, roll back.

DIR/versions/VERSION/   unpacked, verified bundles (the previous one is kept)
DIR/current             a symbolic link to the version in use
DIR/previous            a symbolic link to the one before

A new version is downloaded and verified in hidden staging names, unpacked
into its final directory by rename, and switched to by replacing the
`current` link with rename(2): a kill at any moment leaves `current`
pointing at a complete, verified version.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from mlship.edge.bundle import unpack_bundle
from mlship.errors import InvalidInputError, UsageError
from mlship.model.load import sha256_file
from mlship.targets.artifacts import resolve
from mlship.targets.base import Target


def current_version(directory: Path) -> str | None:
    link = directory / "current"
    return os.readlink(link).split("/")[-1] if link.is_symlink() else None


def sync(target: Target, name: str, channel: str, directory: Path, public_key: Path | None = None) -> dict[str, Any]:
    """Bring DIR to the channel's version; nothing is downloaded when it is already there."""
    _, entry = resolve(target, f"{name}@{channel}")
    version = entry["version"]
    directory.mkdir(parents=True, exist_ok=True)
    before = current_version(directory)
    if before == version and (directory / "versions" / version).is_dir():
        return {"version": version, "changed": False, "downloaded": 0}
    bundles = [f for f in entry["files"] if f["path"].endswith(".mlbundle")]
    if len(bundles) != 1:
        raise InvalidInputError(f"{target.describe()}: {name} {version} holds {len(bundles)} bundles, expected one")
    final = directory / "versions" / version
    downloaded = 0
    if not final.is_dir():
        downloaded = _fetch(target, name, version, bundles[0], final, public_key)
    _switch(directory, version)
    return {"version": version, "previous": before, "changed": True, "downloaded": downloaded}


def _fetch(target: Target, name: str, version: str, bundle: dict[str, Any], final: Path,
           public_key: Path | None) -> int:
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{version}.", dir=final.parent))
    try:
        archive = staging / "bundle.mlbundle"
        target.download(f"{name}/{version}/{bundle['path']}", archive, lambda n: None)
        if sha256_file(archive) != bundle["sha256"]:
            raise InvalidInputError(f"{target.describe()}: {name}/{version}/{bundle['path']} does not match its "
                                    "sha256 in the index (corrupt or tampered)")
        unpack_bundle(archive, staging / "unpacked", public_key=public_key)
        (staging / "unpacked").rename(final)  # whole, verified, or not there at all
        return archive.stat().st_size
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _switch(directory: Path, version: str) -> None:
    old = current_version(directory)
    _point(directory, "current", version)
    if old and old != version:
        _point(directory, "previous", old)


def _point(directory: Path, link: str, version: str) -> None:
    tmp = directory / f".{link}.{os.getpid()}"
    tmp.unlink(missing_ok=True)
    os.symlink(f"versions/{version}", tmp)
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.replace(tmp, directory / link)  # atomic: readers see the old link or the new one
        os.fsync(fd)
    finally:
        os.close(fd)


def rollback(directory: Path) -> dict[str, Any]:
    """Switch `current` back to `previous` (and `previous` to what was current)."""
    now, before = current_version(directory), _target_of(directory / "previous")
    if before is None or not (directory / "versions" / before).is_dir():
        raise UsageError(f"{directory}: no previous version to roll back to")
    _point(directory, "current", before)
    if now:
        _point(directory, "previous", now)
    return {"version": before, "previous": now}


def _target_of(link: Path) -> str | None:
    return os.readlink(link).split("/")[-1] if link.is_symlink() else None


def current_manifest(directory: Path) -> tuple[Path, dict[str, Any]]:
    """The model file and manifest of the version in use."""
    link = directory / "current"
    if not link.is_symlink():
        raise UsageError(f"{directory}: no current version", hint="Run mlship edge sync first")
    manifest = json.loads((link / "manifest.json").read_text())
    return link.resolve() / manifest["model"], manifest


def upload_logs(target: Target, name: str, log_dir: Path, device: str) -> list[str]:
    """Ship finished prediction logs to NAME/logs/DEVICE/ and move them to LOG_DIR/uploaded/.

    The newest file of each writer (its name up to the time stamp) may still be
    growing, so it stays until a later sync."""
    files = sorted(log_dir.glob("*.jsonl"))
    newest: dict[str, Path] = {}
    for path in files:
        writer = path.name.rsplit("-", 3)[0]  # predictions-NAME-VARIANT, without TIME-PID-SEQ
        newest[writer] = path
    shipped = []
    done = log_dir / "uploaded"
    for path in files:
        if newest.get(path.name.rsplit("-", 3)[0]) == path:
            continue
        target.upload(f"{name}/logs/{device}/{path.name}", path, lambda n: None)
        done.mkdir(exist_ok=True)
        os.replace(path, done / path.name)
        shipped.append(path.name)
    return shipped
