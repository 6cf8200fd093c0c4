"""Edge bundles (`NAME-VERSION.mlbundle`): a gzipped tar with manifest.json.

Manifest (schema `mlship.bundle/v1`): name, version, created, `model` (the
path of the ONNX file inside), and `files` with each path's sha256 and size.
Unpacking refuses absolute paths, `..`, links and device files, and checks
every digest before anything is used.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from mlship.errors import InvalidInputError

MANIFEST = "manifest.json"
SCHEMA = "mlship.bundle/v1"


@dataclass(frozen=True)
class UnpackedBundle:
    directory: Path
    manifest: dict[str, Any]

    @property
    def model_path(self) -> Path:
        return self.directory / self.manifest["model"]


def unpack_bundle(bundle: Path, into: Path | None = None, public_key: Path | None = None) -> UnpackedBundle:
    """Verify and unpack a bundle into `into` (a new temporary directory by default).
    With `public_key`, the manifest must carry a valid signature from it."""
    target = Path(into) if into else Path(tempfile.mkdtemp(prefix="mlship-bundle-"))
    try:
        with tarfile.open(bundle, "r:gz") as tar:
            members = tar.getmembers()
            for member in members:
                _check_member(bundle, member)
            tar.extractall(target, members=members, filter="data")
    except (tarfile.TarError, OSError, EOFError) as exc:
        shutil.rmtree(target, ignore_errors=True) if into is None else None
        raise InvalidInputError(f"{bundle}: not a readable bundle: {exc}") from None
    manifest = _read_manifest(bundle, target)
    if public_key is not None:
        signature = target / "manifest.sig"
        if not signature.is_file():
            raise InvalidInputError(f"{bundle}: the bundle is not signed, and a public key is configured")
        from mlship.build.signing import verify

        verify((target / MANIFEST).read_bytes(), signature.read_bytes(), public_key, str(bundle))
    _verify_files(bundle, target, manifest)
    return UnpackedBundle(target, manifest)


def _check_member(bundle: Path, member: tarfile.TarInfo) -> None:
    path = PurePosixPath(member.name)
    if path.is_absolute() or ".." in path.parts:
        raise InvalidInputError(f"{bundle}: unsafe path in bundle: {member.name}")
    if not (member.isfile() or member.isdir()):
        raise InvalidInputError(f"{bundle}: bundle entries must be plain files, not {member.name}")


def _read_manifest(bundle: Path, root: Path) -> dict[str, Any]:
    try:
        manifest = json.loads((root / MANIFEST).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise InvalidInputError(f"{bundle}: missing or unreadable {MANIFEST}: {exc}") from None
    for key in ("name", "version", "model", "files"):
        if key not in manifest:
            raise InvalidInputError(f"{bundle}: {MANIFEST} has no '{key}'")
    return manifest


def _verify_files(bundle: Path, root: Path, manifest: dict[str, Any]) -> None:
    listed = {entry["path"]: entry for entry in manifest["files"]}
    extra = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()
                   and p.name not in (MANIFEST, "manifest.sig") and p.relative_to(root).as_posix() not in listed)
    if extra:
        raise InvalidInputError(f"{bundle}: {extra[0]} is in the bundle but not in {MANIFEST}")
    if manifest["model"] not in listed:
        raise InvalidInputError(f"{bundle}: the model {manifest['model']} is not listed in {MANIFEST}")
    for rel, entry in listed.items():
        path = root / rel
        if not path.is_file():
            raise InvalidInputError(f"{bundle}: {rel} is listed in {MANIFEST} but missing")
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest != entry["sha256"]:
            raise InvalidInputError(f"{bundle}: {rel} does not match its sha256 in {MANIFEST} (tampered or corrupt)")
