"""`mlship promote`, `mlship pull` and `mlship targets`: versions in targets."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from mlship.cli._common import config_for, state
from mlship.cli.completion import complete_target

app = typer.Typer(help="Where artifacts go.", no_args_is_help=True)


def promote(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Artifact name."),
    version: str = typer.Argument(..., help="A pushed version."),
    channel: str = typer.Option(..., "--channel", help="Channel to point at it, e.g. stable, canary."),
    to: str = typer.Option(..., "--to", help="Target: a name from `targets:`, s3://…, gs://…, az://…, file://…",
        autocompletion=complete_target),
) -> None:
    """Move a channel pointer (NAME/channels/CHANNEL.json) to VERSION, atomically."""
    from mlship.targets.service import promote_channel

    cfg = config_for(ctx)
    pointer = promote_channel(name, version, channel, to, cfg.targets, signing=cfg.tuf_signing())
    state(ctx).console.result({**pointer, "target": to},
                              lambda out: out.print(f"{name}@{channel} -> {version} in {to}", markup=False))


def pull(
    ctx: typer.Context,
    ref: str = typer.Argument(..., help="NAME, NAME:VERSION or NAME@CHANNEL."),
    source: str = typer.Option(..., "--from", help="Target: a name from `targets:`, s3://…, gs://…, az://…, file://…",
        autocompletion=complete_target),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Directory to create [NAME-VERSION]."),
    force: bool = typer.Option(False, "--force", help="Replace an OUTPUT that holds other content."),
) -> None:
    """Download a version and verify every sha256 (a mismatch exits 3, leaving nothing)."""
    from mlship.targets.service import pull_version

    pulled = pull_version(ref, source, output, config_for(ctx).targets, force=force)
    said = f"{ref} ({pulled.name} {pulled.version}, {pulled.digest[:19]})"
    line = f"{pulled.output} already holds {said}" if pulled.unchanged else f"pulled {said} into {pulled.output}"
    state(ctx).console.result(pulled.model_dump(mode="json"), lambda out: out.print(line, markup=False))


@app.command("list")
def targets_list(ctx: typer.Context) -> None:
    """The kinds of target (by scheme) and the targets named in mlship.yaml."""
    from mlship.targets.service import list_targets

    listing = list_targets(config_for(ctx).targets)

    def render(out) -> None:
        out.print("schemes: " + ", ".join(f"{k}://" for k in listing.schemes))
        for n, t in listing.targets.items():
            out.print(f"  {n}: {t['type']} {t['url']}", markup=False)

    state(ctx).console.result(listing.model_dump(), render)
