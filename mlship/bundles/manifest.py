"""The bundle manifest (`BundleManifest`, schema `mlship.bundle/v1`): written by
bundles/write.py, read and checked here, and an unpacked bundle verified against it.

A manifest read comes from whoever made the bundle,
so nothing in it is trusted before it is checked: name and version follow
the identifier rule (mlship/names.py), every path is relative and stays
inside the bundle, digests are sha256 hex, sizes are counts. An unpacked
directory matches its manifest when it holds exactly the listed files (plus
the root manifest.json and manifest.sig), with their sizes and digests, and
no links.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mlship.errors import InvalidInputError, UsageError
from mlship.model.features import DeclaredFeatures, apply_features
from mlship.model.signature import Signature
from mlship.names import check_name

MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"
SCHEMA = "mlship.bundle/v1"

_SHA256 = re.compile(r"[0-9a-f]{64}")


class FileEntry(BaseModel):
    """A file a manifest (or a target's index) lists: its relative path, sha256 and size."""

    path: str
    sha256: str
    size: int


class BundleManifest(BaseModel):
    """manifest.json. A bundle mlship builds fills every field; a manifest read needs only name,
    version, model and files (what the device trusts, checked by `parse_manifest`); keys this
    version does not know are dropped."""

    model_config = ConfigDict(serialize_by_alias=True, extra="ignore")

    schema_id: str = Field(SCHEMA, alias="schema")
    name: str
    version: str
    created: str | None = None
    model: str = Field(description="The path of the ONNX (or ORT) file inside the bundle.")
    files: list[FileEntry]
    signature: dict[str, Any] | None = None
    opsets: dict[str, int] | None = None
    ir_version: int | None = None
    min_onnxruntime: str | None = None
    source_model_sha256: str | None = None
    quantization: dict[str, Any] | None = None
    features: dict[str, list[str]] | None = Field(
        None, description="Column names of the model's 2-D inputs (the project's `features:`), so `serve BUNDLE` "
        "and `edge run` take named columns as the project did.")

    def declared_features(self) -> DeclaredFeatures | None:
        """`features` as the runner takes them; None when the bundle names no columns."""
        if not self.features:
            return None
        return DeclaredFeatures(columns=self.features, source=f"bundle {self.name}-{self.version}: features")

    def to_json(self) -> bytes:
        """manifest.json's bytes: sorted keys, one-space indent (part of the bundle's deterministic bytes)."""
        return json.dumps(self.model_dump(), indent=1, sort_keys=True).encode()


def load_json(raw: bytes, where: str) -> Any:
    """Parse JSON read from a bundle or a target; malformed text is invalid input, never a crash."""
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:  # ValueError covers JSONDecodeError and UnicodeDecodeError
        detail = (exc.msg if isinstance(exc, json.JSONDecodeError) else "not UTF-8 text"
                  if isinstance(exc, UnicodeDecodeError) else "nested too deeply"
                  if isinstance(exc, RecursionError) else str(exc))
        raise InvalidInputError(f"{where} is not valid JSON ({detail})") from None


def shown(path: str) -> str:
    """A path from a bundle as it may be printed: quoted when it holds a newline or another control
    character, so an error stays on its one line."""
    return path if path.isprintable() else repr(path)


def check_relative_path(value: object, what: str, where: str, inside: str = "the bundle") -> str:
    """`value` if it is a plain relative POSIX path: printable, no '', '.' or '..' parts, no leading
    '/', no '\\' (a separator on Windows devices)."""
    if (isinstance(value, str) and value.isprintable() and "\\" not in value
            and all(part not in ("", ".", "..") for part in value.split("/"))):
        return value
    raise InvalidInputError(f"{where}: {what} {value!r:.200} must be a relative path inside {inside} "
                            "(printable, no leading '/', no '.', '..' or empty parts)")


def check_sha256(value: object, what: str, where: str) -> str:
    if isinstance(value, str) and _SHA256.fullmatch(value):
        return value
    raise InvalidInputError(f"{where}: {what} must be a sha256 (64 lowercase hex digits), not {value!r:.80}")


def check_size(value: object, what: str, where: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    raise InvalidInputError(f"{where}: {what} must be a byte count (a whole number >= 0), not {value!r:.80}")


def check_file_entries(files: object, place: str, where: str | None = None,
                       inside: str = "the bundle") -> list[FileEntry]:
    """A list of {path, sha256, size} objects, every field checked. Errors about the list's shape
    name `place`, errors about a field `where` (default `place`)."""
    where = where or place
    if not isinstance(files, list) or not all(isinstance(entry, dict) for entry in files):
        raise InvalidInputError(f"{place}: 'files' must be a list of {{path, sha256, size}} objects")
    entries = []
    for entry in files:
        for key in ("path", "sha256", "size"):
            if key not in entry:
                raise InvalidInputError(f"{place}: a 'files' entry has no '{key}'")
        path = check_relative_path(entry["path"], "file path", where, inside)
        entries.append(FileEntry(path=path, sha256=check_sha256(entry["sha256"], f"the sha256 of {path}", where),
                                 size=check_size(entry["size"], f"the size of {path}", where)))
    return entries


def parse_manifest(raw: bytes, where: str) -> BundleManifest:
    """The manifest in `raw` (read from `where`), checked field by field."""
    place = f"{MANIFEST} of {where}"
    manifest = load_json(raw, place)
    if not isinstance(manifest, dict):
        raise InvalidInputError(f"{place} must be a JSON object, not {type(manifest).__name__}")
    schema = manifest.get("schema", SCHEMA)
    if schema != SCHEMA:
        raise InvalidInputError(f"{place}: schema {schema!r:.80} is not supported (this mlship reads {SCHEMA})")
    for key in ("name", "version", "model", "files"):
        if key not in manifest:
            raise InvalidInputError(f"{place} has no '{key}'")
    check_name(manifest["name"], "name", where=place)
    check_name(manifest["version"], "version", where=place)
    files = check_file_entries(manifest["files"], place)
    seen: set[str] = set()
    for entry in files:
        if entry.path in seen:
            raise InvalidInputError(f"{place}: {entry.path} is listed twice")
        seen.add(entry.path)
    model = check_relative_path(manifest["model"], "model path", place)
    if model not in seen:
        raise InvalidInputError(f"{place}: the model {model} is not listed in 'files'")
    typed = _typed(manifest, files, place)
    _check_features(typed, place)
    return typed


def _check_features(manifest: BundleManifest, place: str) -> None:
    """Declared columns must fit the inputs the manifest describes: a bundle's error is invalid
    input (exit 3), not the usage error the same names in mlship.yaml would be."""
    declared = manifest.declared_features()
    if declared is None:
        return
    if manifest.signature is None:
        raise InvalidInputError(f"{place}: features without the signature whose inputs they name")
    try:
        apply_features(Signature.model_validate(manifest.signature), declared)
    except (UsageError, ValidationError, IndexError) as exc:
        detail = exc.message if isinstance(exc, UsageError) else "its signature cannot be read"
        raise InvalidInputError(f"{place}: features do not fit the model: {detail}"[:400]) from None


def _typed(manifest: dict[str, Any], files: list[FileEntry], place: str) -> BundleManifest:
    """The checked manifest as a BundleManifest; a descriptive field of the wrong type is refused too."""
    try:
        return BundleManifest.model_validate({**manifest, "files": files})
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(part) for part in error["loc"])
        raise InvalidInputError(f"{place}: {shown(field)[:80]} is not valid ({error['msg']})") from None


def verify_directory(root: Path, where: str, public_key: Path | None = None) -> BundleManifest:
    """Check an unpacked bundle at `root` against its manifest (and, with `public_key`, the
    manifest's signature); return the manifest. Anything else is InvalidInputError naming `where`."""
    found = _regular_files(root, where)
    if MANIFEST not in found:
        raise InvalidInputError(f"{where}: no {MANIFEST}")
    raw = (root / MANIFEST).read_bytes()
    if public_key is not None:
        if SIGNATURE not in found:
            raise InvalidInputError(f"{where}: the bundle is not signed, and a public key is configured")
        from mlship.bundles.signing import verify

        verify(raw, (root / SIGNATURE).read_bytes(), public_key, where)
    manifest = parse_manifest(raw, where)
    listed = {entry.path: entry for entry in manifest.files}
    # Only the two root entries are exempt: sub/manifest.sig is content like any other file.
    extra = sorted(found - set(listed) - {MANIFEST, SIGNATURE})
    if extra:
        raise InvalidInputError(f"{where}: {shown(extra[0])} is in the bundle but not in {MANIFEST}")
    from mlship.model.load import sha256_file

    for rel, entry in listed.items():
        if rel not in found:
            raise InvalidInputError(f"{where}: {rel} is listed in {MANIFEST} but missing")
        path = root / rel
        if path.stat().st_size != entry.size or sha256_file(path) != entry.sha256:
            raise InvalidInputError(f"{where}: {rel} does not match its sha256 in {MANIFEST} (tampered or corrupt)")
    return manifest


def _regular_files(root: Path, where: str) -> set[str]:
    """Relative paths of the files under `root`; a link or special file anywhere is refused."""
    if root.is_symlink() or not root.is_dir():
        raise InvalidInputError(f"{where}: not a directory")
    files: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(root):
        for entry in dirnames + filenames:
            path = Path(dirpath) / entry
            rel = path.relative_to(root).as_posix()
            if path.is_symlink():
                raise InvalidInputError(f"{where}: {shown(rel)} is a link; bundles hold plain files only")
            if entry in filenames:
                if not path.is_file():
                    raise InvalidInputError(f"{where}: {shown(rel)} is not a plain file")
                files.add(rel)
    return files
