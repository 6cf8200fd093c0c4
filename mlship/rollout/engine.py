"""Rollout verbs. Each one locks the rollout, loads its state, compares it with
the router's live state (repairing a verb a crash interrupted), acts, and
records the transition in the audit log.

Changing traffic is two-phase: the new state is saved as `pending` first, then
the router is changed, then the new state is recorded. Running a verb after a
crash completes the pending change instead of acting twice.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

from mlship.errors import ExitCode, RouterRefusedError, UsageError
from mlship.names import check_name
from mlship.rollout.gates import GateReport, evaluate, read_window
from mlship.rollout.routers import Router
from mlship.rollout.state import (AuditEntry, Route, RolloutState, Side, StateStore, current_user, now_iso,
                                  parse_iso)

MAX_GATES = 50
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
    _router: Router | None = None

    @property
    def router(self) -> Router:
        if self._router is None:
            self._router = self.router_factory()
        return self._router


@dataclass
class Outcome:
    state: RolloutState | None
    message: str
    code: int = ExitCode.OK
    gate: GateReport | None = None
    live: Route | None = None
    changed: bool = False

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"message": self.message, "exit_code": int(self.code), "changed": self.changed}
        if self.state is not None:
            doc["rollout"] = self.state.model_dump(mode="json", by_alias=True, exclude={"history", "pending"})
        if self.gate is not None:
            doc["gate"] = self.gate.model_dump(mode="json")
        if self.live is not None:
            doc["live"] = self.live.model_dump()
        return doc


def take_view(r: Rollout) -> View:
    """Record what the rollout looks like now, before any waiting: a `step` or
    `promote` started from this view takes no step if another call took one since."""
    r.view = View.of(r.store.load(r.name))
    return r.view


def state_code(state: RolloutState) -> int:
    if state.aborted:
        return ExitCode.ROLLOUT_ABORTED
    if state.phase == "Paused":
        return ExitCode.ROLLOUT_PAUSED
    return ExitCode.OK


# -- the verbs --------------------------------------------------------------------


def start(r: Rollout, *, strategy: str, candidate: str, stable: str | None = None, steps: list[float] | None = None,
          pause_s: float | None = None, candidate_slot: str | None = None) -> Outcome:
    # Versions end up in the state, the audit log, messages and logs' filters: one rule, checked
    # before anything is locked, written or routed.
    check_name(candidate, "candidate version")
    if stable is not None:
        check_name(stable, "stable version")

    def act(state: RolloutState | None) -> tuple[RolloutState | None, str, int | None]:
        if state is not None and in_progress(state):
            if state.candidate and state.candidate.version == candidate and state.strategy == strategy:
                return None, f"{strategy} of {candidate} already started", None
            raise UsageError(f"rollout {r.name} is already rolling out {state.candidate.version} ({state.strategy})",
                             hint="Promote, abort or undo it first")
        router = r.router
        if strategy not in router.supports:
            raise UsageError(f"the {router.name} router cannot do {strategy} rollouts")
        slots = router.slots()
        live = router.live()
        if state is not None and not stable:
            stable_side = state.stable
        else:
            if not stable:
                raise UsageError(f"no stable version known for {r.name}", hint="Pass --stable VERSION (what serves now)")
            busy = max(live.shares(), key=live.shares().get) if live else slots[0]
            stable_side = Side(version=stable, slot=busy)
        if candidate == stable_side.version:
            if state is not None and not stable:
                return None, f"complete: {candidate} is the stable version already", None
            raise UsageError(f"candidate {candidate} is the stable version already")
        others = [s for s in slots if s != stable_side.slot]
        slot = candidate_slot or (others[0] if others else None)
        if slot is None or slot == stable_side.slot or slot not in slots:
            raise UsageError(f"no free slot for the candidate (slots: {', '.join(slots)}; stable on {stable_side.slot})")
        plan = [float(s) for s in (steps or r.default_steps)]
        new = RolloutState(
            name=r.name, strategy=strategy, stable=stable_side, candidate=Side(version=candidate, slot=slot),
            # the candidate takes the free slot: a previous stable version there is gone for undo
            previous_stable=state.previous_stable if state and state.previous_stable
            and state.previous_stable.slot != slot else None,
            steps=[100.0] if strategy == "bluegreen" else plan, pause_s=r.default_pause_s if pause_s is None else pause_s,
            route=Route(stable=stable_side.slot, candidate=slot), created=now_iso(),
            history=state.history if state else [], gates=[], revision=state.revision if state else 0)
        if strategy == "canary":
            new.step, new.route.weight = 0, new.steps[0]
            text = f"canary of {candidate} started: {new.route.describe()}"
        elif strategy == "bluegreen":
            text = f"blue-green of {candidate} started: {slot} is the preview, users stay on {stable_side.slot}"
        else:
            new.route.mirror = True
            text = f"shadow of {candidate} started: {slot} gets a copy of every request"
        return new, text, None

    return _transact(r, "start", act, creating=True)


def step(r: Rollout, *, dry_run: bool = False, expect_step: int | None = None) -> Outcome:
    """Gate the current step; advance, abort or pause. With `expect_step`, refuse
    (UsageError, nothing changed) unless the rollout is at that step index."""
    gate_holder: dict[str, GateReport] = {}

    def act(state: RolloutState) -> tuple[RolloutState | None, str, int | None]:
        done = _finished(state)
        if done:
            return done
        if state.phase == "Paused" and state.message and not state.message.startswith("gate"):
            return None, f"paused: {state.message}; run `mlship rollout resume {r.name}`", ExitCode.ROLLOUT_PAUSED
        waited = time.time() - parse_iso(state.step_started)
        if state.pause_s and waited < state.pause_s and not dry_run:
            return None, (f"waiting: {state.pause_s - waited:.0f} s of the {state.pause_s:.0f} s pause left "
                          f"at {state.route.describe()}"), ExitCode.ROLLOUT_PAUSED
        gate = gate_holder["gate"] = _gate(r, state)
        if dry_run:
            code = {"pass": ExitCode.OK, "fail": ExitCode.CHECK_FAILED, "inconclusive": ExitCode.ROLLOUT_PAUSED}
            return None, f"dry run: the gate would {gate.result}" + _why(gate), code[gate.result]
        new = state.model_copy(deep=True)
        new.gates = (new.gates + [gate.model_dump(mode="json") | {"step": state.step}])[-MAX_GATES:]
        if gate.result == "fail":
            _abort_into(new, f"gate failed: {gate.reasons('fail')}")
            return new, f"gate failed ({gate.reasons('fail')}); traffic back on {state.stable.version}", None
        if gate.result == "inconclusive":
            new.phase, new.message = "Paused", f"gate inconclusive: {gate.reasons('inconclusive')}"
            return new, f"gate inconclusive ({gate.reasons('inconclusive')}); still at {state.route.describe()}", None
        new.phase, new.message = "Progressing", None
        if state.strategy == "shadow":
            return new, ("shadow gate passed" + _agreement(gate) +
                         f"; `mlship rollout promote {r.name}` starts a canary, `--full` switches all traffic"), None
        return _advance(new)

    outcome = _transact(r, "step", act, dry_run=dry_run, advance=not dry_run, expect_step=expect_step)
    outcome.gate = gate_holder.get("gate")
    return outcome


def promote(r: Rollout, *, full: bool = False) -> Outcome:
    def act(state: RolloutState) -> tuple[RolloutState | None, str, int | None]:
        done = _finished(state)
        if done:
            return done
        new = state.model_copy(deep=True)
        new.phase, new.message = "Progressing", None
        if full:
            return _complete(new)
        if state.strategy == "shadow":
            new.strategy, new.step = "canary", 0
            if not new.steps or new.steps == [100.0]:
                new.steps = [float(s) for s in r.default_steps]
            new.route = Route(stable=state.stable.slot, candidate=state.candidate.slot, weight=new.steps[0])
            new.step_started = now_iso()
            return new, f"shadow promoted to canary: {new.route.describe()}", None
        return _advance(new)

    return _transact(r, "promote", act, advance=not full)  # --full is a destination, not one step more


def pause(r: Rollout) -> Outcome:
    def act(state: RolloutState) -> tuple[RolloutState | None, str, int | None]:
        done = _finished(state)
        if done:
            return done
        if state.phase == "Paused" and state.message == f"paused by {current_user()}":
            return None, "already paused", None
        new = state.model_copy(deep=True)
        new.phase, new.message = "Paused", f"paused by {current_user()}"
        return new, f"paused at {state.route.describe()}", None

    return _transact(r, "pause", act)


def resume(r: Rollout) -> Outcome:
    def act(state: RolloutState) -> tuple[RolloutState | None, str, int | None]:
        done = _finished(state)
        if done:
            return done
        if state.phase != "Paused":
            return None, f"not paused ({state.phase})", None
        new = state.model_copy(deep=True)
        new.phase, new.message = "Progressing", None
        return new, f"resumed at {state.route.describe()}", None

    return _transact(r, "resume", act)


def abort(r: Rollout) -> Outcome:
    def act(state: RolloutState) -> tuple[RolloutState | None, str, int | None]:
        if state.aborted:
            return None, f"already aborted; traffic on {state.stable.version}", None
        if not in_progress(state):
            return None, f"nothing to abort: {state.stable.version} serves all traffic", ExitCode.OK
        new = state.model_copy(deep=True)
        _abort_into(new, f"aborted by {current_user()}")
        return new, f"aborted: all traffic back on {state.stable.version} ({state.stable.slot})", None

    return _transact(r, "abort", act)


def undo(r: Rollout) -> Outcome:
    def act(state: RolloutState) -> tuple[RolloutState | None, str, int | None]:
        if state.aborted:
            return None, f"already rolled back ({state.message}); {state.stable.version} serves all traffic", None
        new = state.model_copy(deep=True)
        if in_progress(state):
            _abort_into(new, f"rolled back by {current_user()}")
            return new, f"rolled back: all traffic on {state.stable.version}", None
        if state.previous_stable is None:
            raise UsageError(f"rollout {r.name} has no previous stable version to go back to")
        back = state.previous_stable
        new.previous_stable, new.stable, new.candidate = state.stable, back, None
        new.route = Route(stable=back.slot)
        new.phase, new.aborted, new.message = "Degraded", True, f"rolled back to {back.version} by {current_user()}"
        return new, f"rolled back: {back.version} ({back.slot}) serves all traffic again", None

    return _transact(r, "undo", act)


def status(r: Rollout) -> Outcome:
    state = r.store.load(r.name)
    if state is None:
        raise UsageError(f"no rollout named {r.name} in {r.store.location}")
    live = r.router.live()
    gate = None
    if state.strategy == "shadow" and in_progress(state) and r.logs:
        gate = _gate(r, state)
    in_sync = state.route.same_as(live) and not state.pending
    text = f"{state.strategy} {state.phase}{' (aborted)' if state.aborted else ''}: {state.route.describe()}"
    if not in_sync:
        text += f"; the router shows {live.describe() if live else 'nothing'}: run any verb to repair"
    return Outcome(state, text, state_code(state), gate=gate, live=live)


def history(r: Rollout) -> list[AuditEntry]:
    state = r.store.load(r.name)
    if state is None:
        raise UsageError(f"no rollout named {r.name} in {r.store.location}")
    return state.history


# -- helpers ---------------------------------------------------------------------


def in_progress(state: RolloutState) -> bool:
    return state.candidate is not None and not state.aborted and state.phase != "Healthy"


def _finished(state: RolloutState) -> tuple[None, str, int] | None:
    if state.aborted:
        return None, f"aborted ({state.message}); start a new rollout", ExitCode.ROLLOUT_ABORTED
    if state.candidate is None or state.phase == "Healthy":
        return None, f"complete: {state.stable.version} serves all traffic", ExitCode.OK
    return None


def _abort_into(new: RolloutState, message: str) -> None:
    new.route = Route(stable=new.stable.slot, candidate=new.candidate.slot if new.candidate else None)
    new.aborted, new.phase, new.message = True, "Degraded", message


def _advance(new: RolloutState) -> tuple[RolloutState, str, None]:
    nxt = new.step + 1
    if nxt >= len(new.steps):
        return _complete(new)
    new.step, new.route.weight, new.route.mirror = nxt, new.steps[nxt], False
    new.step_started = now_iso()
    label = "switched" if new.strategy == "bluegreen" else f"step {nxt + 1}/{len(new.steps)}"
    return new, f"{label}: {new.route.describe()}", None


def _complete(new: RolloutState) -> tuple[RolloutState, str, None]:
    old, cand = new.stable, new.candidate
    new.previous_stable, new.stable, new.candidate = old, cand, None
    new.route = Route(stable=cand.slot)
    new.phase, new.message, new.step = "Healthy", None, len(new.steps) - 1
    new.step_started = now_iso()
    return new, f"promoted: {cand.version} ({cand.slot}) serves all traffic; {old.version} stays on {old.slot} for undo", None


def _gate(r: Rollout, state: RolloutState) -> GateReport:
    if not r.logs:
        raise UsageError("the analysis gate needs the prediction logs of both versions",
                         hint="Set rollout.logs in mlship.yaml or pass --logs DIR")
    until = now_iso()
    window = read_window(r.logs, r.name, state.stable.version, state.candidate.version, state.step_started, until)
    analysis = r.analysis
    no_traffic = state.route.weight == 0 and not state.route.mirror
    if no_traffic:  # a blue-green preview: judge what reached it, users are not waiting on it
        analysis = analysis.model_copy(update={"min_requests": 0})
    return evaluate(window, analysis, shadow=state.strategy == "shadow", since=state.step_started, until=until,
                    versions={"stable": state.stable.version, "candidate": state.candidate.version},
                    stable_serves=state.route.weight < 100 or state.route.mirror)


def _why(gate: GateReport) -> str:
    if gate.result == "pass":
        return ""
    return f" ({gate.reasons(gate.result)})"


def _agreement(gate: GateReport) -> str:
    s = gate.shadow or {}
    if s.get("agreement") is None:
        return ""
    return f": {s['agreement']:.2%} agreement over {s['joined']} requests"


def _transact(r: Rollout, verb: str, act: Callable[..., tuple[RolloutState | None, str, int | None]],
              *, creating: bool = False, dry_run: bool = False, advance: bool = False,
              expect_step: int | None = None) -> Outcome:
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
            return Outcome(state, f"{verb} already taken by a concurrent call ({taken.verb} by {taken.user}): "
                                  f"{state.route.describe()}", state_code(state))
        if state is not None and not dry_run:
            state, repaired = _repair(r, state, verb)
            if repaired:
                return Outcome(state, f"completed the interrupted {verb}: {state.route.describe()}",
                               state_code(state), changed=True)
            _expect(r, state, expect_step)  # a repair that completed another verb may have moved it
        new, message, code = act(state)
        if new is None:
            return Outcome(state, message, code if code is not None else state_code(state))
        _record(r, verb, state, new)
        return Outcome(new, message, code if code is not None else state_code(new), changed=True)


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
            _append(dropped, "discard", state, message=f"dropped the interrupted {state.pending['verb']} for {verb}")
            r.store.save(dropped)
            state = dropped
        if not state.aborted:
            return state, False  # the verb itself sends all traffic to stable
        # already aborted: below, the router is held to the stable-only route
    elif state.pending:
        pending = RolloutState.model_validate({**state.pending["state"], "history": state.history})
        interrupted = state.pending["verb"]
        r.router.apply(pending.route)
        pending.pending = None
        pending.step_started = now_iso()
        _append(pending, f"{interrupted} (completed after an interruption)", state)
        r.store.save(pending)
        return pending, interrupted == verb
    live = r.router.live()
    if not state.route.same_as(live):
        r.router.apply(state.route)
        repaired = state.model_copy(deep=True)
        _append(repaired, "repair", state,
                message=f"router showed {live.describe() if live else 'nothing'}; set back to {state.route.describe()}")
        r.store.save(repaired)
        return repaired, False
    return state, False


def _record(r: Rollout, verb: str, before: RolloutState | None, new: RolloutState) -> None:
    if not new.step_started:
        new.step_started = now_iso()
    if before is None or new.route != before.route:
        if before is not None:
            marker = before.model_copy(deep=True)
            marker.pending = {"verb": verb, "state": new.model_dump(mode="json", by_alias=True,
                                                                     exclude={"history", "pending"})}
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
