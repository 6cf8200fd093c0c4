"""`mlship config`: the config's schema and effective values."""

from __future__ import annotations

import json

import typer

from mlship.cli._common import config_for, state

app = typer.Typer(help="Show mlship.yaml's schema and the effective config.", no_args_is_help=True)


@app.command("schema")
def schema(ctx: typer.Context) -> None:
    """Print the JSON Schema of mlship.yaml (for editors and CI validation)."""
    from mlship.config import config_schema

    doc = config_schema()
    state(ctx).console.result(doc, lambda out: out.file.write(json.dumps(doc, indent=2) + "\n"))


@app.command("show")
def show(ctx: typer.Context) -> None:
    """Print the effective config: file, then MLSHIP_* variables, then defaults."""
    import yaml

    cfg = config_for(ctx)
    doc = cfg.model_dump(mode="json")
    text = yaml.safe_dump(doc, sort_keys=False)
    state(ctx).console.result(
        {"source": cfg.source, "config": doc},
        lambda out: out.file.write(f"# source: {cfg.source}\n{text}"),
    )
