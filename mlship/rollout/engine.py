"""Rollout verbs. Each one locks the rollout, loads its state, compares it with
the router's live state (repairing a verb a crash interrupted), decides one
`Transition`, and records it in the audit log (see transaction.py).

A rollout pauses for a `PauseReason` kept in its state: a gate that could not
tell (the next `step` judges again) or a person (only `resume` goes on).
"""

from __future__ import annotations

import time
from dataclasses import replace

from mlship.errors import ExitCode, UsageError
from mlship.names import check_name
from mlship.rollout.gates import Window, evaluate, read_window
from mlship.rollout.reports import GateReport
from mlship.rollout.state import AuditEntry, PauseReason, Route, RolloutState, Side, current_user, now_iso, parse_iso
from mlship.rollout.transaction import (Outcome, Rollout, Transition, View, outcome_of, state_code, take_view,
                                        transact)

__all__ = ["Outcome", "Rollout", "View", "abort", "history", "pause", "promote", "resume", "start", "state_code",
           "status", "step", "take_view", "undo"]

MAX_GATES = 50


# -- the verbs --------------------------------------------------------------------


def start(r: Rollout, *, strategy: str, candidate: str, stable: str | None = None, steps: list[float] | None = None,
          pause_s: float | None = None, candidate_slot: str | None = None, dry_run: bool = False) -> Outcome:
    """Start a rollout; with `dry_run`, check everything that needs no change (versions, the
    router's slots and live route, the strategy, steps) and say what `start` would do:
    nothing is deployed, locked, routed or written."""
    # Versions end up in the state, the audit log, messages and logs' filters: one rule, checked
    # before anything is locked, written or routed.
    check_name(candidate, "candidate version")
    if stable is not None:
        check_name(stable, "stable version")

    def act(state: RolloutState | None) -> Transition:
        if state is not None and in_progress(state):
            if state.candidate and state.candidate.version == candidate and state.strategy == strategy:
                return Transition.stay(f"{strategy} of {candidate} already started")
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
                return Transition.stay(f"complete: {candidate} is the stable version already")
            raise UsageError(f"candidate {candidate} is the stable version already")
        others = [s for s in slots if s != stable_side.slot]
        slot = candidate_slot or (others[0] if others else None)
        if slot is None or slot == stable_side.slot or slot not in slots:
            raise UsageError(f"no free slot for the candidate (slots: {', '.join(slots)}; stable on {stable_side.slot})")
        # Before any traffic moves: the candidate slot runs the candidate (deployed, or checked).
        if r.slots is None:
            placed = ""
        elif dry_run and r.slots.deploys:
            placed = f"would deploy {candidate} to {slot}"
        else:  # without a runtime, asking the slot what it serves changes nothing: a dry run asks too
            placed = r.slots.place(slot, candidate, router)
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
        return Transition.to(new, f"{placed}; {text}" if placed else text)

    if dry_run:
        state = r.store.load(r.name)
        t = act(state)
        if t.new is None:
            return outcome_of(state, f"dry run: {t.message}", code=t.code)
        return Outcome(t.new, f"dry run, nothing changed: {t.message}")
    return transact(r, "start", act, creating=True)


def step(r: Rollout, *, dry_run: bool = False, expect_step: int | None = None) -> Outcome:
    """Gate the current step; advance, abort or pause. With `expect_step`, refuse
    (UsageError, nothing changed) unless the rollout is at that step index."""

    def act(state: RolloutState) -> Transition:
        held = _finished(state) or _held(r, state, dry_run)
        if held:
            return held
        gate = _gate(r, state)
        return replace(_dry_run(gate) if dry_run else _judged(r, state, gate), gate=gate)

    return transact(r, "step", act, dry_run=dry_run, advance=not dry_run, expect_step=expect_step)


def _held(r: Rollout, state: RolloutState, dry_run: bool) -> Transition | None:
    """A step that may not be judged yet: paused by a person, or the step's pause not over."""
    if state.phase == "Paused" and state.pause_reason is PauseReason.USER_PAUSED:
        return Transition.stay(f"paused: {state.message}; run `mlship rollout resume {r.name}`",
                               ExitCode.ROLLOUT_PAUSED)
    waited = time.time() - parse_iso(state.step_started)
    if state.pause_s and waited < state.pause_s and not dry_run:
        return Transition.stay(f"waiting: {state.pause_s - waited:.0f} s of the {state.pause_s:.0f} s pause left "
                               f"at {state.route.describe()}", ExitCode.ROLLOUT_PAUSED, PauseReason.PAUSE_DURATION)
    return None


