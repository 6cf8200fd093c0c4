"""`mlship versions`: builds and pushes recorded in the versions store."""

from __future__ import annotations

from typing import Optional

import typer

from mlship.cli._common import config_for, state

app = typer.Typer(help="Builds and pushes recorded in the versions store.", no_args_is_help=True)


@app.command("list")
def versions_list(ctx: typer.Context, name: Optional[str] = typer.Argument(None, help="Only this model.")) -> None:
    """Every recorded build, oldest first."""
    from mlship.versions import VersionStore

    cfg = config_for(ctx)
    rows = VersionStore(cfg.resolve(cfg.store)).versions(name)
    state(ctx).console.result({"versions": rows}, lambda out: _render_versions(out, rows))


def _render_versions(out, rows: list[dict]) -> None:
    from rich.table import Table

    from mlship.console import plain

    table = Table(show_edge=False)
    for col in ("name", "version", "kind", "artifact", "model sha256", "created", "pushed"):
        table.add_column(col)
    for r in rows:
        table.add_row(*(plain(v) for v in (r["name"], r["version"], r["kind"], r["artifact"][:19],
                                            r["model_sha256"][:12], r["created"],
                                            ", ".join(p["reference"] for p in r["pushed"]))))
    out.print(table)


@app.command("show")
def versions_show(ctx: typer.Context, ref: str = typer.Argument(..., help="NAME[:VERSION] (latest when no version).")) -> None:
    """One build with its pushes, where it runs (slots) and its deploy events."""
    from mlship.errors import UsageError
    from mlship.versions import VersionStore

    cfg = config_for(ctx)
    name, _, version = ref.partition(":")
    record = VersionStore(cfg.resolve(cfg.store)).show(name, version or None)
    if record is None:
        raise UsageError(f"no recorded build or deploy of {ref}", hint="See `mlship versions list`")
    state(ctx).console.result(record, lambda out: _render_show(out, record))


def _render_show(out, record: dict) -> None:
    import json

    from rich.table import Table

    from mlship.console import plain

    shown = {k: v for k, v in record.items() if k not in ("runs", "deploys")}
    out.print(json.dumps(shown, indent=2), markup=False)
    if not record["runs"]:
        out.print("runs nowhere (no slot's last deploy is this version)", markup=False)
        return
    table = Table(title="runs in", show_edge=False)
    for col in ("slot", "state", "runtime", "where", "since", "by", "digest"):
        table.add_column(col)
    for r in record["runs"]:
        table.add_row(*(plain(str(v or "")) for v in (r["slot"], r["state"], r["runtime"], r["where"], r["since"],
                                                      r["user"], (r["digest"] or "")[:19])))
    out.print(table)


version_app = typer.Typer(help="Change the version in mlship.yaml (for Makefiles: mlship version bump patch).",
                          no_args_is_help=True)


@version_app.command("bump")
def version_bump(ctx: typer.Context,
                 part: str = typer.Argument("patch", help="major, minor or patch.")) -> None:
    """Raise `version:` in mlship.yaml by one (comments and layout kept); prints the new version."""
    from pathlib import Path

    from mlship.versions import bump_version

    config = Path(state(ctx).config_path or "mlship.yaml")
    old, new = bump_version(config, part)
    state(ctx).console.result({"config": str(config), "old": old, "version": new},
                              lambda out: out.print(new, markup=False))
