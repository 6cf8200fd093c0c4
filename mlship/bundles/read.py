"""Edge bundles (`NAME-VERSION.mlbundle`): a gzipped tar with manifest.json.

Manifest (schema `mlship.bundle/v1`, checked by mlship/bundles/manifest.py):
name, version, created, `model` (the path of the ONNX file inside), and
`files` with each path's sha256 and size. Unpacking refuses absolute paths,
`..`, links and device files, and checks every digest (and, with a public
key, the signature) before anything is used; a refused bundle leaves nothing
unpacked behind.
"""

from __future__ import annotations

import shutil
import tarfile
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from mlship.bundles.manifest import BundleManifest, shown, verify_directory
from mlship.errors import InvalidInputError


@dataclass(frozen=True)
class UnpackedBundle:
    directory: Path
    manifest: BundleManifest

    @property
    def model_path(self) -> Path:
        return self.directory / self.manifest.model


def unpack_bundle(bundle: Path, into: Path | None = None, public_key: Path | None = None) -> UnpackedBundle:
    """Verify and unpack a bundle into `into` (a new temporary directory by default).
    With `public_key`, the manifest must carry a valid signature from it.
    On any error the directory is removed again if this call created it."""
    created = into is None or not Path(into).exists()
    target = Path(into) if into else Path(tempfile.mkdtemp(prefix="mlship-bundle-"))
    try:
        try:
            with tarfile.open(bundle, "r:gz") as tar:
                members = tar.getmembers()
                for member in members:
                    _check_member(bundle, member)
                tar.extractall(target, members=members, filter="data")
        except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
            raise InvalidInputError(f"{bundle}: not a readable bundle: {exc}") from None
        manifest = verify_directory(target, str(bundle), public_key)
    except BaseException:
        if created:
            shutil.rmtree(target, ignore_errors=True)
        raise
    return UnpackedBundle(target, manifest)


def _check_member(bundle: Path, member: tarfile.TarInfo) -> None:
    path = PurePosixPath(member.name)
    if path.is_absolute() or ".." in path.parts:
        raise InvalidInputError(f"{bundle}: unsafe path in bundle: {shown(member.name)}")
    if not (member.isfile() or member.isdir()):
        raise InvalidInputError(f"{bundle}: bundle entries must be plain files, not {shown(member.name)}")
