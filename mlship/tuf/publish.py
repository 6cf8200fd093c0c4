"""Publishing to NAME's TUF repository: targets for pushed files and channel pointers, refresh.

Each publish reads the verified repository, signs new targets, snapshot and
timestamp versions, writes the first two under names nobody took yet, and
commits by replacing timestamp.json only if it is still the one read: a
concurrent publisher that commits first makes this one start again, so no
release is lost and devices only ever see a whole, signed state.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Callable

from pydantic import BaseModel

from mlship.errors import UsageError
from mlship.tuf import metadata as meta
from mlship.tuf.keys import RoleKeys, load_roles
from mlship.tuf.settings import ROLES, SigningSettings

if TYPE_CHECKING:
    from mlship.targets.base import Target

ATTEMPTS = 20  # publishes that lose the commit race start again this many times

# targets (the signed object) -> whether it changed
TargetsChange = Callable[[Any], bool]


class Published(BaseModel):
    """What a publish left in the target."""

    target: str
    name: str
    changed: bool
    root: int
    targets: int
    snapshot: int
    timestamp: int
    expires: dict[str, str]


def expiry(settings: SigningSettings, role: str) -> datetime:
    now = datetime.now(timezone.utc).replace(microsecond=0)
    return now + timedelta(seconds=settings.expiry_seconds(role))


def new_root(settings: SigningSettings, roles: dict[str, RoleKeys], version: int = 1) -> Any:
    """A root listing every role's public keys and threshold (consistent snapshots on)."""
    from tuf.api.metadata import Metadata, Root

    root = Root(version=version, expires=expiry(settings, "root"), consistent_snapshot=True)
    for role in ROLES:
        if not roles[role].public:
            raise UsageError(f"signing.keys.{role} is empty: every TUF role needs at least one key",
                             hint="Run mlship keys generate --role " + role)
        for key in roles[role].public:
            root.add_key(key, role)
        root.roles[role].threshold = roles[role].threshold
    return Metadata(root)


def _ensure_root(target: Target, name: str, settings: SigningSettings, roles: dict[str, RoleKeys]) -> None:
    """Write 1.root.json when NAME has no TUF repository yet (needs the root threshold of private keys)."""
    if meta.load_root(target, name) is not None:
        return
    root = new_root(settings, roles)
    data = meta.sign(root, roles["root"].signers, roles["root"].threshold, "root")
    try:
        meta.write_once(target, meta.tuf_key(name, "1.root.json"), data)
    except meta.Taken:
        pass  # another publisher made the first root meanwhile: it is loaded (and verified) next


def publish(target: Target, name: str, settings: SigningSettings, change: TargetsChange | None) -> Published:
    """Apply `change` to NAME's targets (None: only re-sign snapshot and timestamp) and commit."""
    roles = load_roles(settings)
    _ensure_root(target, name, settings, roles)
    for _ in range(ATTEMPTS):
        repo = meta.load(target, name)
        assert repo is not None  # made above
        _check_trusted(target, name, repo.root, roles, ("targets",) * (change is not None) + ("snapshot", "timestamp"))
        try:
            return _publish_once(target, name, settings, roles, repo, change)
        except meta.Taken:
            continue  # another publish committed first: start again from what it left
    raise UsageError(f"{target.describe()}: {name}/tuf/timestamp.json kept changing ({ATTEMPTS} attempts)",
                     hint="Run the command again")


def _check_trusted(target: Target, name: str, root: Any, roles: dict[str, RoleKeys], needed: tuple[str, ...]) -> None:
    """A usage error unless each role's signers are its threshold in NAME's newest root (after a key
    rotation, a config still naming the revoked keys would sign a state no device accepts)."""
    for role in needed:
        trusted = set(root.signed.roles[role].keyids)
        k = root.signed.roles[role].threshold
        keyids = {s.public_key.keyid for s in roles[role].signers}
        if len(keyids) >= k > len(keyids & trusted):  # too few keys at all: sign() names that
            raise UsageError(f"signing.keys.{role}: fewer than {k} of its private keys are trusted for {role} by "
                             f"{target.describe()}: {name}/tuf/{root.signed.version}.root.json",
                             hint=f"After mlship keys rotate, name the new keys in signing.keys.{role}")


def _publish_once(target: Target, name: str, settings: SigningSettings, roles: dict[str, RoleKeys],
                  repo: meta.Repository, change: TargetsChange | None) -> Published:
    from tuf.api.metadata import Metadata, MetaFile, Snapshot, Targets, Timestamp

    targets = repo.targets or Metadata(Targets(expires=expiry(settings, "targets")))
    changed = change(targets.signed) if change is not None else False
    if change is not None and not changed and repo.targets is not None:
        return _report(target, name, repo, changed=False)
    if changed or repo.targets is None:
        start = repo.targets.signed.version + 1 if repo.targets is not None else 1
        targets_version = meta.claim(target, name, "targets", start,
                                     lambda v: _signed(targets, v, settings, roles["targets"]))
    else:
        targets_version = targets.signed.version
    snapshot = Metadata(Snapshot(expires=expiry(settings, "snapshot")))
    snapshot.signed.meta["targets.json"] = MetaFile(version=targets_version)
    snapshot_version = meta.claim(target, name, "snapshot", (repo.snapshot.signed.version if repo.snapshot else 0) + 1,
                                  lambda v: _signed(snapshot, v, settings, roles["snapshot"]))
    snap_bytes = target.read(meta.tuf_key(name, f"{snapshot_version}.snapshot.json")) or b""
    timestamp = Metadata(Timestamp(expires=expiry(settings, "timestamp"), snapshot_meta=MetaFile(
        version=snapshot_version, length=len(snap_bytes), hashes={"sha256": hashlib.sha256(snap_bytes).hexdigest()})))
    timestamp.signed.version = (repo.timestamp.signed.version if repo.timestamp else 0) + 1
    data = meta.sign(timestamp, roles["timestamp"].signers, roles["timestamp"].threshold, "timestamp")
    meta.commit_timestamp(target, name, repo.timestamp_raw, data)
    return _report(target, name, meta.load(target, name), changed=True)


def _signed(md: Any, version: int, settings: SigningSettings, keys: RoleKeys) -> bytes:
    md.signed.version = version
    md.signed.expires = expiry(settings, keys.role)
    return meta.sign(md, keys.signers, keys.threshold, keys.role)


def _report(target: Target, name: str, repo: meta.Repository | None, *, changed: bool) -> Published:
    assert repo is not None and repo.timestamp is not None
    roles = {"root": repo.root, "targets": repo.targets, "snapshot": repo.snapshot, "timestamp": repo.timestamp}
    return Published(target=target.describe(), name=name, changed=changed,
                     **{role: md.signed.version for role, md in roles.items()},
                     expires={role: md.signed.expires.strftime("%Y-%m-%dT%H:%M:%SZ") for role, md in roles.items()})
