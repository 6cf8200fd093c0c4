"""`mlship demo`: the whole pipeline on this machine in under a minute."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from mlship.cli._common import state


def demo(
    ctx: typer.Context,
    directory: Optional[Path] = typer.Option(None, "--dir", help="Where everything goes [./mlship-demo]."),
    step_seconds: float = typer.Option(2.0, "--step-seconds", help="Traffic per rollout step, in seconds."),
) -> None:
    """Run check, build, push, batch scoring, serving, a shadow and canary rollout, and a drift
    report on a synthetic readmission model, with no external services. Prints where the HTML
    report is. Exit 0 when every stage did what it should (the drift the demo injects is found)."""
    from mlship.demo import DemoError, default_directory, run_demo
    from mlship.errors import MlshipError

    console = state(ctx).console
    target = directory or default_directory()
    try:
        summary = run_demo(target, console.info, seconds_per_step=step_seconds)
    except (DemoError, MlshipError) as exc:  # a stage that failed: say which, and where its files are
        reason = exc.one_line() if isinstance(exc, MlshipError) else str(exc)
        raise MlshipError(f"demo stopped: {reason}", hint=f"Everything so far is in {target}") from None

    def render(out) -> None:
        drift = summary["drift"]
        out.print(f"done in {summary['seconds']:.0f} s; everything is in {summary['directory']}", markup=False)
        out.print(f"rollout: {summary['rollout']['stable']['version']} is stable "
                  f"({summary['rollout']['requests']} requests, {summary['rollout']['failed']} failed)")
        days = ", ".join(str(d) for d in drift["drifted_windows"]) or "none"
        out.print(f"drift: found in {days} (exit {drift['exit_code']}: in CI this starts retraining)")
        out.print(f"report: {drift['report']}", markup=False)

    console.result(summary, render)