def _judged(r: Rollout, state: RolloutState, gate: GateReport) -> Transition:
    """Keep the gate's report, then abort (fail), pause (inconclusive) or move on (pass)."""
    new = state.model_copy(deep=True)
    new.gates = (new.gates + [gate.at_step(state.step)])[-MAX_GATES:]
    if gate.result == "fail":
        return _back_to_stable(new, f"gate failed: {gate.reasons('fail')}",
                               f"gate failed ({gate.reasons('fail')}); traffic back on {state.stable.version}")
    if gate.result == "inconclusive":
        # not a person's pause: the next `step` judges again, with the data gathered since
        new.pause(PauseReason.GATE_INCONCLUSIVE, f"gate inconclusive: {gate.reasons('inconclusive')}")
        return Transition.to(new, f"gate inconclusive ({gate.reasons('inconclusive')}); "
                                  f"still at {state.route.describe()}")
    new.progress()
    if state.strategy == "shadow":
        return Transition.to(new, "shadow gate passed" + _agreement(gate) +
                             f"; `mlship rollout promote {r.name}` starts a canary, `--full` switches all traffic")
    return _advance(new)


def promote(r: Rollout, *, full: bool = False) -> Outcome:
    def act(state: RolloutState) -> Transition:
        done = _finished(state)
        if done:
            return done
        new = state.model_copy(deep=True)
        new.progress()
        if full:
            return _complete(new)
        if state.strategy == "shadow":
            new.strategy, new.step = "canary", 0
            if not new.steps or new.steps == [100.0]:
                new.steps = [float(s) for s in r.default_steps]
            new.route = Route(stable=state.stable.slot, candidate=state.candidate.slot, weight=new.steps[0])
            new.step_started = now_iso()
            return Transition.to(new, f"shadow promoted to canary: {new.route.describe()}")
        return _advance(new)

    return transact(r, "promote", act, advance=not full)  # --full is a destination, not one step more


def pause(r: Rollout) -> Outcome:
    def act(state: RolloutState) -> Transition:
        done = _finished(state)
        if done:
            return done
        by = f"paused by {current_user()}"
        if state.pause_reason is PauseReason.USER_PAUSED and state.message == by:
            return Transition.stay("already paused")
        new = state.model_copy(deep=True)
        new.pause(PauseReason.USER_PAUSED, by)  # a gate's pause becomes a person's: `step` now waits for resume
        return Transition.to(new, f"paused at {state.route.describe()}")

    return transact(r, "pause", act)


def resume(r: Rollout) -> Outcome:
    def act(state: RolloutState) -> Transition:
        done = _finished(state)
        if done:
            return done
        if state.phase != "Paused":
            return Transition.stay(f"not paused ({state.phase})")
        new = state.model_copy(deep=True)
        new.progress()
        return Transition.to(new, f"resumed at {state.route.describe()}")

    return transact(r, "resume", act)


def abort(r: Rollout) -> Outcome:
    def act(state: RolloutState) -> Transition:
        if state.aborted:
            return Transition.stay(f"already aborted; traffic on {state.stable.version}")
        if not in_progress(state):
            return Transition.stay(f"nothing to abort: {state.stable.version} serves all traffic", ExitCode.OK)
        return _back_to_stable(state.model_copy(deep=True), f"aborted by {current_user()}",
                               f"aborted: all traffic back on {state.stable.version} ({state.stable.slot})")

    return transact(r, "abort", act)


def undo(r: Rollout) -> Outcome:
    def act(state: RolloutState) -> Transition:
        if state.aborted:
            return Transition.stay(f"already rolled back ({state.message}); {state.stable.version} serves all traffic")
        new = state.model_copy(deep=True)
        if in_progress(state):
            return _back_to_stable(new, f"rolled back by {current_user()}",
                                   f"rolled back: all traffic on {state.stable.version}")
        if state.previous_stable is None:
            raise UsageError(f"rollout {r.name} has no previous stable version to go back to")
        back = state.previous_stable
        if r.slots is not None:  # its container may have been stopped since the promotion
            r.slots.bring_back(back.slot, back.version)
        new.previous_stable, new.stable, new.candidate = state.stable, back, None
        new.route = Route(stable=back.slot)
        new.settle("Degraded", f"rolled back to {back.version} by {current_user()}")
        return Transition.to(new, f"rolled back: {back.version} ({back.slot}) serves all traffic again")

    return transact(r, "undo", act)


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
    return outcome_of(state, text, gate=gate, live=live)


