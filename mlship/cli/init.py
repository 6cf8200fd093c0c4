"""`mlship init`: start a project's mlship.yaml."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from mlship.cli._common import state


def init(
    ctx: typer.Context,
    model: Optional[Path] = typer.Option(None, "--model", "-m", help="ONNX model whose signature to record."),
    output: Path = typer.Option(Path("mlship.yaml"), "--output", "-o", help="Where to write the config."),
    force: bool = typer.Option(False, "--force", "-f", help="Overwrite an existing file."),
) -> None:
    """Write a commented mlship.yaml from mlship's template.

    Refuses to overwrite an existing file unless --force is given.
    """
    from mlship.init import render_config, write_config

    text = render_config(model, output.resolve().parent)
    write_config(output, text, force=force)
    state(ctx).console.result(
        {"written": str(output), "model": str(model) if model else None},
        lambda out: out.print(f"wrote {output}; next: mlship check"),
    )
