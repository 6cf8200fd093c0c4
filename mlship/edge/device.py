"""The device side: sync a channel's bundle, switch atomically, roll back.

DIR/versions/VERSION/   unpacked, verified bundles (the previous one is kept)
DIR/current             a symbolic link to the version in use
DIR/previous            a symbolic link to the one before

A new version is downloaded and verified in hidden staging names, unpacked
into its final directory by rename, and switched to by replacing the
`current` link with rename(2): a kill at any moment leaves `current`
pointing at a complete, verified version.

Whoever can write to the target is not trusted with the device's disk: the
channel's version and the index's file paths are checked (mlship/names.py,
relative paths only) before they name anything, and a versions/VERSION
directory already on disk is verified again against its manifest (and
signature) before `current` points at it; one that fails is downloaded anew.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from mlship.bundles.manifest import BundleManifest, FileEntry, check_file_entries, load_json, verify_directory
from mlship.bundles.read import unpack_bundle
from mlship.errors import InvalidInputError, UsageError
from mlship.model.load import sha256_file
from mlship.names import check_name, is_valid_name
from mlship.targets.base import Target

if TYPE_CHECKING:
    from mlship.edge.health import HealthCheck


def current_version(directory: Path) -> str | None:
    return link_target(directory / "current")


def sync(target: Target, name: str, channel: str, directory: Path, public_key: Path | None = None,
         health: "HealthCheck | None" = None, retry: bool = False) -> dict[str, Any]:
    """Bring DIR to the channel's version; nothing is downloaded when it is already there and verifies.

    With `health`, a switch is committed only once the new version passes its check; otherwise
    `current` and `previous` go back to what they were and the version is held back (DIR/state.json)
    until the channel names another one (or `retry`)."""
    check_name(name, "name")
    check_name(channel, "channel")
    version, fetch = _release(target, name, channel, directory)
    directory.mkdir(parents=True, exist_ok=True)
    before = current_version(directory)
    held = _held_back(directory, version, retry)
    if held is not None:
        return {"version": before, "previous": link_target(directory / "previous"), "changed": False,
                "downloaded": 0, "held_back": held}
    final = directory / "versions" / version
    repaired = False
    if os.path.lexists(final):
        try:
            manifest = verify_directory(final, str(final), public_key)
            _check_identity(manifest, name, version, str(final))
        except InvalidInputError:
            repaired = True  # tampered, half-removed, or unsigned from an earlier sync without a key
        else:
            if before == version:
                if health is not None and not _checked(directory, version):
                    # switched to, but its check never finished (a kill, or an mlship without checks)
                    previous = link_target(directory / "previous")
                    result = {"version": version, "previous": previous, "changed": False, "downloaded": 0}
                    return _check(directory, version, manifest.model, health, result, previous, None)
                return {"version": version, "changed": False, "downloaded": 0}
            return _commit(directory, version, before, manifest.model, health, 0)
    downloaded, model = _install(target, name, version, fetch, final, public_key)
    result = _commit(directory, version, before, model, health, downloaded)
    if repaired:
        result["repaired"] = True
    return result


def _held_back(directory: Path, version: str, retry: bool) -> dict[str, Any] | None:
    """The failed check that holds `version` back; a remembered failure of another version is forgotten
    (the channel moved), and so is this one with `retry`."""
    from mlship.edge.state import load_state, save_state

    state = load_state(directory)
    if state is None or state.failed is None:
        return None
    if state.failed.version == version and not retry:
        return state.failed.model_dump()
    save_state(directory, state.model_copy(update={"failed": None}))
    return None


def _commit(directory: Path, version: str, before: str | None, model: str, health: "HealthCheck | None",
            downloaded: int) -> dict[str, Any]:
    """Switch to `version`, run its health check, and switch back when it fails."""
    previous = link_target(directory / "previous")
    _switch(directory, version)
    result: dict[str, Any] = {"version": version, "previous": before, "changed": True, "downloaded": downloaded}
    if health is None:
        return result
    if before == version:  # a damaged copy of the current version, replaced: back means the one before
        return _check(directory, version, model, health, result, previous, None)
    return _check(directory, version, model, health, result, before, previous)


def _check(directory: Path, version: str, model: str, health: "HealthCheck", result: dict[str, Any],
           back: str | None, back_previous: str | None) -> dict[str, Any]:
    """Run `version`'s health check; on failure point `current` at `back` and `previous` at `back_previous`."""
    from mlship.edge.health import run_health
    from mlship.edge.state import device_state, save_state

    verdict = run_health(health, directory, version, model)
    state = device_state(directory)
    result["health"] = verdict.model_dump()
    if verdict.ok:
        save_state(directory, state.model_copy(update={"health": verdict, "failed": None}))
        return result
    _restore(directory, "current", back)
    _restore(directory, "previous", back_previous)
    save_state(directory, state.model_copy(update={"failed": verdict}))
    return {**result, "version": back, "previous": back_previous, "changed": False,
            "held_back": verdict.model_dump(), "rolled_back": True}


def _checked(directory: Path, version: str) -> bool:
    from mlship.edge.state import load_state

    state = load_state(directory)
    return state is not None and state.health is not None and state.health.version == version and state.health.ok


def _restore(directory: Path, link: str, version: str | None) -> None:
    if version is not None:
        _point(directory, link, version)
    elif os.path.lexists(directory / link):
        os.unlink(directory / link)  # there was none: a device that never ran a healthy version runs nothing


