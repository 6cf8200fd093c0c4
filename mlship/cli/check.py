"""`mlship check`: validate a model before it ships."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from mlship.cli._common import (FEATURES_OPTION, PROVIDER_FALLBACK_OPTION, PROVIDER_OPTION, config_for, declared_features,
                                parse_limits, parse_pairs, provider_request, state)
from mlship.errors import CheckFailedError, UsageError


def check(
    ctx: typer.Context,
    model: Optional[Path] = typer.Argument(None, help="The ONNX model [default: `model` in mlship.yaml]."),
    sample: Optional[Path] = typer.Option(None, "--sample", "-s", help="Data to run (CSV, Parquet, JSON Lines, NPY)."),
    labels: Optional[str] = typer.Option(None, "--labels", "-l", help="Labels: a column of the sample, or a file."),
    baseline: Optional[Path] = typer.Option(None, "--baseline", "-b", help="Previous model version to compare with."),
    tolerance: Optional[float] = typer.Option(None, "--tolerance", help="Max |output difference| vs the baseline [1e-4; not gated with --max-regression]."),
    min_agreement: Optional[float] = typer.Option(None, "--min-agreement", help="Min label agreement vs the baseline (0..1)."),
    min_metric: Optional[List[str]] = typer.Option(None, "--min-metric", help="Quality floor NAME=VALUE, e.g. accuracy=0.9 (repeatable)."),
    max_metric: Optional[List[str]] = typer.Option(None, "--max-metric", help="Ceiling for lower-is-better metrics, e.g. rmse=3 (repeatable)."),
    max_regression: Optional[List[str]] = typer.Option(
        None, "--max-regression",
        help="With --baseline and --labels: how much worse than the baseline a metric may be, e.g. rmse=0.05 or accuracy=0.01 (repeatable)."),
    max_p99_ms: Optional[float] = typer.Option(None, "--max-p99-ms", help="Fail when p99 latency at batch 1 exceeds this."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Batch size for the throughput measurement [64]."),
    task: Optional[str] = typer.Option(None, "--task", help="auto, classification or regression [auto]."),
    threads: Optional[int] = typer.Option(None, "--threads", help="onnxruntime intra-op threads [all cores]."),
    allow_missing: Optional[bool] = typer.Option(
        None, "--allow-missing/--refuse-missing",
        help="Pass missing values in the sample to float inputs as NaN, or refuse them (exit 3) [missing_values in mlship.yaml: refuse]."),
    features: Optional[List[str]] = FEATURES_OPTION,
    provider: Optional[List[str]] = PROVIDER_OPTION,
    provider_fallback: Optional[bool] = PROVIDER_FALLBACK_OPTION,
) -> None:
    """Check a model: validity, signature, smoke run, latency, baseline, quality floor.

    Exit 0 when every check passes, 3 for an invalid model or data file,
    4 when a threshold fails (a quality floor, or --max-regression against
    the baseline on the labels), 2 for a bad option.
    """
    from mlship.check import CheckOptions, run_check
    from mlship.cli.check_view import render_report

    cfg = config_for(ctx, {
        "check.tolerance": tolerance, "check.min_agreement": min_agreement,
        "check.max_p99_ms": max_p99_ms, "check.batch_size": batch_size, "check.task": task,
        "missing_values": None if allow_missing is None else ("allow" if allow_missing else "refuse"),
    })
    project_model = cfg.resolve(cfg.model)
    cfg, skipped = cfg.for_model(model)
    model_path = model or project_model
    if model_path is None:
        raise UsageError("no model given", hint="Pass MODEL.onnx or set `model:` in mlship.yaml (mlship init)")
    given = {"sample": sample, "features": features, "check.labels": labels, "check.baseline": baseline,
             "check.min_metric": min_metric, "check.max_metric": max_metric, "check.max_regression": max_regression}
    options = CheckOptions(
        model=model_path, sample=sample or cfg.resolve(cfg.sample), labels=labels or cfg.check.labels,
        baseline=baseline or cfg.resolve(cfg.check.baseline),
        features=declared_features(features) or cfg.declared_features(),
        skipped_settings=[k for k in skipped if not given[k]], project_model=project_model,
        tolerance=cfg.check.tolerance, min_agreement=cfg.check.min_agreement,
        min_metric={**cfg.check.min_metric, **parse_pairs(min_metric, "--min-metric")},
        max_metric={**cfg.check.max_metric, **parse_pairs(max_metric, "--max-metric")},
        max_regression={**cfg.check.max_regression, **parse_limits(max_regression, "--max-regression")},
        max_p99_ms=cfg.check.max_p99_ms, batch_size=cfg.check.batch_size, task=cfg.check.task, threads=threads,
        allow_missing=cfg.missing_values == "allow", providers=provider_request(cfg, provider, provider_fallback),
    )
    console = state(ctx).console
    with console.status("checking the model") as status:
        report = run_check(options, progress=(lambda msg: status.update(msg)) if status else None)
    console.result(report.model_dump(mode="json"), lambda out: render_report(report, out))
    if not report.passed:
        failed = report.failures()
        raise CheckFailedError(
            f"check failed: {'; '.join(f'{c.name}: {c.detail}' for c in failed)}",
        )
