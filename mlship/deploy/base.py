"""The deploy runtime interface: runs a version's image in one of a rollout's slots.

Runtimes are plugins in the entry-point group `mlship.runtimes.v1` (see
mlship/plugins.py); mlship's own (`docker`) are declared in pyproject.toml like
a third party's. A runtime places one version per slot and keeps the version it
replaced (stopped) so that `rollout undo` can bring it back until `mlship deploy
gc` removes it.
"""

from __future__ import annotations

import abc
from typing import ClassVar

from pydantic import BaseModel, Field

from mlship.errors import ServiceError
from mlship.plugins import PluginSettings


class Placement(BaseModel):
    """One version placed by a runtime: what runs (or ran) where."""

    slot: str
    version: str
    image: str = Field(description="The image it runs (a registry reference or an image id).")
    state: str = Field(description="The runtime's word for it: running, exited, restarting, InService, ...")
    current: bool = Field(description="The slot's own placement; False for one kept after a replacement.")
    id: str = Field(description="The runtime's handle: a container name, a SageMaker model name.")
    created: str = ""
    address: str | None = None
    digest: str | None = Field(None, description="The image's digest: the registry manifest's when it was pulled by "
                               "digest, else the runtime's image id.")


class DeployError(ServiceError):
    """A version did not serve in its slot (exit 7); `logs` holds its last log lines."""

    def __init__(self, message: str, *, hint: str | None = None, logs: list[str] | None = None) -> None:
        super().__init__(message, hint=hint)
        self.logs = list(logs or [])


class Runtime(abc.ABC):
    """Place, list, stop, bring back and remove the versions running in a model's slots.

    A plugin subclasses this and `Runtime.Settings` (its keys under `deploy.<name>` in
    mlship.yaml) and is constructed with `name=` (the model), `slots=` (slot -> the address
    the router sends that slot's traffic to, None when it has none), `router=` (the
    `rollout.router` settings, None without one) and those settings as keyword arguments.
    """

    #: the `deploy.runtime:` name it is registered under
    name: ClassVar[str]

    class Settings(PluginSettings):
        pass

    @abc.abstractmethod
    def where(self) -> str:
        """Where it places versions (an engine's address, a SageMaker endpoint), for messages and records."""

    @abc.abstractmethod
    def deploy(self, slot: str, version: str, images: list[str]) -> Placement:
        """Run `version` in `slot` from the first of `images` the runtime can get, replacing what ran there.

        Returns once the slot serves `version`. Otherwise raises DeployError (exit 7) with
        the slot as it was before (its previous version serving again).
        """

    @abc.abstractmethod
    def placements(self) -> list[Placement]:
        """Every placement of the model: the slots' own and the kept ones, newest first."""

    @abc.abstractmethod
    def stop(self, slot: str) -> Placement | None:
        """Stop what runs in `slot`, keeping it; None when the slot is empty."""

    @abc.abstractmethod
    def restore(self, slot: str, version: str) -> Placement:
        """Bring the kept `version` back into `slot` (for undo); UsageError when none is kept."""

    @abc.abstractmethod
    def remove(self, placement: Placement) -> None:
        """Delete a kept placement for good."""

    def prune(self, removed: list[Placement]) -> list[str]:
        """Delete what the `removed` placements left behind that nothing else uses (their images);
        what was deleted. Nothing by default."""
        return []
