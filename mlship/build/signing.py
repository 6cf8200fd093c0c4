"""Ed25519 keys and detached signatures over bundle manifests (the `edge` extra)."""

from __future__ import annotations

import os
from pathlib import Path

from mlship.errors import InvalidInputError, UsageError
from mlship.extras import require
from mlship.fsutil import atomic_write


def generate_keys(directory: Path, name: str = "mlship") -> tuple[Path, Path]:
    """NAME.key (private, PKCS#8 PEM, mode 0600) and NAME.pub (public, PEM)."""
    require("cryptography")
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    private, public = directory / f"{name}.key", directory / f"{name}.pub"
    for path in (private, public):
        if path.exists():
            raise UsageError(f"{path} already exists", hint="Choose another --name or directory")
    key = Ed25519PrivateKey.generate()
    atomic_write(private, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                            serialization.NoEncryption()))
    os.chmod(private, 0o600)
    atomic_write(public, key.public_key().public_bytes(serialization.Encoding.PEM,
                                                        serialization.PublicFormat.SubjectPublicKeyInfo))
    return private, public


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
