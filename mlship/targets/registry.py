"""registry targets: an OCI registry (on-prem registry, ECR) named in `targets:`.

A registry holds images, not artifact files: `mlship push --image --to
registry://…` sends images there (mlship/registry/). As a target it carries
its settings in mlship.yaml and refuses every artifact operation, before any
upload, with a pointer to the image push.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NoReturn

from pydantic import Field

from mlship.errors import MlshipError, UsageError
from mlship.targets.base import Change, Progress, Target


class RegistryTarget(Target):
    """An OCI registry (on-prem registry, ECR)."""

    name = "registry"

    class Settings(Target.Settings):
        url: str = Field(..., description="host:port/repository")
        insecure: bool = Field(False, description="Plain HTTP, for registries on loopback or a trusted LAN.")

    def __init__(self, url: str, *, insecure: bool = False, **_: Any) -> None:
        super().__init__(url)
        self.insecure = insecure

    @classmethod
    def refusal(cls, spec: str) -> MlshipError:
        return UsageError(f"{spec}: registry targets take images", hint="Use mlship push --image --to registry://…")

    def _refuse(self) -> NoReturn:
        raise self.refusal(self.url)

    def upload(self, key: str, path: Path, progress: Progress) -> str:
        self._refuse()

    def download(self, key: str, dest: Path, progress: Progress) -> None:
        self._refuse()

    def read(self, key: str) -> bytes | None:
        self._refuse()

    def write(self, key: str, data: bytes) -> None:
        self._refuse()

    def update(self, key: str, change: Change) -> bytes | None:
        self._refuse()
