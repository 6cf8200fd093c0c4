"""`mlship predict`: score files in batch."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from mlship.cli._common import (FEATURES_OPTION, PROVIDER_FALLBACK_OPTION, PROVIDER_OPTION, config_for, declared_features,
                                provider_request, state)


def predict(
    ctx: typer.Context,
    model: Optional[Path] = typer.Argument(None, help="The ONNX model [default: `model` in mlship.yaml]."),
    input: str = typer.Option(..., "--input", "-i", help="A data file, a directory or a glob (CSV, Parquet, JSON Lines, NPY)."),
    output: Path = typer.Option(..., "--output", "-o", help="Predictions file: .parquet, .csv or .jsonl."),
    batch_size: int = typer.Option(50_000, "--batch-size", help="Rows per chunk (memory stays bounded by it)."),
    keep_columns: Optional[str] = typer.Option(None, "--keep-columns", help="Input columns to copy to the output, e.g. id,date."),
    on_error: str = typer.Option("fail", "--on-error", help="Rows that cannot be converted: fail (exit 3) or skip."),
    rejects: Optional[Path] = typer.Option(None, "--rejects", help="Where skipped rows go [OUTPUT.rejects.jsonl]."),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted run from its last finished chunk."),
    threads: Optional[int] = typer.Option(None, "--threads", help="onnxruntime intra-op threads per run [1]."),
    parallel: Optional[int] = typer.Option(None, "--parallel", help="Runs scored at once [number of CPUs]; a large chunk is scored as that many row ranges."),
    log_dir: Optional[Path] = typer.Option(None, "--log-dir", help="Also write a prediction log (mlship.predlog/v1)."),
    engine: str = typer.Option("local", "--engine", help="local, or ray (needs mlship[ray])."),
    address: Optional[str] = typer.Option(None, "--address", help="Ray cluster address [a local Ray]."),
    allow_missing: Optional[bool] = typer.Option(
        None, "--allow-missing/--refuse-missing",
        help="Pass missing values (empty, null, NaN) to float inputs as NaN, or refuse them (exit 3) [missing_values in mlship.yaml: refuse]."),
    features: Optional[List[str]] = FEATURES_OPTION,
    provider: Optional[List[str]] = PROVIDER_OPTION,
    provider_fallback: Optional[bool] = PROVIDER_FALLBACK_OPTION,
) -> None:
    """Score data files with a model, streaming in chunks.

    The output appears under its final name only when complete; a killed run
    continues with --resume. Exit 3 for unreadable input or a bad row (with
    --on-error fail).
    """
    from mlship.batch.job import PredictOptions
    from mlship.batch.run import run_predict
    from mlship.cli.progress import RowProgress
    from mlship.errors import UsageError
    from mlship.model.load import default_model_name

    cfg = config_for(ctx, {"missing_values": None if allow_missing is None else ("allow" if allow_missing else "refuse")})
    model_path = model or cfg.resolve(cfg.model)
    if model_path is None:
        raise UsageError("no model given", hint="Pass MODEL.onnx or set `model:` in mlship.yaml")
    project, skipped = cfg.for_model(model)
    if "features" in skipped and not features:
        state(ctx).console.info(f"mlship.yaml's features not used: they name the columns of {cfg.model}, not {model}")
    if on_error not in ("fail", "skip") or engine not in ("local", "ray"):
        raise UsageError("--on-error takes fail or skip; --engine takes local or ray")
    options = PredictOptions(
        model=model_path, input=input, output=output, batch_size=batch_size,
        keep_columns=[c.strip() for c in keep_columns.split(",") if c.strip()] if keep_columns else [],
        on_error=on_error, allow_missing=cfg.missing_values == "allow", rejects=rejects, resume=resume, threads=threads, log_dir=log_dir,
        **({"parallel": parallel} if parallel else {}),
        name=cfg.name or default_model_name(model_path),
        version=cfg.version or "1", engine=engine, address=address,
        features=declared_features(features) or project.declared_features(),
        providers=provider_request(cfg, provider, provider_fallback),
    )
    console = state(ctx).console
    with RowProgress(console, "scoring") as progress:
        summary = run_predict(options, progress, info=console.info)
    console.result(summary.model_dump(mode="json"), lambda out: out.print(
        f"{summary.rows:,} rows scored, {summary.rejects:,} rejected, in {summary.seconds:.2f} s "
        f"({summary.rows_per_s:,.0f} rows/s) -> {summary.output}"
        + (f"; rejects in {summary.rejects_file}" if summary.rejects_file else "")
        + (f"; {summary.resumed_chunks} chunks resumed" if summary.resumed_chunks else ""), markup=False))
