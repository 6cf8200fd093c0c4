"""`mlship rollout`: staged rollouts, one step per command."""

from __future__ import annotations

import time
from typing import List, Optional

import typer

from mlship.cli._common import config_for, state

app = typer.Typer(
    help="Staged rollouts (blue-green, canary, shadow) through nginx or SageMaker, one step per command. "
         "Exit codes: 0 progressed or healthy, 5 paused or waiting, 6 aborted or rolled back, "
         "4 gate failed (--dry-run), 7 router failure.",
    no_args_is_help=True,
)

NAME = typer.Argument(..., help="Rollout name: the model's name, as in its prediction logs.")


def _rollout(ctx: typer.Context, name: str, logs: Optional[List[str]] = None, steps: Optional[str] = None):
    from mlship.rollout.engine import Rollout
    from mlship.rollout.routers import open_router
    from mlship.rollout.state import open_store

    import re

    from mlship.errors import UsageError

    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}", name):
        raise UsageError(f"rollout name {name!r}: use letters, digits, '.', '_' and '-'")
    cfg = config_for(ctx)
    ro = cfg.rollout
    spec = ro.state
    endpoint = None
    if spec and spec in cfg.targets:
        target = cfg.targets[spec]
        spec, endpoint = target.url, getattr(target, "endpoint_url", None)
    store = open_store(spec, cfg.base_dir, endpoint_url=endpoint)
    router_settings = ro.router.model_dump() if ro.router else None
    if router_settings:
        for key in ("config", "main_config", "prefix", "template", "path"):
            if router_settings.get(key):
                router_settings[key] = str(cfg.resolve(router_settings[key]))
    log_specs = [str(cfg.resolve(p)) for p in (logs or ro.logs)]
    return Rollout(name=name, store=store, router_factory=lambda: open_router(router_settings, name),
                   analysis=ro.analysis, logs=log_specs, default_steps=[float(s) for s in ro.steps],
                   default_pause_s=parse_duration(ro.pause) if ro.pause else 0.0)


def parse_duration(text: str) -> float:
    """30s, 10m, 1h, 1h30m, or plain seconds."""
    import re

    from mlship.errors import UsageError

    text = text.strip()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise UsageError(f"duration {text!r}: expected e.g. 30s, 10m, 1h30m")
    scale = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
    return sum(float(n) * scale[u] for n, u in parts)


def _parse_steps(text: str) -> list[float]:
    from mlship.errors import UsageError

    try:
        steps = [float(s.strip().rstrip("%")) for s in text.split(",") if s.strip()]
    except ValueError:
        raise UsageError(f"--steps {text!r}: expected percentages, e.g. 5,25,50,100") from None
    if any(round(s, 2) != s for s in steps):
        raise UsageError(f"--steps {text!r}: at most two decimals per step (nginx's split_clients)")
    if not steps or any(not 0 < s <= 100 for s in steps) or steps != sorted(set(steps)):
        raise UsageError(f"--steps {text!r}: expected increasing percentages in (0, 100]")
    return steps


def _finish(ctx: typer.Context, outcome) -> None:
    console = state(ctx).console

    def render(out) -> None:
        out.print(outcome.message)
        if outcome.gate is not None:
            _render_gate(out, outcome.gate)

    console.result(outcome.to_json(), render)
    if outcome.code:
        raise typer.Exit(int(outcome.code))


def _render_gate(out, gate) -> None:
    from rich.table import Table

    table = Table(title=f"analysis {gate.since} .. {gate.until}", title_justify="left")
    for column in ("metric", "value", "threshold", "result", "detail"):
        table.add_column(column)
    colour = {"pass": "green", "fail": "red", "inconclusive": "yellow"}
    for m in gate.metrics:
        table.add_row(m.name, "" if m.value is None else f"{m.value:g}", "" if m.threshold is None else f"{m.threshold:g}",
                      f"[{colour[m.result]}]{m.result}[/]", m.detail)
    out.print(table)
    if gate.shadow:
        _render_shadow(out, gate.shadow)


def _render_shadow(out, shadow: dict) -> None:
    from rich.table import Table

    agreement = shadow.get("agreement")
    out.print(f"shadow: {shadow['joined']} requests seen by both, agreement "
              f"{'n/a' if agreement is None else f'{agreement:.2%}'} ({shadow['disagreements']} differ), "
              f"{shadow['candidate_errors']} candidate errors")
    table = Table(show_header=True)
    for column in ("", "p50 ms", "p99 ms"):
        table.add_column(column)
    for side in ("stable", "candidate"):
        lat = shadow["latency_ms"][side]
        table.add_row(side, *("-" if lat[k] is None else f"{lat[k]:.2f}" for k in ("p50", "p99")))
    out.print(table)
    for key, d in shadow.get("output_deltas", {}).items():
        out.print(f"  outputs.{key}: mean |delta| {d['mean']:.4g}, max {d['max']:.4g}")


