"""`mlship push`: an artifact to targets (cloud, on-prem, both), or an image to a registry."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, List, Optional

import typer

from mlship.cli._common import config_for, state
from mlship.cli.completion import complete_target

if TYPE_CHECKING:
    from mlship.images.service import PushImageRequest
    from mlship.targets.service import PushReport, PushRequest


def push(
    ctx: typer.Context,
    what: Optional[str] = typer.Argument(None, help="An artifact file or directory; with --image, NAME[:VERSION] or a local image."),
    to: Optional[List[str]] = typer.Option(None, "--to", help="Target: a name from `targets:`, s3://…, gs://…, az://…, file://…; registry://… with --image (repeatable).",
        autocompletion=complete_target),
    to_all: bool = typer.Option(False, "--to-all", help="Every target in mlship.yaml (hybrid)."),
    image: bool = typer.Option(False, "--image", help="Push a container image to a registry or ECR."),
    name: Optional[str] = typer.Option(None, "--name", help="Artifact name [name in mlship.yaml]."),
    version: Optional[str] = typer.Option(None, "--artifact-version", help="Artifact version [version in mlship.yaml]."),
    dry_run: bool = typer.Option(False, "--dry-run", help="List what would be uploaded, upload nothing."),
) -> None:
    """Push an artifact to one or more targets (cloud, on-prem, both), or an image to a registry.

    Exit 7 when any target fails; the table says which succeeded. Exit 2, before any upload,
    when a target holds other content under the version (versions are immutable).
    """
    from pathlib import Path

    from mlship.errors import UsageError

    cfg = config_for(ctx)
    targets = list(to or []) + (list(cfg.targets) if to_all else [])
    if not targets:
        raise UsageError("no target given", hint="Pass --to TARGET (repeatable) or --to-all")
    if image:
        if len(targets) != 1:
            raise UsageError("--image pushes to one registry at a time")
        from mlship.images.service import PushImageRequest

        return _push_image(ctx, PushImageRequest(image=what, default_name=cfg.name, to=targets[0],
                                                 store=cfg.resolve(cfg.store)))
    from mlship.targets.service import PushRequest

    state(ctx).quick_exit = True  # its files and threads are closed and done when it returns (mlship.cli.run)
    _push_artifact(ctx, PushRequest(artifact=Path(what) if what is not None else None, name=name,
                                    version=version if version is not None else cfg.version, default_name=cfg.name,
                                    targets=targets, configured=cfg.targets, dry_run=dry_run,
                                    signing=cfg.tuf_signing(), store=cfg.resolve(cfg.store)))


def _push_image(ctx: typer.Context, request: "PushImageRequest") -> None:
    from mlship.images.service import push_image, push_label

    console = state(ctx).console
    with console.status(f"pushing to {push_label(request)}") as status:
        result = push_image(request, log=(lambda line: status.update(line[:100])) if status else console.debug)
    console.result(result.model_dump(), lambda out: out.print(f"pushed {result.reference}", markup=False))


def _push_artifact(ctx: typer.Context, request: "PushRequest") -> None:
    from mlship.cli.progress import RowProgress
    from mlship.targets.service import push_artifacts

    console = state(ctx).console
    report = push_artifacts(request, lambda label: RowProgress(console, label, unit="bytes"))
    console.result({"name": report.name, "version": report.version, "artifact": report.artifact,
                    "results": [r.model_dump() for r in report.results]},
                   lambda out: _render_push(out, report, dry_run=request.dry_run))
    failure = report.failure()
    if failure is not None:
        raise failure


def _render_push(out: Any, report: "PushReport", *, dry_run: bool) -> None:
    from rich.table import Table

    from mlship.console import plain

    table = Table(show_edge=False)
    for col in ("target", "status", "files", "MB", "MB/s", "error"):
        table.add_column(col)
    for r in report.results:
        rate = f"{r.bytes / 1e6 / r.seconds:.1f}" if r.seconds and r.status == "pushed" else ""
        table.add_row(plain(r.target), r.status, str(r.files), f"{r.bytes / 1e6:.1f}", rate, plain(r.error or ""))
    out.print(table)
    if dry_run:
        for p, rel in report.files:
            out.print(f"  {report.name}/{report.version}/{rel}  {p.stat().st_size:,} bytes", markup=False)
