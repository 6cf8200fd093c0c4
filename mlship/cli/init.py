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
    ci: Optional[str] = typer.Option(None, "--ci", help="Also write a CI pipeline: github (.github/workflows/mlship.yml) or gitlab (.gitlab-ci.yml)."),
) -> None:
    """Write a commented mlship.yaml from mlship's template, and with --ci a CI pipeline
    (check -> build -> push to staging -> rollout -> drift gate).

    Refuses to overwrite an existing file unless --force is given; with --ci an
    existing mlship.yaml is kept and only the pipeline is written.
    """
    from mlship.init import render_ci, render_config, write_config

    written = []
    name = None
    if ci is not None:
        ci_path, _ = render_ci(ci, "x")  # refuses an unknown kind before anything is written
        ci_file = output.resolve().parent / ci_path
        if ci_file.exists() and not force:
            write_config(ci_file, "", force=False)  # the same one-line refusal
    if not (ci and output.exists()):
        text = render_config(model, output.resolve().parent)
        write_config(output, text, force=force)
        written.append(str(output))
    if ci is not None:
        from mlship.config import load_config

        name = load_config(output).name or "my-model"
        _, text = render_ci(ci, name)
        ci_file.parent.mkdir(parents=True, exist_ok=True)
        write_config(ci_file, text, force=force)
        written.append(str(ci_file))
    state(ctx).console.result(
        {"written": written, "model": str(model) if model else None, "ci": ci},
        lambda out: out.print(f"wrote {', '.join(written)}; next: mlship check"),
    )
