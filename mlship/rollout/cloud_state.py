"""Rollout states in gs:// and az:// prefixes (any target with conditional writes).

The same semantics as the S3 store: `PREFIX/NAME.json` is written only at the
version (GCS generation, Azure ETag) it was read at, and a verb holds the lock
object `PREFIX/NAME.lock`, created only if absent, carrying its owner and a
lease; a lock whose lease ran out (its holder died) is removed, and a verb
removes only its own lock (at the version it created).
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator
from typing import Any

from mlship.errors import RolloutPausedError, ServiceError
from mlship.rollout.state import (LOCK_LEASE_S, LOCK_WAIT_S, OnWait, RolloutState, StateStore, _waiting,
                                  current_user)
from mlship.targets.conditional import ConditionalTarget, Conflict


class ConditionalStateStore(StateStore):
    """States under a target prefix, changed with conditional writes; locks as lease objects."""

    def __init__(self, target: ConditionalTarget) -> None:
        self.target, self.location = target, target.describe()
        self._versions: dict[str, str | None] = {}

    def _where(self, key: str) -> str:
        return f"{self.location.rstrip('/')}/{key}"

    def load(self, name: str) -> RolloutState | None:
        data, self._versions[name] = self.target.get_versioned(f"{name}.json")
        return None if data is None else RolloutState.from_json(data, self._where(f"{name}.json"))

    def save(self, state: RolloutState) -> None:
        key = f"{state.name}.json"
        try:
            self._versions[state.name] = self.target.put_if(key, state.to_json(), self._versions.get(state.name))
        except Conflict:
            raise ServiceError(f"{self.location}: rollout state {key} changed under this verb",
                               hint="Run the verb again") from None

    @contextlib.contextmanager
    def locked(self, name: str, on_wait: OnWait = None) -> Iterator[None]:
        key = f"{name}.lock"
        token = f"{current_user()} pid {os.getpid()} {time.time()}"
        deadline = time.monotonic() + LOCK_WAIT_S
        told = False
        while (version := self._take(key, token)) is None:
            if not told:
                _waiting(on_wait, name, self._where(key))
                told = True
            self._break_expired(key)
            if time.monotonic() > deadline:
                raise RolloutPausedError(f"rollout {name} is locked by another mlship ({self._where(key)})",
                                         hint="Wait for it to finish, then run the verb again")
            time.sleep(0.2)
        try:
            yield
        finally:
            with contextlib.suppress(Exception):  # only our own lock, never one that replaced it
                self.target.delete_if(key, version)

    def _take(self, key: str, token: str) -> str | None:
        """The lock's version when this verb created it; None when someone else holds it."""
        body = json.dumps({"owner": token, "expires": time.time() + LOCK_LEASE_S}).encode()
        try:
            return self.target.put_if(key, body, None)
        except Conflict:
            return None

    def _break_expired(self, key: str) -> None:
        """A lock whose holder died (its lease ran out) is removed."""
        with contextlib.suppress(Exception):
            data, version = self.target.get_versioned(key)
            if data is not None and version and json.loads(data).get("expires", 0) < time.time():
                self.target.delete_if(key, version)


def open_conditional_store(spec: str, settings: dict[str, Any] | None) -> StateStore | None:
    """A store for `spec` when an installed target kind with conditional writes takes it (gs://, az://);
    None for other specs."""
    from mlship.targets.base import _scheme, _url_settings

    if "://" not in spec:
        return None
    from mlship.plugins import installed, load

    kind = _scheme(spec)
    if kind not in installed("targets"):
        return None
    plugin = load("targets", kind, spec)
    if not issubclass(plugin, ConditionalTarget):
        return None
    refused = plugin.refusal(spec)
    if refused is not None:
        raise refused
    checked = _url_settings(plugin, spec).model_dump(exclude_none=True)  # a bad URL: one line, exit 2
    return ConditionalStateStore(plugin(**{**checked, **{k: v for k, v in (settings or {}).items() if v is not None}}))