def _release(target: Target, name: str, channel: str, directory: Path) -> tuple[str, Callable[[Path], str]]:
    """The channel's version and how to fetch its bundle (verified; the key it came from): through TUF
    once the device holds a trusted root (DIR/tuf/), else from the channel pointer and the index."""
    from mlship.edge.tuf_client import Release, provisioned

    if provisioned(directory):
        release = Release(target, name, channel, directory)
        return release.version, lambda dest: (release.download(dest), f"{name}/{release.bundle}")[1]
    version = channel_version(target, name, channel)
    bundle = bundle_entry(target, name, version)
    return version, lambda dest: _download_indexed(target, f"{name}/{version}/{bundle.path}", bundle, dest)


def _download_indexed(target: Target, key: str, bundle: FileEntry, dest: Path) -> str:
    target.download(key, dest, lambda n: None)
    if sha256_file(dest) != bundle.sha256:
        raise InvalidInputError(f"{target.describe()}: {key} does not match its "
                                "sha256 in the index (corrupt or tampered)")
    return key


def _where(target: Target, key: str) -> str:
    return f"{target.describe().rstrip('/')}/{key}"


def channel_version(target: Target, name: str, channel: str) -> str:
    """The version NAME/channels/CHANNEL.json points at, checked as an identifier."""
    key = f"{name}/channels/{channel}.json"
    raw = target.read(key)
    if raw is None:
        raise UsageError(f"{target.describe()}: {name} has no channel {channel}")
    where = _where(target, key)
    pointer = load_json(raw, where)
    if not isinstance(pointer, dict) or "version" not in pointer:
        raise InvalidInputError(f"{where} must be a JSON object with a 'version'")
    return check_name(pointer["version"], "version", where=where)


def bundle_entry(target: Target, name: str, version: str) -> FileEntry:
    """The index entry ({path, sha256, size}) of VERSION's one .mlbundle, every field checked."""
    key = f"{name}/index.json"
    where = _where(target, key)
    raw = target.read(key)
    if raw is None:
        raise InvalidInputError(f"{where} is missing, but a channel names {name} {version}")
    index = load_json(raw, where)
    versions = index.get("versions") if isinstance(index, dict) else None
    if not isinstance(versions, list):
        raise InvalidInputError(f"{where} must be a JSON object with a 'versions' list")
    entry = next((v for v in versions if isinstance(v, dict) and v.get("version") == version), None)
    if entry is None:
        raise InvalidInputError(f"{where} has no version {version}, which the channel names")
    files = check_file_entries(entry.get("files"), f"{where}: {version}", where, inside=f"{name}/{version}/")
    bundles = [f for f in files if f.path.endswith(".mlbundle")]
    if len(bundles) != 1:
        raise InvalidInputError(f"{where}: {name} {version} holds {len(bundles)} bundles (.mlbundle files), "
                                "expected one")
    return bundles[0]


def _check_identity(manifest: BundleManifest, name: str, version: str, where: str) -> None:
    """A bundle (even a validly signed one) only installs as the name and version it was built for."""
    if (manifest.name, manifest.version) != (name, version):
        raise InvalidInputError(f"{where}: holds a bundle of {manifest.name} {manifest.version}, "
                                f"not {name} {version}", hint="Push each bundle under its own name and version")


def _install(target: Target, name: str, version: str, fetch: Callable[[Path], str], final: Path,
             public_key: Path | None) -> tuple[int, str]:
    """Download, check and unpack into `final` (replacing a copy that failed verification); its size and model."""
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{version}.", dir=final.parent))
    try:
        archive = staging / "bundle.mlbundle"
        key = fetch(archive)
        unpacked = unpack_bundle(archive, staging / "unpacked", public_key=public_key)
        _check_identity(unpacked.manifest, name, version, _where(target, key))
        if os.path.lexists(final):
            # Only now, with a verified replacement ready: the rejected copy goes into staging (removed below).
            os.rename(final, staging / "rejected")
        (staging / "unpacked").rename(final)  # whole, verified, or not there at all
        return archive.stat().st_size, unpacked.manifest.model
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
    """Switch `current` back to `previous` (and `previous` to what was current), once it verifies."""
    now, before = current_version(directory), link_target(directory / "previous")
    if before is None or not is_valid_name(before) or not (directory / "versions" / before).is_dir():
        raise UsageError(f"{directory}: no previous version to roll back to")
    folder = directory / "versions" / before
    verify_directory(folder, str(folder))
    _point(directory, "current", before)
    if now:
        _point(directory, "previous", now)
    return {"version": before, "previous": now}


def link_target(link: Path) -> str | None:
    """The version a link (DIR/current, DIR/previous) points at; None when there is no link."""
    return os.readlink(link).split("/")[-1] if link.is_symlink() else None


def current_manifest(directory: Path) -> tuple[Path, BundleManifest]:
    """The model file and manifest of the version in use, verified against the manifest."""
    link = directory / "current"
    if not link.is_symlink():
        raise UsageError(f"{directory}: no current version", hint="Run mlship edge sync first")
    points_at = os.readlink(link)
    version = points_at.split("/")[-1]
    if not is_valid_name(version) or points_at != f"versions/{version}":
        raise InvalidInputError(f"{link} points at {points_at!r}, not at a version in {directory / 'versions'}",
                                hint="Run mlship edge sync again")
    folder = directory / "versions" / version
    if not folder.is_dir():
        raise InvalidInputError(f"{link} points at versions/{version}, which is not there",
                                hint="Run mlship edge sync again")
    manifest = verify_directory(folder, str(folder))
    return folder.resolve() / manifest.model, manifest


def upload_logs(target: Target, name: str, log_dir: Path, device: str) -> list[str]:
    """Ship finished prediction logs to NAME/logs/DEVICE/ and move them to LOG_DIR/uploaded/.

    The newest file of each writer (its name up to the time stamp) may still be
    growing, so it stays until a later sync."""
    check_name(name, "name")
    check_name(device, "device")
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
