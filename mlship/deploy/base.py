"""The deploy runtime interface: runs an image in one of a rollout's slots.

Runtimes are plugins in the entry-point group `mlship.runtimes.v1` (see
mlship/plugins.py). None ships yet; the interface is fixed here so that a
runtime (docker on a host, SageMaker) can be written against it.
"""

from __future__ import annotations

import abc
from typing import ClassVar

from mlship.plugins import PluginSettings


class Runtime(abc.ABC):
    """Start, replace and stop the version running in a slot.

    A plugin subclasses this and `Runtime.Settings` (its keys in mlship.yaml) and is
    constructed with `name=` (the model) and those settings as keyword arguments.
    """

    #: the `runtime:` name it is registered under
    name: ClassVar[str]

    class Settings(PluginSettings):
        pass

    @abc.abstractmethod
    def run(self, slot: str, image: str) -> str:
        """Run `image` (a registry reference) in `slot`, replacing what ran there; the address it serves on.

        Returns once the new version answers its health check; ServiceError (exit 7) otherwise,
        with the slot's previous version left running.
        """

    @abc.abstractmethod
    def running(self, slot: str) -> str | None:
        """The image running in `slot`, or None when the slot is empty."""

    @abc.abstractmethod
    def stop(self, slot: str) -> None:
        """Stop what runs in `slot` (nothing when it is empty)."""
