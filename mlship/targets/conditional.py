"""Targets on object stores with conditional writes (GCS generations, Azure ETags).

Such a store tags every object with a version (a GCS generation, an Azure
ETag) and refuses a write whose expected version is not the current one. On
those three primitives (`get_versioned`, `put_if`, `delete_if`) this module
builds `Target.update`, a read-modify-write that loses no concurrent update,
and the rollout state store builds its locks (mlship/rollout/cloud_state.py).
"""

from __future__ import annotations

import abc
import random
import time
from typing import Callable, Iterable, Optional

from mlship.errors import ServiceError
from mlship.targets.base import Change, Target
from mlship.urls import redact

UPDATE_PATIENCE_S = 60.0


class Conflict(Exception):
    """Another writer changed (or created, or removed) the object since its version was read."""


class ConditionalTarget(Target):
    """A target whose objects carry versions and whose writes can be made conditional on them."""

    @abc.abstractmethod
    def get_versioned(self, key: str) -> tuple[Optional[bytes], Optional[str]]:
        """The bytes under `key` and their version, or (None, None) when there is no such object."""

    @abc.abstractmethod
    def put_if(self, key: str, data: bytes, version: Optional[str]) -> str:
        """Write `key` only if it is still at `version` (None: only if it does not exist); the new
        version. Raises `Conflict` when someone else got there first."""

    @abc.abstractmethod
    def delete_if(self, key: str, version: str) -> None:
        """Remove `key` only if it is still at `version` (`Conflict` otherwise; gone already is fine)."""

    def read(self, key: str) -> bytes | None:
        return self.get_versioned(key)[0]

    def update(self, key: str, change: Change) -> bytes | None:
        """Read, change and write `key` only if nobody wrote it in between; otherwise again,
        with a jittered backoff (racing writers do not retry in step), for UPDATE_PATIENCE_S."""
        deadline = time.monotonic() + UPDATE_PATIENCE_S
        delay, attempts = 0.05, 0
        while True:
            old, version = self.get_versioned(key)
            new = change(old)
            if new is None:
                return old
            attempts += 1
            try:
                self.put_if(key, new, version)
                return new
            except Conflict:
                pass
            if time.monotonic() > deadline:
                raise ServiceError(f"{self.describe()}: {key} kept changing under this update ({attempts} attempts)",
                                   hint="Run the command again")
            time.sleep(random.uniform(delay / 2, delay))
            delay = min(delay * 2, 2.0)


def split_url(url: str, scheme: str) -> tuple[str, str]:
    """(bucket or container, prefix) of `scheme://BUCKET/PREFIX`."""
    rest = url[len(scheme) + 3:]
    bucket, _, prefix = rest.partition("/")
    return bucket, prefix.strip("/")


def first_line(exc: BaseException) -> str:
    """The first line of an SDK exception's message, secrets removed, at most 300 characters."""
    lines = str(exc).strip().splitlines()
    return redact(lines[0])[:300] if lines else type(exc).__name__


def listing(target: Target, store_prefix: str, prefix: str, names: Callable[[str], Iterable[str]]) -> list[str]:
    """`Target.list_keys` on a store under `store_prefix`: `names(FOLDER)` lists the stored names under
    the store's folder; they come back as keys, sorted."""
    folder = target.check_key(prefix.rstrip("/"))
    base = f"{store_prefix}/{folder}/" if store_prefix else f"{folder}/"
    skip = len(store_prefix) + 1 if store_prefix else 0
    try:
        return sorted(name[skip:] for name in names(base))
    except Exception as exc:
        raise ServiceError(f"{target.describe()}: cannot list {prefix}: {first_line(exc)}") from None
