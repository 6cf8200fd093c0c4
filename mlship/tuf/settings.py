"""`signing:` in mlship.yaml: TUF roles, their keys, thresholds and expiry.

A key is named by a reference: a file path (a PEM private key signs; a PEM
public key is only listed in root), `env:VAR` (the PEM text in an environment
variable, for CI secrets) or `fd:N` (read once from an open file descriptor).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

ROLES = ("root", "targets", "snapshot", "timestamp")
Role = Literal["root", "targets", "snapshot", "timestamp"]
DEFAULT_EXPIRY = {"root": "365d", "targets": "90d", "snapshot": "7d", "timestamp": "1d"}
_DURATION = re.compile(r"(\d+)(d|h|m|s)")
_SECONDS = {"d": 86400, "h": 3600, "m": 60, "s": 1}


def duration_seconds(text: str) -> int:
    """'1d', '12h', '90d', '1d12h' -> seconds; ValueError otherwise."""
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"{text!r} is not a duration (e.g. 1d, 12h, 90d)")
    return sum(int(n) * _SECONDS[u] for n, u in parts)


def is_reference(ref: str) -> bool:
    return ref.startswith(("env:", "fd:"))


class SigningSettings(BaseModel):
    """TUF signing of edge releases: with keys for every role, `mlship push` and `mlship promote`
    keep a TUF repository per model under NAME/tuf/ in the target."""

    model_config = ConfigDict(extra="forbid")

    keys: dict[Role, list[str]] = Field(
        default_factory=dict, description="Per role (root, targets, snapshot, timestamp): key files (a PEM private "
        "key signs, a PEM public key is listed only), env:VAR (PEM text in a variable) or fd:N.")
    threshold: dict[Role, int] = Field(
        default_factory=dict, description="Signatures a role needs (k of its n keys); default 1.")
    expires: dict[Role, str] = Field(
        default_factory=dict, description="How long each role's metadata stays valid, e.g. timestamp: 1d "
        f"(defaults: {', '.join(f'{r} {d}' for r, d in DEFAULT_EXPIRY.items())}).")

    @field_validator("expires")
    @classmethod
    def _durations(cls, value: dict[str, str]) -> dict[str, str]:
        for text in value.values():
            if duration_seconds(text) <= 0:
                raise ValueError(f"{text!r}: expiry must be longer than 0s")
        return value

    @model_validator(mode="after")
    def _thresholds(self) -> "SigningSettings":
        for role, k in self.threshold.items():
            n = len(self.keys.get(role, []))
            if k < 1 or (self.keys and k > n):
                raise ValueError(f"threshold.{role} is {k}, but {role} has {n} keys")
        return self

    @property
    def enabled(self) -> bool:
        """TUF publishing is on once any role has keys."""
        return any(self.keys.values())

    def threshold_of(self, role: str) -> int:
        return self.threshold.get(role, 1)  # type: ignore[call-overload]

    def expiry_seconds(self, role: str) -> int:
        return duration_seconds(self.expires.get(role, DEFAULT_EXPIRY[role]))  # type: ignore[call-overload]

    def resolved(self, base_dir: Path) -> "SigningSettings":
        """A copy whose relative key paths are made absolute against `base_dir` (mlship.yaml's folder)."""
        def absolute(ref: str) -> str:
            return ref if is_reference(ref) or Path(ref).expanduser().is_absolute() else str(base_dir / ref)

        keys = {role: [absolute(r) for r in refs] for role, refs in self.keys.items()}
        return self.model_copy(update={"keys": keys})
