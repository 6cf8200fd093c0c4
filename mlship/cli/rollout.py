"""`mlship rollout`: staged rollouts, one step per command."""

from __future__ import annotations

from typing import List, Optional

import typer

from mlship.cli.completion import complete_rollout

app = typer.Typer(
    help="Staged rollouts (blue-green, canary, shadow) through nginx or SageMaker, one step per command. "
         "Exit codes: 0 progressed or healthy, 5 paused or waiting, 6 aborted or rolled back, "
         "4 gate failed (--dry-run), 7 router failure.",
    no_args_is_help=True,
)

NAME = typer.Argument(..., help="Rollout name: the model's name, as in its prediction logs.",
                      autocompletion=complete_rollout)


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
    dry_run: bool = typer.Option(False, "--dry-run", help="Check the config, router and versions and say what start would do; change nothing."),
) -> None:
    """Start rolling out CANDIDATE: canary at the first step, blue-green preview, or shadow mirroring."""
    from mlship.cli.deploy import showing_logs
    from mlship.cli.rollout_view import finish, open_rollout, parse_steps
    from mlship.errors import UsageError
    from mlship.rollout import engine
    from mlship.rollout.service import parse_duration

    r = open_rollout(ctx, name)
    strategy = strategy or r.default_strategy
    if strategy not in ("bluegreen", "canary", "shadow"):
        raise UsageError(f"--strategy {strategy}: use bluegreen, canary or shadow")
    with showing_logs(ctx):  # a candidate deployed by `start` that did not serve: its last log lines
        outcome = engine.start(r, strategy=strategy, candidate=candidate, stable=stable,
                               steps=parse_steps(steps) if steps else None,
                               pause_s=parse_duration(pause) if pause else None, candidate_slot=slot,
                               dry_run=dry_run)
    finish(ctx, outcome)


@app.command("step")
def step(
    ctx: typer.Context,
    name: str = NAME,
    logs: Optional[List[str]] = typer.Option(None, "--logs", help="Prediction logs of both versions [rollout.logs] (repeatable)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Evaluate the gate and print it; change nothing."),
    expect_step: Optional[int] = typer.Option(
        None, "--expect-step", min=-1, metavar="INDEX",
        help="Act only if the rollout is at this step index (`rollout.step` of `rollout status --json`; "
             "-1 before the first weight); otherwise change nothing and exit 2. For CI jobs that may be retried."),
) -> None:
    """Run the analysis gate; advance one step when it passes, abort when it fails, pause when it cannot tell.

    Steps that overlap (started before either took the lock) take one step between them."""
    from mlship.cli.rollout_view import finish, open_rollout
    from mlship.rollout import engine

    r = open_rollout(ctx, name, logs)
    engine.take_view(r)  # before any waiting: what this command was asked to move on from
    finish(ctx, engine.step(r, dry_run=dry_run, expect_step=expect_step))


@app.command("promote")
def promote(
    ctx: typer.Context,
    name: str = NAME,
    full: bool = typer.Option(False, "--full", help="All traffic to the candidate now; it becomes stable."),
) -> None:
    """Advance one step without analysis (shadow -> canary), or with --full finish the rollout."""
    from mlship.cli.rollout_view import finish, open_rollout
    from mlship.rollout import engine

    r = open_rollout(ctx, name)
    engine.take_view(r)  # before any waiting: a promote overlapping a step takes one step between them
    finish(ctx, engine.promote(r, full=full))


def _simple_verb(verb: str, doc: str) -> None:
    def command(ctx: typer.Context, name: str = NAME) -> None:
        from mlship.cli.rollout_view import finish, open_rollout
        from mlship.rollout import engine

        finish(ctx, getattr(engine, verb)(open_rollout(ctx, name)))

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
    from mlship.cli.rollout_view import finish, open_rollout, watch_status
    from mlship.rollout import engine

    r = open_rollout(ctx, name, logs)
    finish(ctx, watch_status(ctx, r, timeout) if watch else engine.status(r))


@app.command("history")
def history(ctx: typer.Context, name: str = NAME) -> None:
    """The audit log: every transition with time, user, verb, before and after."""
    from mlship.cli.rollout_view import open_rollout, show_history
    from mlship.rollout import engine

    show_history(ctx, engine.history(open_rollout(ctx, name)))
