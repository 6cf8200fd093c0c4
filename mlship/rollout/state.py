"""Rollout state: one JSON document per rollout, with an append-only audit log.

Stored in a local file (`.mlship/rollouts/NAME.json`, locked with flock) or in
an S3, GCS or Azure prefix for CI jobs on several machines (cloud_state.py: a
lock object created only if absent, state written at the version it was read at).
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from enum import Enum
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, field_serializer, model_validator

from mlship.actor import current_user  # noqa: F401 - rollout modules import it from here
from mlship.errors import InvalidInputError, RolloutPausedError, UsageError
from mlship.rollout.reports import GateResult

SCHEMA = "mlship.rollout/v1"
Phase = Literal["Progressing", "Paused", "Healthy", "Degraded"]
Strategy = Literal["bluegreen", "canary", "shadow"]
LOCK_WAIT_S = 900.0  # a SageMaker update inside another verb can take minutes
LOCK_LEASE_S = 4 * 3600.0  # longer than any verb (SageMaker waits up to 30 min, twice)


class PauseReason(str, Enum):
    """Why a rollout waits (argo-rollouts' `PauseReason`). The first two are stored
    in a paused state; `PAUSE_DURATION` only explains a `step` that came too early."""

    GATE_INCONCLUSIVE = "GateInconclusive"  # too little data: the next `step` judges again
    USER_PAUSED = "UserPaused"  # `rollout pause`: only `resume` lets it step again
    PAUSE_DURATION = "PauseDuration"  # the step's least time (`--pause`) has not passed yet


class Side(BaseModel):
    """One version of the model and the router slot (upstream, production variant) serving it."""

    version: str
    slot: str


class Route(BaseModel):
    """What a router does with traffic: the candidate's share and whether it sees mirrored requests."""

    stable: str = Field(description="Slot that serves users by default.")
    candidate: str | None = Field(None, description="Slot of the candidate, when there is one.")
    weight: float = Field(0, ge=0, le=100, description="Candidate share of user traffic, percent.")
    mirror: bool = Field(False, description="Copy every request to the candidate; its answers are dropped.")

    def shares(self) -> dict[str, float]:
        """Slot -> percent of user traffic (slots with none left out)."""
        if self.candidate is None or self.weight <= 0:
            return {self.stable: 100.0}
        if self.weight >= 100:
            return {self.candidate: 100.0}
        return {self.stable: round(100.0 - self.weight, 2), self.candidate: round(float(self.weight), 2)}

    def same_as(self, other: "Route | None") -> bool:
        """The same traffic: shares and mirroring (roles of an idle slot do not matter)."""
        if other is None or self.mirror != other.mirror:
            return False
        return self.shares() == other.shares() and (not self.mirror or self.candidate == other.candidate)

    def describe(self) -> str:
        if self.candidate is None or (self.weight == 0 and not self.mirror):
            return f"100% {self.stable}"
        if self.weight >= 100:
            return f"100% {self.candidate}" + (" (mirror on)" if self.mirror else "")
        text = f"{100 - self.weight:g}% {self.stable} / {self.weight:g}% {self.candidate}"
        return text + (f", mirrored to {self.candidate}" if self.mirror else "")


class AuditEntry(BaseModel):
    time: str
    user: str
    verb: str
    before: dict[str, Any]
    after: dict[str, Any]
    message: str | None = None


class Pending(BaseModel):
    """A verb recorded before it changed the router: the state it leads to.

    A crash between the router change and the record leaves it in place; the next
    verb completes it (or, for abort and undo, drops it)."""

    verb: str
    state: "RolloutState" = Field(description="The state after the verb, without history or pending.")

    @field_serializer("state")
    def _state(self, state: "RolloutState") -> dict[str, Any]:
        return state.model_dump(mode="json", by_alias=True, exclude={"history", "pending"})


class RolloutState(BaseModel):
    schema_: str = Field(SCHEMA, alias="schema")
    name: str
    strategy: Strategy
    stable: Side
    candidate: Side | None = None
    previous_stable: Side | None = None
    steps: list[float] = Field(default_factory=list)
    step: int = Field(-1, description="Index into steps; -1 before the first weight (shadow, blue-green preview).")
    route: Route
    phase: Phase = "Progressing"
    aborted: bool = False
    message: str | None = None
    pause_reason: PauseReason | None = Field(None, description="Why a Paused rollout waits; None otherwise.")
    pause_s: float = 0.0
    step_started: str = ""
    created: str = ""
    updated: str = ""
    revision: int = 0
    gates: list[GateResult] = Field(default_factory=list)
    pending: Pending | None = Field(None, description="A verb between router change and record.")
    history: list[AuditEntry] = Field(default_factory=list)

    model_config = {"populate_by_name": True}

    @model_validator(mode="before")
    @classmethod
    def _legacy_pause_reason(cls, doc: Any) -> Any:
        """States written before `pause_reason` existed said why only in `message`:
        read it once here, so a rollout paused by an older mlship steps as it did."""
        if isinstance(doc, dict) and doc.get("phase") == "Paused" and "pause_reason" not in doc:
            gate = str(doc.get("message") or "").startswith("gate")
            doc = {**doc, "pause_reason": PauseReason.GATE_INCONCLUSIVE if gate else PauseReason.USER_PAUSED}
        return doc

    def pause(self, reason: PauseReason, message: str) -> None:
        """Hold the rollout where it is, saying why."""
        self.phase, self.pause_reason, self.message = "Paused", reason, message

    def progress(self) -> None:
        """Let the rollout move on (clears any pause)."""
        self.phase, self.pause_reason, self.message = "Progressing", None, None

    def settle(self, phase: Literal["Healthy", "Degraded"], message: str | None) -> None:
        """End the rollout: Healthy (promoted) or Degraded (aborted, rolled back)."""
        self.phase, self.pause_reason, self.message = phase, None, message
        self.aborted = phase == "Degraded"

    def summary(self) -> dict[str, Any]:
        """The fields an audit entry records before and after a verb."""
        return {"phase": self.phase, "aborted": self.aborted, "step": self.step, "route": self.route.model_dump(),
                "stable": self.stable.version, "candidate": self.candidate.version if self.candidate else None}

    def to_json(self) -> bytes:
        """The document as stored (schema first, `pending` and `history` included)."""
        return json.dumps(self.model_dump(mode="json", by_alias=True), indent=2).encode() + b"\n"

    @classmethod
    def from_json(cls, data: bytes, where: str) -> "RolloutState":
        try:
            doc = json.loads(data)
            if doc.get("schema") != SCHEMA:
                raise ValueError(f"schema is {doc.get('schema')!r}, expected {SCHEMA}")
            return cls.model_validate(doc)
        except (ValueError, TypeError) as exc:
            raise InvalidInputError(f"{where}: not a rollout state: {str(exc).splitlines()[0]}") from None


Pending.model_rebuild()  # its state is a RolloutState, defined after it


def now_iso() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def parse_iso(text: str) -> float:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc).timestamp()



