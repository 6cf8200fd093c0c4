"""`mlship deploy`: run a version in a rollout slot; status, stop and gc of what runs."""

from __future__ import annotations

from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Iterator, Optional

import typer
from typer.core import TyperGroup

from mlship.cli._common import config_for, state

if TYPE_CHECKING:
    from mlship.deploy.base import Placement

HELP = "Run a version in a rollout slot (docker, or a runtime plugin); status, stop and gc of what runs."


class _RunByDefault(TyperGroup):
    """`mlship deploy NAME:VERSION --slot S` is `mlship deploy run NAME:VERSION --slot S`."""

    default_command = "run"

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = [self.default_command, *args]
        return super().parse_args(ctx, args)


app = typer.Typer(cls=_RunByDefault, help=HELP, no_args_is_help=True)

RUNTIME = typer.Option(None, "--runtime", help="The runtime [deploy.runtime].")
FORCE = typer.Option(False, "--force", help="Even when the slot carries live traffic in a rollout.")


@app.command("run")
def run(
    ctx: typer.Context,
    ref: str = typer.Argument(..., help="NAME:VERSION of a recorded image build."),
    slot: str = typer.Option(..., "--slot", help="The slot to run it in (a key of rollout.router.upstreams)."),
    image: Optional[str] = typer.Option(None, "--image", help="Run this image instead of the recorded one."),
    runtime: Optional[str] = RUNTIME,
    force: bool = FORCE,
) -> None:
    """Run NAME:VERSION in SLOT; exit 7 with its last log lines when it does not serve (the slot unchanged)."""
    from mlship.deploy.service import DeployRequest, deploy_version
    from mlship.errors import UsageError
    from mlship.rollout.service import traffic_guard

    name, _, version = ref.partition(":")
    if not name or not version:
        raise UsageError(f"{ref!r}: expected NAME:VERSION, e.g. readmission:1.4.0")
    console = state(ctx).console
    request = DeployRequest(name=name, version=version, slot=slot, image=image, runtime=runtime, force=force)
    cfg = config_for(ctx)
    with showing_logs(ctx), console.status(f"deploying {ref} to slot {slot}"):
        result = deploy_version(cfg, request, traffic=traffic_guard(cfg))
    was = f" (was {result.replaced})" if result.replaced else ""
    console.result(result.model_dump(), lambda out: out.print(
        f"{name} {version} serves in slot {slot}{was} on {result.where} ({result.placement.id}, "
        f"{result.seconds:.1f} s)", markup=False))


@app.command("status")
def status(ctx: typer.Context, name: str = typer.Argument(..., help="Model name."),
           runtime: Optional[str] = RUNTIME) -> None:
    """What runs in each slot, and the replaced versions kept for undo."""
    from mlship.deploy.service import deploy_status

    report = deploy_status(config_for(ctx), name, runtime)
    state(ctx).console.result(report.model_dump(), lambda out: _render(out, report.placements))


@app.command("stop")
def stop(ctx: typer.Context, name: str = typer.Argument(..., help="Model name."),
         slot: str = typer.Option(..., "--slot", help="The slot to stop."), runtime: Optional[str] = RUNTIME,
         force: bool = FORCE) -> None:
    """Stop what runs in SLOT (kept, not removed)."""
    from mlship.deploy.service import stop_slot
    from mlship.rollout.service import traffic_guard

    cfg = config_for(ctx)
    placement = stop_slot(cfg, name, slot, runtime, force=force, traffic=traffic_guard(cfg))
    text = f"stopped {placement.id} ({placement.version})" if placement else f"slot {slot} runs nothing"
    state(ctx).console.result({"stopped": placement.model_dump() if placement else None},
                              lambda out: out.print(text, markup=False))


@app.command("gc")
def gc(ctx: typer.Context, name: str = typer.Argument(..., help="Model name."),
       keep: int = typer.Option(1, "--keep", min=0, help="Replaced versions to keep for undo, newest first."),
       runtime: Optional[str] = RUNTIME) -> None:
    """Remove replaced versions kept for undo, but the KEEP newest, and the images only they used."""
    from mlship.deploy.service import collect_garbage

    report = collect_garbage(config_for(ctx), name, keep, runtime)
    state(ctx).console.result(report.model_dump(), lambda out: _render_gc(out, report))


def _render_gc(out: Any, report: Any) -> None:
    removed = ", ".join(f"{p.id} ({p.version})" for p in report.removed) or "nothing"
    out.print(f"removed {len(report.removed)} kept on {report.where}: {removed}", markup=False)
    if report.images:
        out.print(f"removed {len(report.images)} image(s) no container uses: {', '.join(report.images)}",
                  markup=False)


def _render(out: Any, placements: list["Placement"]) -> None:
    from rich.table import Table

    from mlship.console import plain

    table = Table(show_edge=False)
    for col in ("slot", "version", "state", "kept", "container", "address", "image", "created"):
        table.add_column(col)
    for p in placements:
        table.add_row(*(plain(v) for v in (p.slot, p.version, p.state, "" if p.current else "yes", p.id,
                                            p.address or "", p.image, p.created)))
    out.print(table)


@contextmanager
def showing_logs(ctx: typer.Context) -> Iterator[None]:
    """Print the last log lines a failed deploy (DeployError) carries before its one-line error."""
    from mlship.console import plain
    from mlship.deploy.base import DeployError

    try:
        yield
    except DeployError as exc:
        console = state(ctx).console
        if exc.logs and not console.quiet:
            console.err.print(plain(f"last {len(exc.logs)} log lines of the container:"))
            for line in exc.logs:
                console.err.print(plain("  " + line))
        raise
