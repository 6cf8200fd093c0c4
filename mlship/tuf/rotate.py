"""Key rotation: a new root version that hands one role to new keys, signed by the old and the new root keys.

The old root keys are the ones `signing.keys.root` names (they are the ones
NAME's current root trusts); the new keys come from the command line. A
device walks N.root.json -> N+1.root.json only when N+1 carries the
threshold of N's root keys and its own, so a writer holding only new keys
(or fewer than the old threshold) cannot rotate anyone's trust. After a
rotation of targets, snapshot or timestamp the role's metadata is re-signed
at once with the new keys, so devices never trust a state the revoked key
signed. Then `signing.keys.ROLE` in mlship.yaml must name the new keys.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from mlship.errors import InvalidInputError, UsageError
from mlship.tuf import metadata as meta
from mlship.tuf.keys import RoleKeys, load_key, load_roles
from mlship.tuf.publish import _publish_once, expiry
from mlship.tuf.settings import SigningSettings

if TYPE_CHECKING:
    from mlship.targets.base import Target


class Rotated(BaseModel):
    """What a rotation left in the target."""

    target: str
    name: str
    role: str
    root: int
    threshold: int
    revoked: list[str]
    added: list[str]


def rotate(target: Target, name: str, settings: SigningSettings, role: str, new_refs: list[str],
           threshold: int | None = None) -> Rotated:
    """Write NAME's next root with `role` held by `new_refs` (k = `threshold`, default the role's current k)."""
    current = meta.load_root(target, name)
    if current is None:
        raise UsageError(f"{target.describe()}: {name} has no TUF repository ({name}/tuf/1.root.json)",
                         hint="Push a bundle with `signing:` configured first")
    new = _new_keys(role, new_refs, threshold or current.signed.roles[role].threshold)
    root, revoked = _next_root(current, role, new, settings)
    signers = load_roles(settings)["root"].signers + (new.signers if role == "root" else [])
    data = meta.sign(root, signers, 1, "root")
    _check_chain(current, root, target, name)
    state = meta.load(target, name)  # read while the old root still verifies it: the re-sign starts from it
    key = meta.tuf_key(name, f"{root.signed.version}.root.json")
    try:
        meta.write_once(target, key, data)
    except meta.Taken:
        raise UsageError(f"{target.describe()}: {key} was written by someone else meanwhile",
                         hint="Check who writes to the target, then run the rotation again") from None
    if role != "root":
        _resign(target, name, settings, role, new_refs, new.threshold, state)
    return Rotated(target=target.describe(), name=name, role=role, root=root.signed.version,
                   threshold=new.threshold, revoked=revoked, added=[k.keyid for k in new.public])


def _new_keys(role: str, refs: list[str], threshold: int) -> RoleKeys:
    """The new keys; they sign right away (the new root, or the role's re-signed metadata), so k must be private."""
    if not refs:
        raise UsageError(f"keys rotate --role {role}: no --new-key given")
    new = RoleKeys(role, threshold)
    for ref in refs:
        public, signer = load_key(ref)
        new.public.append(public)
        if signer is not None:
            new.signers.append(signer)
    if threshold < 1 or threshold > len(new.public):
        raise UsageError(f"keys rotate --role {role}: --threshold {threshold} with {len(new.public)} new keys")
    if len(new.signers) < threshold:
        raise UsageError(f"keys rotate --role {role}: {threshold} new private keys are needed to sign, "
                         f"--new-key gives {len(new.signers)}", hint="Pass the .key files, not the .pub files")
    return new


def _next_root(current: Any, role: str, new: RoleKeys, settings: SigningSettings) -> tuple[Any, list[str]]:
    """A copy of `current`, one version on, with `role`'s keys and threshold replaced; and the revoked keyids."""
    from tuf.api.metadata import Metadata

    root = Metadata.from_bytes(current.to_bytes())
    revoked = [k for k in root.signed.roles[role].keyids if k not in {n.keyid for n in new.public}]
    for keyid in list(root.signed.roles[role].keyids):
        root.signed.revoke_key(keyid, role)
    for key in new.public:
        root.signed.add_key(key, role)
    root.signed.roles[role].threshold = new.threshold
    root.signed.version += 1
    root.signed.expires = expiry(settings, "root")
    return root, revoked


def _check_chain(current: Any, root: Any, target: Target, name: str) -> None:
    """A usage error unless the new root carries the old root threshold (signing.keys.root) and its own."""
    where = f"{target.describe()}: {name}/tuf/{root.signed.version}.root.json"
    try:
        meta.verify(current, "root", root, where + " (by the current root's keys)")
        meta.verify(root, "root", root, where + " (by the new root's keys)")
    except InvalidInputError as exc:
        raise UsageError(str(exc).replace("bad signature", "not enough signatures"),
                         hint="signing.keys.root must hold the current root's threshold of private keys") from None


def _resign(target: Target, name: str, settings: SigningSettings, role: str, refs: list[str], k: int,
            state: meta.Repository | None) -> None:
    """The role's metadata anew, signed by the new keys (targets gets a new version; snapshot and timestamp always do)."""
    rotated = settings.model_copy(update={"keys": {**settings.keys, role: refs},
                                          "threshold": {**settings.threshold, role: k}})
    assert state is not None  # the root it was read with exists
    try:
        _publish_once(target, name, rotated, load_roles(rotated), state,
                      (lambda targets: True) if role == "targets" else None)
    except meta.Taken:
        raise UsageError(f"{target.describe()}: {name}/tuf/timestamp.json changed during the rotation: the new root "
                         f"is written, {role} is not re-signed yet",
                         hint=f"Name the new keys in signing.keys.{role}, then push again (or run mlship edge refresh)") from None
