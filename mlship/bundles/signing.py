"""Ed25519 keys and detached signatures over bundle manifests (the `edge` extra)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from mlship.errors import InvalidInputError, UsageError
from mlship.extras import require
from mlship.names import check_name


def generate_keys(directory: Path, name: str = "mlship") -> tuple[Path, Path]:
    """NAME.key (private, PKCS#8 PEM, mode 0600) and NAME.pub (public, PEM); never overwrites."""
    check_name(name, "key name")
    require("cryptography")
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    private, public = directory / f"{name}.key", directory / f"{name}.pub"
    for path in (private, public):
        if path.exists():
            raise UsageError(f"{path} already exists", hint="Choose another --name or directory")
    directory.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    _write_new(private, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()), 0o600)
    _write_new(public, key.public_key().public_bytes(serialization.Encoding.PEM,
                                                      serialization.PublicFormat.SubjectPublicKeyInfo), 0o644)
    return private, public


def _write_new(path: Path, data: bytes, mode: int) -> None:
    """Write `path`, which must not exist, with `mode` from its first byte on.

    The bytes go to a temporary file created with O_CREAT|O_EXCL and `mode`
    (never chmod-ed later, so a private key is not readable by others for a
    moment), are fsync-ed, and appear under `path` by link(2), which refuses
    to replace a file another process created meanwhile; readers never see
    half a key.
    """
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            raise UsageError(f"{path} already exists", hint="Choose another --name or directory") from None
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    finally:
        tmp.unlink(missing_ok=True)


def sign(data: bytes, private_key: Path) -> bytes:
    require("cryptography")
    from cryptography.hazmat.primitives import serialization

    try:
        key = serialization.load_pem_private_key(private_key.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise UsageError(f"cannot use signing key {private_key}: {exc}") from None
    return key.sign(data)


def verify(data: bytes, signature: bytes, public_key: Path, where: str) -> None:
    """InvalidInputError (exit 3) unless `signature` is `public_key`'s over `data`."""
    require("cryptography")
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import serialization

    try:
        key = serialization.load_pem_public_key(public_key.read_bytes())
    except (OSError, ValueError, TypeError) as exc:
        raise UsageError(f"cannot use public key {public_key}: {exc}") from None
    try:
        key.verify(signature, data)
    except InvalidSignature:
        raise InvalidInputError(f"{where}: the manifest signature does not match {public_key} "
                                "(tampered, or signed with another key)") from None
