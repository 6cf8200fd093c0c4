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
    sample: Optional[Path] = typer.Option(None, "--sample", "-s", help="Sample data: sets `sample:` and, for a model without feature names, `features:` from its header."),
    labels: Optional[str] = typer.Option(None, "--labels", "-l", help="The sample's labels column (`check.labels`; not a feature)."),
    ci: Optional[str] = typer.Option(None, "--ci", help="Also write a CI pipeline: github (.github/workflows/mlship.yml) or gitlab (.gitlab-ci.yml)."),
    target: Optional[str] = typer.Option(None, "--target", help="URL of the staging target the pipeline pushes to (targets.staging)."),
    registry: Optional[str] = typer.Option(None, "--registry", help="HOST[:PORT]/REPO the pipeline builds images into (build.image.repository)."),
) -> None:
    """Write a commented mlship.yaml from mlship's template, and with --ci a CI pipeline
    (check -> build -> push to staging -> rollout -> drift gate).

    Refuses to overwrite an existing file unless --force is given; with --ci an
    existing mlship.yaml is kept and only the pipeline is written. --target and --registry
    fill in what the pipeline uses; with --ci and without them mlship.yaml names them as TODOs.
    """
    from mlship.init import InitRequest, init_project

    written = [str(p) for p in init_project(InitRequest(model=model, output=output, force=force, ci=ci,
                                                                    sample=sample, labels=labels,
                                                                    target=target, registry=registry))]
    state(ctx).console.result(
        {"written": written, "model": str(model) if model else None, "ci": ci},
        lambda out: out.print(f"wrote {', '.join(written)}; next: mlship check", markup=False),
    )