@app.command("start")
def start(
    ctx: typer.Context,
    name: str = NAME,
    candidate: str = typer.Option(..., "--candidate", help="Version to roll out (as the candidate slot serves it)."),
    strategy: Optional[str] = typer.Option(None, "--strategy", help="bluegreen, canary or shadow [rollout.strategy]."),
    stable: Optional[str] = typer.Option(None, "--stable", help="Version serving now [the last rollout's]."),
    steps: Optional[str] = typer.Option(None, "--steps", help="Candidate traffic per step, e.g. 5,25,50,100 [rollout.steps]."),
    pause: Optional[str] = typer.Option(None, "--pause", help="Least time between steps, e.g. 10m [rollout.pause]."),
    slot: Optional[str] = typer.Option(None, "--slot", help="Slot the candidate runs in [the one stable is not on]."),
) -> None:
    """Start rolling out CANDIDATE: canary at the first step, blue-green preview, or shadow mirroring."""
    from mlship.errors import UsageError
    from mlship.rollout import engine

    cfg = config_for(ctx)
    strategy = strategy or cfg.rollout.strategy
    if strategy not in ("bluegreen", "canary", "shadow"):
        raise UsageError(f"--strategy {strategy}: use bluegreen, canary or shadow")
    r = _rollout(ctx, name)
    outcome = engine.start(r, strategy=strategy, candidate=candidate, stable=stable,
                           steps=_parse_steps(steps) if steps else None,
                           pause_s=parse_duration(pause) if pause else None, candidate_slot=slot)
    _finish(ctx, outcome)


@app.command("step")
def step(
    ctx: typer.Context,
    name: str = NAME,
    logs: Optional[List[str]] = typer.Option(None, "--logs", help="Prediction logs of both versions [rollout.logs] (repeatable)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Evaluate the gate and print it; change nothing."),
) -> None:
    """Run the analysis gate; advance one step when it passes, abort when it fails, pause when it cannot tell."""
    from mlship.rollout import engine

    _finish(ctx, engine.step(_rollout(ctx, name, logs), dry_run=dry_run))


@app.command("promote")
def promote(
    ctx: typer.Context,
    name: str = NAME,
    full: bool = typer.Option(False, "--full", help="All traffic to the candidate now; it becomes stable."),
) -> None:
    """Advance one step without analysis (shadow -> canary), or with --full finish the rollout."""
    from mlship.rollout import engine

    _finish(ctx, engine.promote(_rollout(ctx, name), full=full))


def _simple_verb(verb: str, doc: str) -> None:
    def command(ctx: typer.Context, name: str = NAME) -> None:
        from mlship.rollout import engine

        _finish(ctx, getattr(engine, verb)(_rollout(ctx, name)))

    command.__doc__ = doc
    app.command(verb)(command)


for _verb, _doc in (
    ("pause", "Hold the rollout where it is; `step` waits until `resume`."),
    ("resume", "Let a paused rollout step again."),
    ("abort", "All traffic back to stable in one action, no analysis (exit 6: the rollout is aborted)."),
    ("undo", "Back to the previous stable version (after a promotion), or abort a rollout in progress."),
):
    _simple_verb(_verb, _doc)


@app.command("status")
def status(
    ctx: typer.Context,
    name: str = NAME,
    logs: Optional[List[str]] = typer.Option(None, "--logs", help="Prediction logs, for a shadow's agreement report."),
    watch: bool = typer.Option(False, "--watch", help="Follow the rollout until it completes, aborts or pauses."),
    timeout: float = typer.Option(600.0, "--timeout", help="With --watch: give up after this many seconds."),
) -> None:
    """The rollout's phase, weights, versions, last gate, and the router's live state."""
    from mlship.rollout import engine

    r = _rollout(ctx, name, logs)
    outcome = engine.status(r)
    if watch:
        console = state(ctx).console
        deadline = time.monotonic() + timeout
        last = None
        while True:
            if outcome.message != last:
                console.info(outcome.message)
                last = outcome.message
            st = outcome.state
            if st.phase in ("Healthy", "Degraded", "Paused") or st.aborted or time.monotonic() > deadline:
                break
            time.sleep(1.0)
            outcome = engine.status(r)
    _finish(ctx, outcome)


@app.command("history")
def history(ctx: typer.Context, name: str = NAME) -> None:
    """The audit log: every transition with time, user, verb, before and after."""
    from mlship.rollout import engine

    entries = engine.history(_rollout(ctx, name))

    def render(out) -> None:
        from rich.table import Table

        table = Table()
        for column in ("time", "user", "verb", "before", "after"):
            table.add_column(column)
        for e in entries:
            table.add_row(e.time, e.user, e.verb, _short(e.before), _short(e.after))
        out.print(table)

    state(ctx).console.result({"history": [e.model_dump() for e in entries]}, render)


def _short(summary: dict) -> str:
    if not summary:
        return "-"
    from mlship.rollout.state import Route

    route = Route.model_validate(summary["route"]).describe()
    flag = " aborted" if summary.get("aborted") else ""
    return f"{summary['phase']}{flag}, {route}"