OnWait = Callable[[str], None] | None


def _waiting(on_wait: OnWait, name: str, where: str) -> None:
    """Tell the caller (once) that it waits for another verb's lock, and for how long at most."""
    if on_wait is not None:
        on_wait(f"rollout {name} is locked by another mlship ({where}); waiting up to {LOCK_WAIT_S:.0f} s")


class StateStore:
    """Where rollout states live. `locked(name)` serialises verbs on one rollout;
    `on_wait` is called once, with a sentence, when the lock is held by someone else."""

    location: str

    def load(self, name: str) -> RolloutState | None:
        raise NotImplementedError

    def save(self, state: RolloutState) -> None:
        raise NotImplementedError

    def locked(self, name: str, on_wait: OnWait = None) -> contextlib.AbstractContextManager[None]:
        raise NotImplementedError


class FileStateStore(StateStore):
    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.location = str(self.directory)

    def _path(self, name: str) -> Path:
        return self.directory / f"{name}.json"

    def load(self, name: str) -> RolloutState | None:
        path = self._path(name)
        if not path.is_file():
            return None
        return RolloutState.from_json(path.read_bytes(), str(path))

    def save(self, state: RolloutState) -> None:
        from mlship.fsutil import atomic_write

        atomic_write(self._path(state.name), state.to_json())

    @contextlib.contextmanager
    def locked(self, name: str, on_wait: OnWait = None) -> Iterator[None]:
        import fcntl

        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"{name}.lock"
        with open(path, "a+") as fh:
            deadline = time.monotonic() + LOCK_WAIT_S
            told = False
            while True:
                try:
                    fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if not told:
                        _waiting(on_wait, name, str(path))
                        told = True
                    if time.monotonic() > deadline:
                        raise RolloutPausedError(f"rollout {name} is locked by another mlship ({path})",
                                                 hint="Wait for it to finish, then run the verb again") from None
                    time.sleep(0.05)
            try:
                yield
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def open_store(spec: str | None, base: Path, settings: dict[str, Any] | None = None) -> StateStore:
    """`s3://`, `gs://`, `az://bucket/prefix` (with that target's settings) or a directory
    [.mlship/rollouts beside mlship.yaml]."""
    from mlship.rollout.cloud_state import open_conditional_store  # object stores with conditional writes

    cloud = open_conditional_store(spec, settings) if spec else None
    if cloud is not None:
        return cloud
    if spec and "://" in spec and not spec.startswith("file://"):
        raise UsageError(f"rollout state {spec}: use a directory, s3://, gs:// or az://bucket/prefix")
    path = Path(spec.removeprefix("file://")) if spec else Path(".mlship/rollouts")
    return FileStateStore(path if path.is_absolute() else base / path)
