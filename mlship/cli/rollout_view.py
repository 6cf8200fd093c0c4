"""What `mlship rollout` commands share, kept out of mlship/cli/rollout.py so that
`mlship --help` does not compile it: opening a rollout from mlship.yaml, parsing
steps and durations, and printing outcomes, gates and the audit log.

Everything printed here passes through `_text`: versions, slots, users, output
names and gate details come from files, models, logs and the environment, and
rich would read `[/x]` as markup (and crash after traffic moved) or `:smile:`
as an emoji."""

from __future__ import annotations

import time
from typing import List, Optional

import typer

from mlship.cli._common import config_for, state
from mlship.errors import UsageError
from mlship.names import check_name
from mlship.rollout.engine import Outcome, Rollout, status
from mlship.rollout.reports import GateReport, ShadowReport
from mlship.rollout.state import AuditEntry, Route


def open_rollout(ctx: typer.Context, name: str, logs: Optional[List[str]] = None) -> Rollout:
    """The rollout NAME as mlship.yaml (and --logs) describe it: its state store, router and gate."""
    from mlship.rollout.service import open_rollout as open_configured

    check_name(name, "rollout name")  # before mlship.yaml is read
    return open_configured(config_for(ctx), name, logs, notify=lambda text: _note(ctx, text, json_too=True))


def _text(value: object):
    """A rich Text: printed verbatim, never read as markup or emoji codes."""
    from rich.text import Text

    return Text(str(value))


def _note(ctx: typer.Context, text: str, *, json_too: bool = False) -> None:
    """A verbatim note on stderr, hidden by --quiet (and by --json unless `json_too`:
    a wait for another verb's lock is said even then, so a CI log shows why a job stands still)."""
    console = state(ctx).console
    if not console.quiet and (json_too or not console.json_output):
        console.err.print(_text(text))


def parse_steps(text: str) -> list[float]:
    try:
        steps = [float(s.strip().rstrip("%")) for s in text.split(",") if s.strip()]
    except ValueError:
        raise UsageError(f"--steps {text!r}: expected percentages, e.g. 5,25,50,100") from None
    if any(round(s, 2) != s for s in steps):
        raise UsageError(f"--steps {text!r}: at most two decimals per step (nginx's split_clients)")
    if not steps or any(not 0 < s <= 100 for s in steps) or steps != sorted(set(steps)):
        raise UsageError(f"--steps {text!r}: expected increasing percentages in (0, 100]")
    return steps


def finish(ctx: typer.Context, outcome: Outcome) -> None:
    """Print the outcome (a line and the gate's table, or JSON) and exit with its code."""
    console = state(ctx).console

    def render(out) -> None:
        out.print(_text(outcome.message))
        if outcome.gate is not None:
            _render_gate(out, outcome.gate)

    console.result(outcome.to_json(), render)
    if outcome.code:
        raise typer.Exit(int(outcome.code))


def _render_gate(out, gate: GateReport) -> None:
    from rich.table import Table

    table = Table(title=f"analysis {gate.since} .. {gate.until}", title_justify="left")
    for column in ("metric", "value", "threshold", "result", "detail"):
        table.add_column(column)
    colour = {"pass": "green", "fail": "red", "inconclusive": "yellow"}
    for m in gate.metrics:
        table.add_row(_text(m.name), "" if m.value is None else f"{m.value:g}",
                      "" if m.threshold is None else f"{m.threshold:g}", f"[{colour[m.result]}]{m.result}[/]",
                      _text(m.detail))
    out.print(table)
    if gate.shadow:
        _render_shadow(out, gate.shadow)


def _render_shadow(out, shadow: ShadowReport) -> None:
    from rich.table import Table

    agreement = "n/a" if shadow.agreement is None else f"{shadow.agreement:.2%}"
    out.print(_text(f"shadow: {shadow.joined} requests seen by both, agreement {agreement} "
                    f"({shadow.disagreements} differ), {shadow.candidate_errors} candidate errors"))
    table = Table(show_header=True)
    for column in ("", "p50 ms", "p99 ms"):
        table.add_column(column)
    for side, lat in shadow.latency_ms.items():
        table.add_row(side, *("-" if v is None else f"{v:.2f}" for v in (lat.p50, lat.p99)))
    out.print(table)
    for key, d in shadow.output_deltas.items():
        out.print(_text(f"  outputs.{key}: mean |delta| {d.mean:.4g}, max {d.max:.4g}"))


def _short(summary: dict) -> str:
    if not summary:
        return "-"
    route = Route.model_validate(summary["route"]).describe()
    flag = " aborted" if summary.get("aborted") else ""
    return f"{summary['phase']}{flag}, {route}"


def watch_status(ctx: typer.Context, r: Rollout, timeout: float) -> Outcome:
    """Follow the rollout until it completes, aborts or pauses, or until `timeout` seconds passed."""
    deadline = time.monotonic() + timeout
    outcome, last = status(r), None
    while True:
        if outcome.message != last:
            _note(ctx, outcome.message)
            last = outcome.message
        st = outcome.state
        if st.phase in ("Healthy", "Degraded", "Paused") or st.aborted or time.monotonic() > deadline:
            return outcome
        time.sleep(1.0)
        outcome = status(r)


def show_history(ctx: typer.Context, entries: list[AuditEntry]) -> None:
    def render(out) -> None:
        from rich.table import Table

        table = Table()
        for column in ("time", "user", "verb", "before", "after"):
            table.add_column(column)
        for e in entries:
            table.add_row(*(_text(v) for v in (e.time, e.user, e.verb, _short(e.before), _short(e.after))))
        out.print(table)

    state(ctx).console.result({"history": [e.model_dump() for e in entries]}, render)
