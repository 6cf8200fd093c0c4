"""Role keys for TUF metadata: loaded from files, environment variables or file descriptors.

Keys are the Ed25519 PEM pairs `mlship keys generate` writes (the same format
that signs bundle manifests), wrapped as securesystemslib signers.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from mlship.errors import UsageError
from mlship.extras import require
from mlship.tuf.settings import ROLES, SigningSettings

_FD_CACHE: dict[int, bytes] = {}  # a descriptor can be read once; later loads in this process reuse it


@dataclass
class RoleKeys:
    """One role's keys: every public key (listed in root) and the signers among them."""

    role: str
    threshold: int
    public: list[Any] = field(default_factory=list)  # securesystemslib SSlibKey
    signers: list[Any] = field(default_factory=list)  # securesystemslib CryptoSigner


def read_reference(ref: str) -> bytes:
    """The PEM bytes a key reference names: a path, env:VAR or fd:N."""
    if ref.startswith("env:"):
        value = os.environ.get(ref[4:])
        if not value:
            raise UsageError(f"signing key {ref}: the environment variable {ref[4:]} is not set")
        return value.encode()
    if ref.startswith("fd:"):
        return _read_fd(ref)
    try:
        with open(os.path.expanduser(ref), "rb") as fh:
            return fh.read()
    except OSError as exc:
        raise UsageError(f"signing key {ref}: {exc.strerror or exc}") from None


def _read_fd(ref: str) -> bytes:
    try:
        fd = int(ref[3:])
    except ValueError:
        raise UsageError(f"signing key {ref}: expected fd:NUMBER") from None
    if fd not in _FD_CACHE:
        try:
            with os.fdopen(os.dup(fd), "rb") as fh:
                _FD_CACHE[fd] = fh.read()
        except OSError as exc:
            raise UsageError(f"signing key {ref}: {exc.strerror or exc}") from None
    return _FD_CACHE[fd]


def load_key(ref: str) -> tuple[Any, Any | None]:
    """(public key, signer or None) from a PEM private or public key."""
    require("cryptography")
    require("securesystemslib")
    from cryptography.hazmat.primitives import serialization
    from securesystemslib.signer import CryptoSigner, SSlibKey

    pem = read_reference(ref)
    try:
        if b"PRIVATE KEY" in pem:
            signer = CryptoSigner(serialization.load_pem_private_key(pem, password=None))
            return signer.public_key, signer
        return SSlibKey.from_crypto(serialization.load_pem_public_key(pem)), None
    except (ValueError, TypeError) as exc:
        raise UsageError(f"signing key {ref}: not a usable PEM key ({str(exc).splitlines()[0][:120]})") from None


def load_roles(settings: SigningSettings) -> dict[str, RoleKeys]:
    """Every role's keys and threshold, as configured."""
    roles = {}
    for role in ROLES:
        keys = RoleKeys(role, settings.threshold_of(role))
        for ref in settings.keys.get(role, []):  # type: ignore[call-overload]
            public, signer = load_key(ref)
            keys.public.append(public)
            if signer is not None:
                keys.signers.append(signer)
        roles[role] = keys
    return roles
