"""How a rollout verb runs: lock, load, repair, decide, record.

A verb decides one `Transition` from the state it finds under the lock.
Changing traffic is two-phase: the new state is saved as `pending` first, then
the router is changed, then the new state is recorded. Running a verb after a
crash completes the pending change instead of acting twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from mlship.errors import ExitCode, RouterRefusedError, UsageError
from mlship.rollout.reports import GateReport
from mlship.rollout.routers import Router
from mlship.rollout.state import (AuditEntry, PauseReason, Pending, Route, RolloutState, StateStore, current_user,
                                  now_iso)

ADVANCES = ("step", "promote")  # verbs that move a rollout one step on


@dataclass(frozen=True)
class View:
    """What a caller saw of a rollout before it waited for the lock.

    `step` and `promote` compare it with the state they find under the lock:
    if another call advanced the rollout since, they take no second step."""

    revision: int
    entries: int  # audit entries then; the ones after them are what happened since

    @classmethod
    def of(cls, state: RolloutState | None) -> "View":
        return cls(0, 0) if state is None else cls(state.revision, len(state.history))


@dataclass
class Rollout:
    """Everything a verb needs: where the state lives, the router, the settings."""

    name: str
    store: StateStore
    router_factory: Callable[[], Router]
    analysis: Any  # AnalysisConfig
    logs: list[str] = field(default_factory=list)
    default_steps: list[float] = field(default_factory=lambda: [5, 25, 50, 100])
    default_pause_s: float = 0.0
    default_strategy: str = "canary"
    #: the caller's view, taken by `take_view` when the command starts (else just before locking)
    view: View | None = None
    #: told (once) when a verb has to wait for another one's lock
    notify: Callable[[str], None] | None = None
    #: places and checks the candidate, brings a previous version back (mlship.deploy.slots.RolloutSlots)
    slots: Any = None
    _router: Router | None = None

    @property
    def router(self) -> Router:
        if self._router is None:
            self._router = self.router_factory()
        return self._router


@dataclass(frozen=True)
class Transition:
    """What a verb decided from the state it found.

    `new` is the state to record (None: nothing changes); `code` the exit code
    when it is not the one the resulting state implies; `reason` why the verb
    waits when it returns without a paused state (a pause not yet over);
    `gate` the analysis it judged by, shown with the outcome."""

    new: RolloutState | None
    message: str
    code: int | None = None
    reason: PauseReason | None = None
    gate: GateReport | None = None

    @classmethod
    def to(cls, new: RolloutState, message: str) -> "Transition":
        """Record `new` (through the router when its route differs)."""
        return cls(new, message)

    @classmethod
    def stay(cls, message: str, code: int | None = None, reason: PauseReason | None = None) -> "Transition":
        """Change nothing; exit with `code` [the state's own]."""
        return cls(None, message, code, reason)


@dataclass
class Outcome:
    """A verb's result: the state after it, a sentence, the exit code, and what it saw."""

    state: RolloutState | None
    message: str
    code: int = ExitCode.OK
    gate: GateReport | None = None
    live: Route | None = None
    changed: bool = False
    pause_reason: PauseReason | None = None

    def to_json(self) -> dict[str, Any]:
        """The `--json` document; `pause_reason` only when the outcome is a wait (exit 5)."""
        doc: dict[str, Any] = {"message": self.message, "exit_code": int(self.code), "changed": self.changed}
        if self.code == ExitCode.ROLLOUT_PAUSED and self.pause_reason is not None:
            doc["pause_reason"] = self.pause_reason.value
        if self.state is not None:
            doc["rollout"] = self.state.model_dump(mode="json", by_alias=True, exclude={"history", "pending"})
        if self.gate is not None:
            doc["gate"] = self.gate.model_dump(mode="json")
        if self.live is not None:
            doc["live"] = self.live.model_dump()
        return doc


def outcome_of(state: RolloutState, message: str, *, code: int | None = None, reason: PauseReason | None = None,
               changed: bool = False, gate: GateReport | None = None, live: Route | None = None) -> Outcome:
    """An outcome whose exit code and pause reason default to the state's."""
    return Outcome(state, message, state_code(state) if code is None else code, gate=gate, live=live,
                   changed=changed, pause_reason=reason or state.pause_reason)


def state_code(state: RolloutState) -> int:
    """The exit code a rollout in this state means: 6 aborted, 5 paused, else 0."""
    if state.aborted:
        return ExitCode.ROLLOUT_ABORTED
    if state.phase == "Paused":
        return ExitCode.ROLLOUT_PAUSED
    return ExitCode.OK


def take_view(r: Rollout) -> View:
    """Record what the rollout looks like now, before any waiting: a `step` or
    `promote` started from this view takes no step if another call took one since."""
    r.view = View.of(r.store.load(r.name))
    return r.view


def transact(r: Rollout, verb: str, act: Callable[..., Transition], *, creating: bool = False,
             dry_run: bool = False, advance: bool = False, expect_step: int | None = None) -> Outcome:
    """Run `act` on the state under the rollout's lock and record the transition it returns."""
    view = r.view if r.view is not None else View.of(r.store.load(r.name))
    with r.store.locked(r.name, on_wait=r.notify):
        state = r.store.load(r.name)
        if state is None and not creating:
            raise UsageError(f"no rollout named {r.name} in {r.store.location}",
                             hint=f"Start one: mlship rollout start {r.name} --candidate VERSION")
        _expect(r, state, expect_step)
        taken = _advanced_since(view, state) if advance else None
        if taken is not None:
            # Another call moved the rollout on after this one looked at it: one step, not two.
            return outcome_of(state, f"{verb} already taken by a concurrent call ({taken.verb} by {taken.user}): "
                                     f"{state.route.describe()}")
        if state is not None and not dry_run:
            state, repaired = _repair(r, state, verb)
            if repaired:
                return outcome_of(state, f"completed the interrupted {verb}: {state.route.describe()}", changed=True)
            _expect(r, state, expect_step)  # a repair that completed another verb may have moved it
        t = act(state)
        if t.new is None:  # `start` alone acts on no state, and it always records one
            return outcome_of(state, t.message, code=t.code, reason=t.reason, gate=t.gate)
        _record(r, verb, state, t.new)
        return outcome_of(t.new, t.message, code=t.code, reason=t.reason, gate=t.gate, changed=True)


def _expect(r: Rollout, state: RolloutState | None, expect_step: int | None) -> None:
    """Refuse, before any change, a verb meant for another step index (`--expect-step`)."""
    if expect_step is None or state is None or state.step == expect_step:
        return
    raise UsageError(f"rollout {r.name} is at step index {state.step} ({state.route.describe()}), "
                     f"not {expect_step} (--expect-step {expect_step}): another call moved it; nothing changed",
                     hint=f"See `mlship rollout status {r.name}`")


def _advanced_since(view: View, state: RolloutState | None) -> AuditEntry | None:
    """The first step or promote recorded after `view` was taken, if any."""
    if state is None or state.revision == view.revision:
        return None
    for entry in state.history[view.entries:]:
        if entry.verb.split(" ", 1)[0] in ADVANCES:
            return entry
    return None


def _repair(r: Rollout, state: RolloutState, verb: str) -> tuple[RolloutState, bool]:
    """Finish a verb a crash interrupted; put the router back in line with the state.

    `abort` and `undo` never finish an interrupted change (it could send more
    traffic to a failing candidate): they drop it and act at once."""
    if verb in ("abort", "undo"):
        if state.pending:
            dropped = state.model_copy(deep=True)
            dropped.pending = None
            _append(dropped, "discard", state, message=f"dropped the interrupted {state.pending.verb} for {verb}")
            r.store.save(dropped)
            state = dropped
        if not state.aborted:
            return state, False  # the verb itself sends all traffic to stable
        # already aborted: below, the router is held to the stable-only route
    elif state.pending:
        interrupted = state.pending.verb
        return _complete_pending(r, state, state.pending), interrupted == verb
    live = r.router.live()
    if not state.route.same_as(live):
        r.router.apply(state.route)
        repaired = state.model_copy(deep=True)
        _append(repaired, "repair", state,
                message=f"router showed {live.describe() if live else 'nothing'}; set back to {state.route.describe()}")
        r.store.save(repaired)
        return repaired, False
    return state, False


def _complete_pending(r: Rollout, state: RolloutState, pending: Pending) -> RolloutState:
    """Apply the interrupted verb's route again and record its state."""
    done = pending.state.model_copy(deep=True)
    r.router.apply(done.route)
    done.pending = None
    done.step_started = now_iso()
    _append(done, f"{pending.verb} (completed after an interruption)", state)
    r.store.save(done)
    return done


def _record(r: Rollout, verb: str, before: RolloutState | None, new: RolloutState) -> None:
    if not new.step_started:
        new.step_started = now_iso()
    if before is None or new.route != before.route:
        if before is not None:
            marker = before.model_copy(deep=True)
            marker.pending = Pending(verb=verb, state=new.model_copy(deep=True, update={"history": [], "pending": None}))
            r.store.save(marker)
        try:
            r.router.apply(new.route)
        except (RouterRefusedError, UsageError):
            if before is not None:
                before.pending = None
                r.store.save(before)  # nothing changed: the router kept its old config
            raise
        # Any other failure (a reload not verified, an endpoint not InService) may have changed the
        # router: `pending` stays, and the next verb completes the change.
        new.step_started = now_iso()  # the step's window opens when its traffic is live
    new.pending = None
    _append(new, verb, before)
    r.store.save(new)


def _append(new: RolloutState, verb: str, before: RolloutState | None, message: str | None = None) -> None:
    new.revision = (before.revision if before else 0) + 1
    new.updated = now_iso()
    new.history = list(before.history if before else []) + [AuditEntry(
        time=new.updated, user=current_user(), verb=verb, before=before.summary() if before else {},
        after=new.summary(), message=message or new.message)]
