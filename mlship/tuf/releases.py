"""What mlship signs as TUF targets: a pushed version's files and the channel pointers.

Target paths (relative to NAME/ in the target): `VERSION/FILE` for every file
pushed under a version, `channels/CHANNEL.json` for a channel pointer. A
channel's target carries `custom.mlship` = {version, bundle}: the version it
points at and that version's .mlbundle target, so a device learns both from
signed metadata alone.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlship.errors import UsageError
from mlship.model.load import sha256_file
from mlship.tuf import metadata as meta
from mlship.tuf.publish import Published, publish
from mlship.tuf.settings import SigningSettings

if TYPE_CHECKING:
    from mlship.targets.base import Target


def channel_path(channel: str) -> str:
    return f"channels/{channel}.json"


def channel_copy_key(name: str, channel: str, sha256: str) -> str:
    """Where the pointer with this digest is kept for TUF clients (content-addressed: never rewritten)."""
    return meta.tuf_key(name, f"targets/channels/{sha256}.{channel}.json")


def publish_version(target: Target, name: str, version: str, files: list[tuple[Path, str]],
                    settings: SigningSettings) -> Published:
    """Sign every file of NAME VERSION as a target `VERSION/FILE` (a no-op when they are signed already)."""
    from tuf.api.metadata import TargetFile

    entries = [TargetFile(length=p.stat().st_size, hashes={"sha256": sha256_file(p)}, path=f"{version}/{rel}")
               for p, rel in files]

    def add(targets: Any) -> bool:
        fresh = [e for e in entries if targets.targets.get(e.path) != e]
        for entry in fresh:
            known = targets.targets.get(entry.path)
            if known is not None:  # versions are immutable, signed ones included
                raise UsageError(f"{target.describe()}: {name}/tuf/ already signs {entry.path} with other content",
                                 hint="Push it as a new version")
            targets.targets[entry.path] = entry
        return bool(fresh)

    return publish(target, name, settings, add)


def publish_channel(target: Target, name: str, channel: str, pointer: bytes, version: str,
                    settings: SigningSettings) -> Published:
    """Sign `pointer` (the channel document) as the target `channels/CHANNEL.json`: moving a channel is a signed act."""
    from tuf.api.metadata import TargetFile

    digest = hashlib.sha256(pointer).hexdigest()
    meta.write_once(target, channel_copy_key(name, channel, digest), pointer)

    def move(targets: Any) -> bool:
        bundles = sorted(p for p in targets.targets if p.startswith(f"{version}/") and p.endswith(".mlbundle"))
        if not any(p.startswith(f"{version}/") for p in targets.targets):
            raise UsageError(f"{target.describe()}: {name} {version} is not signed in {name}/tuf/",
                             hint="Push it again with `signing:` configured, then promote it")
        entry = TargetFile(length=len(pointer), hashes={"sha256": digest}, path=channel_path(channel),
                           unrecognized_fields={"custom": {"mlship": {
                               "version": version, "bundle": bundles[0] if len(bundles) == 1 else None}}})
        if targets.targets.get(entry.path) == entry:
            return False
        targets.targets[entry.path] = entry
        return True

    return publish(target, name, settings, move)


def check_signed(target: Target, name: str, version: str) -> None:
    """A usage error unless NAME VERSION's files are signed targets (checked before a channel moves)."""
    repo = meta.load(target, name)
    if repo is None or repo.targets is None or not any(p.startswith(f"{version}/") for p in repo.targets.signed.targets):
        raise UsageError(f"{target.describe()}: {name} {version} is not signed in {name}/tuf/",
                         hint="Push it again with `signing:` configured, then promote it")


def refresh(target: Target, name: str, settings: SigningSettings) -> Published:
    """New snapshot and timestamp versions with fresh expiry (for a cron job); targets unchanged."""
    if meta.load_root(target, name) is None:
        raise UsageError(f"{target.describe()}: {name} has no TUF repository ({name}/tuf/1.root.json)",
                         hint="Push a bundle with `signing:` configured first")
    return publish(target, name, settings, None)

