"""Reading and writing TUF metadata in a target, verified as it is read.

Layout under NAME/tuf/ (consistent snapshots, so a device reading while a
publisher writes never sees a torn state):

    N.root.json               every root version, each signed by the old and the new root keys
    N.targets.json            bundles and channel pointers as targets (length, sha256)
    N.snapshot.json           the targets version
    timestamp.json            the snapshot version; the one mutable file, the commit point
    targets/channels/H.C.json the channel pointer whose sha256 is H (content-addressed, immutable)

Whoever can write the target is not trusted by the publisher either: every
role read back is verified against the root chain before anything is signed
on top of it, so a forged targets.json is refused, not re-signed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from mlship.errors import InvalidInputError, UsageError

if TYPE_CHECKING:
    from mlship.targets.base import Target

MAX_ROOTS = 1024  # root versions walked before giving up (a bound against an endless chain)


class Taken(Exception):
    """Another publisher wrote this immutable key first (with other bytes)."""


def tuf_key(name: str, file: str) -> str:
    return f"{name}/tuf/{file}"


@dataclass
class Repository:
    """NAME's verified TUF metadata as a target holds it; `timestamp_raw` is what the commit compares."""

    root: Any  # Metadata[Root]
    targets: Any  # Metadata[Targets] | None (None before the first release)
    snapshot: Any
    timestamp: Any
    timestamp_raw: bytes | None


def parse(raw: bytes, where: str) -> Any:
    """Metadata from bytes, or exit 3 naming where."""
    from tuf.api.serialization import DeserializationError
    from tuf.api.metadata import Metadata

    try:
        return Metadata.from_bytes(raw)
    except DeserializationError as exc:
        raise InvalidInputError(f"{where}: not TUF metadata ({str(exc).splitlines()[0][:120]})",
                                hint="Repair or remove it in the target") from None


def verify(delegator: Any, role: str, md: Any, where: str) -> None:
    """Exit 3 unless `md` is `role`'s, signed by its threshold of keys in `delegator` (a root)."""
    from tuf.api.exceptions import UnsignedMetadataError

    if md.signed.type != role:
        raise InvalidInputError(f"{where}: holds {md.signed.type} metadata, not {role}")
    try:
        delegator.signed.verify_delegate(role, md.signed_bytes, md.signatures)
    except UnsignedMetadataError as exc:
        raise InvalidInputError(f"{where}: bad signature: {exc}", hint="Someone without the keys wrote it: "
                                "restore it, or publish again") from None


def load_root(target: Target, name: str) -> Any | None:
    """The newest root, each version verified by its predecessor's threshold and its own; None when none."""
    key = tuf_key(name, "1.root.json")
    raw = target.read(key)
    if raw is None:
        return None
    root = parse(raw, f"{target.describe()}: {key}")
    verify(root, "root", root, f"{target.describe()}: {key}")
    for version in range(2, MAX_ROOTS):
        key = tuf_key(name, f"{version}.root.json")
        raw = target.read(key)
        if raw is None:
            break
        where = f"{target.describe()}: {key}"
        newer = parse(raw, where)
        verify(root, "root", newer, where + " (by the previous root's keys)")
        verify(newer, "root", newer, where)
        if newer.signed.version != version:
            raise InvalidInputError(f"{where}: says version {newer.signed.version}")
        root = newer
    return root


def load(target: Target, name: str) -> Repository | None:
    """NAME's repository, every role verified; None when no root was published yet."""
    root = load_root(target, name)
    if root is None:
        return None
    key = tuf_key(name, "timestamp.json")
    raw = target.read(key)
    if raw is None:
        return Repository(root, None, None, None, None)
    timestamp = _role(root, "timestamp", raw, target, key)
    snap_version = timestamp.signed.snapshot_meta.version
    snapshot = _role(root, "snapshot", _need(target, tuf_key(name, f"{snap_version}.snapshot.json")),
                     target, tuf_key(name, f"{snap_version}.snapshot.json"))
    targets_version = snapshot.signed.meta["targets.json"].version
    key = tuf_key(name, f"{targets_version}.targets.json")
    targets = _role(root, "targets", _need(target, key), target, key)
    return Repository(root, targets, snapshot, timestamp, raw)


def _need(target: Target, key: str) -> bytes:
    raw = target.read(key)
    if raw is None:
        raise InvalidInputError(f"{target.describe()}: {key} is missing, but timestamp.json names it",
                                hint="Restore it, or run mlship edge refresh")
    return raw


def _role(root: Any, role: str, raw: bytes, target: Target, key: str) -> Any:
    where = f"{target.describe()}: {key}"
    md = parse(raw, where)
    verify(root, role, md, where)
    return md


def write_once(target: Target, key: str, data: bytes) -> None:
    """Create `key` with `data`; Taken when another writer created it with other bytes."""
    def create(old: bytes | None) -> bytes | None:
        if old is None:
            return data
        if old == data:
            return None
        raise Taken(key)

    target.update(key, create)


def commit_timestamp(target: Target, name: str, expected: bytes | None, data: bytes) -> None:
    """Replace timestamp.json only if it still holds `expected`; Taken when another publish came first."""
    def swap(old: bytes | None) -> bytes | None:
        if old != expected:
            raise Taken("timestamp.json")
        return data

    target.update(tuf_key(name, "timestamp.json"), swap)


def sign(md: Any, signers: list[Any], threshold: int, role: str) -> bytes:
    """`md` signed by every signer given; a usage error when they are fewer than the threshold."""
    from tuf.api.serialization.json import JSONSerializer

    if len(signers) < threshold:
        raise UsageError(f"signing {role} metadata needs {threshold} private keys, "
                         f"signing.keys.{role} gives {len(signers)}",
                         hint=f"List {role} private keys (files, env:VAR or fd:N) in signing.keys.{role}")
    md.signatures.clear()
    for signer in signers:
        md.sign(signer, append=True)
    return md.to_bytes(JSONSerializer(compact=False))


def claim(target: Target, name: str, role: str, start: int, build: Callable[[int], bytes]) -> int:
    """Write N.ROLE.json for the first N >= start nobody else took; that N.

    Versions only need to grow, not be consecutive, so a publisher that lost a race (or
    crashed after writing) leaves a version behind and the next one takes the one after."""
    for version in range(start, start + 100):
        try:
            write_once(target, tuf_key(name, f"{version}.{role}.json"), build(version))
            return version
        except Taken:
            continue
    raise InvalidInputError(f"{target.describe()}: {name}/tuf/: 100 {role} versions after {start - 1} are taken",
                            hint="Remove unreferenced versions, or check who writes to the target")