def history(r: Rollout) -> list[AuditEntry]:
    state = r.store.load(r.name)
    if state is None:
        raise UsageError(f"no rollout named {r.name} in {r.store.location}")
    return state.history


# -- helpers ---------------------------------------------------------------------


def in_progress(state: RolloutState) -> bool:
    return state.candidate is not None and not state.aborted and state.phase != "Healthy"


def _finished(state: RolloutState) -> Transition | None:
    """The answer of a verb that moves a rollout on, when the rollout has ended."""
    if state.aborted:
        return Transition.stay(f"aborted ({state.message}); start a new rollout", ExitCode.ROLLOUT_ABORTED)
    if state.candidate is None or state.phase == "Healthy":
        return Transition.stay(f"complete: {state.stable.version} serves all traffic", ExitCode.OK)
    return None


def _back_to_stable(new: RolloutState, message: str, text: str) -> Transition:
    """All traffic to stable at once: the rollout ends aborted, `message` saying why."""
    new.route = Route(stable=new.stable.slot, candidate=new.candidate.slot if new.candidate else None)
    new.settle("Degraded", message)
    return Transition.to(new, text)


def _advance(new: RolloutState) -> Transition:
    nxt = new.step + 1
    if nxt >= len(new.steps):
        return _complete(new)
    new.step, new.route.weight, new.route.mirror = nxt, new.steps[nxt], False
    new.step_started = now_iso()
    label = "switched" if new.strategy == "bluegreen" else f"step {nxt + 1}/{len(new.steps)}"
    return Transition.to(new, f"{label}: {new.route.describe()}")


def _complete(new: RolloutState) -> Transition:
    old, cand = new.stable, new.candidate
    new.previous_stable, new.stable, new.candidate = old, cand, None
    new.route = Route(stable=cand.slot)
    new.settle("Healthy", None)
    new.step = len(new.steps) - 1
    new.step_started = now_iso()
    return Transition.to(new, f"promoted: {cand.version} ({cand.slot}) serves all traffic; "
                              f"{old.version} stays on {old.slot} for undo")


def _gate(r: Rollout, state: RolloutState) -> GateReport:
    until = now_iso()
    since_s, until_s = parse_iso(state.step_started), parse_iso(until)
    # What the router's own metrics saw (SageMaker's CloudWatch metrics, when configured).
    observed = r.router.observed(state.candidate.slot, since_s, until_s)
    if not r.logs and observed is None:
        raise UsageError("the analysis gate needs the prediction logs of both versions",
                         hint="Set rollout.logs in mlship.yaml or pass --logs DIR")
    window = read_window(r.logs, r.name, state.stable.version, state.candidate.version, state.step_started, until) \
        if r.logs else Window([], [])
    analysis = r.analysis
    no_traffic = state.route.weight == 0 and not state.route.mirror
    if no_traffic:  # a blue-green preview: judge what reached it, users are not waiting on it
        analysis = analysis.model_copy(update={"min_requests": 0})
    # What users saw: requests the router sent to the candidate that it never answered (no prediction log).
    lost = r.router.unanswered(state.candidate.slot, since_s, until_s) or 0
    return evaluate(window, analysis, shadow=state.strategy == "shadow", since=state.step_started, until=until,
                    versions={"stable": state.stable.version, "candidate": state.candidate.version},
                    stable_serves=state.route.weight < 100 or state.route.mirror, unanswered=lost, observed=observed)


def _dry_run(gate: GateReport) -> Transition:
    """What `step --dry-run` says: the gate's verdict as an exit code, nothing changed."""
    message = f"dry run: the gate would {gate.result}"
    if gate.result == "pass":
        return Transition.stay(message, ExitCode.OK)
    if gate.result == "fail":
        return Transition.stay(f"{message} ({gate.reasons('fail')})", ExitCode.CHECK_FAILED)
    return Transition.stay(f"{message} ({gate.reasons('inconclusive')})", ExitCode.ROLLOUT_PAUSED,
                           PauseReason.GATE_INCONCLUSIVE)


def _agreement(gate: GateReport) -> str:
    s = gate.shadow
    if s is None or s.agreement is None:
        return ""
    return f": {s.agreement:.2%} agreement over {s.joined} requests"
