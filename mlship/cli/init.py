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
    from mlship.init import ci_path, refuse_existing, render_ci, render_config, write_config

    written = []
    ci_file = None
    if ci is not None:  # refusals come before anything is written
        ci_file = output.resolve().parent / ci_path(ci)
        refuse_existing(ci_file, force=force)
    if not (ci and output.exists()):
        write_config(output, render_config(model, output.resolve().parent), force=force)
        written.append(str(output))
    if ci_file is not None:
        from mlship.config import load_config

        write_config(ci_file, render_ci(ci, load_config(output).name or "my-model"), force=force)
        written.append(str(ci_file))
    state(ctx).console.result(
        {"written": written, "model": str(model) if model else None, "ci": ci},
        lambda out: out.print(f"wrote {', '.join(written)}; next: mlship check", markup=False),
    )
