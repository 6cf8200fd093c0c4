"""`mlship drift` and `mlship profile`."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from mlship.cli._common import config_for, state


def drift(
    ctx: typer.Context,
    current: str = typer.Option(..., "--current", "-c", help="Current data: prediction logs or data files (file, dir, glob)."),
    reference: Optional[str] = typer.Option(None, "--reference", "-r", help="Reference data, logs or a saved profile [monitoring.reference]."),
    window: Optional[str] = typer.Option(None, "--window", "-w", help="Compare each window of CUR: 1h, 1d, 30m or 5000rows."),
    min_rows: Optional[int] = typer.Option(None, "--min-rows", help="Fewer values than this: too small to judge [200]."),
    drift_share: Optional[float] = typer.Option(None, "--drift-share", help="Share of drifted columns that is dataset drift [0.5]."),
    labels: Optional[Path] = typer.Option(None, "--labels", help="Ground truth file (request_id, label) joined to the logs."),
    model: Optional[Path] = typer.Option(None, "--model", "-m", help="ONNX model: scores a reference without the logged outputs [model]."),
    json_out: Optional[str] = typer.Option(None, "--json-out", help="Write the JSON report to FILE, or - for stdout."),
    html: Optional[Path] = typer.Option(None, "--html", help="Write a self-contained HTML report."),
    markdown: Optional[Path] = typer.Option(None, "--markdown", help="Write a Markdown summary (CI job pages)."),
    fail_on: Optional[List[str]] = typer.Option(None, "--fail-on", help="Exit 4 on: dataset, any, window, quality, column:NAME (repeatable), or never (report only); default: what the headline says (window with --window, else dataset)."),
    on_drift: Optional[str] = typer.Option(None, "--on-drift", help="Shell command to run when drift is found."),
    webhook: Optional[str] = typer.Option(None, "--webhook", help="POST the JSON summary to this http(s) URL (a 2xx answer; redirects not followed)."),
    strict: bool = typer.Option(False, "--strict", help="A malformed log line is an error (exit 3), not skipped."),
    chunk_rows: int = typer.Option(50_000, "--chunk-rows", help="Rows read at a time (memory bound)."),
    stray: Optional[List[str]] = typer.Argument(None, hidden=True),
) -> None:
    """Compare current data or prediction logs with a reference: drift, performance, operations.

    Exit 4 when drift is found (see --fail-on), 5 when the data is too small to judge,
    3 for unreadable input, 7 when the webhook fails.
    """
    from mlship.drift import run
    from mlship.errors import CheckFailedError, NotEnoughDataError

    console = state(ctx).console
    _refuse_stray(stray, json_given=console.json_output)
    cfg = config_for(ctx)
    settings = cfg.monitoring.overridden(  # flag > env > file > default
        reference=reference or (str(cfg.resolve(cfg.monitoring.reference)) if cfg.monitoring.reference else None),
        drift_share=drift_share)
    model = _model(cfg, model)
    options = run.drift_options(settings, current=current, window=window, min_rows=min_rows or None, labels=labels,
                                model=model, features=_features(cfg, model), strict=strict, chunk_rows=chunk_rows)
    request = run.DriftRequest(options=options, json_out=json_out, html=html, markdown=markdown,
                               fail_on=fail_on or None, on_drift=on_drift, webhook=webhook)
    for warning in run.prepare(request):
        console.warn(warning)
    with console.status("reading and comparing"):
        report = run.analyse(request)
    _show(console, report, to_stdout=json_out == run.STDOUT)
    verdict = run.act(request, report)
    if verdict.on_drift_exit:
        console.warn(f"--on-drift command exited with {verdict.on_drift_exit}")
    if verdict.failed:
        raise CheckFailedError(verdict.message)
    if verdict.unjudged:
        raise NotEnoughDataError(verdict.message, hint="Wait for more data, widen --window or lower --min-rows")


def _refuse_stray(stray: Optional[List[str]], *, json_given: bool) -> None:
    """drift takes no arguments; after --json one is the old `--json FILE` form."""
    from mlship.errors import UsageError

    if not stray:
        return
    if json_given:
        raise UsageError(f"drift --json {stray[0]!r}: --json takes no value now",
                         hint=f"Write the report with --json-out {stray[0]} (--json-out - for stdout)")
    raise UsageError(f"drift takes no arguments, got {stray[0]!r}", hint="Pass the data with --current")


def _model(cfg, flag: Optional[Path]) -> Optional[Path]:
    """--model, else mlship.yaml's model: (flag > env > file)."""
    return flag or (cfg.resolve(cfg.model) if cfg.model else None)


def _features(cfg, model: Optional[Path]):
    """mlship.yaml's features: when `model` is the project's model (they name its columns only)."""
    return cfg.for_model(model)[0].declared_features() if model else None


def _show(console, report, *, to_stdout: bool) -> None:
    """The report on stdout: the JSON document for `--json-out -`, else the terminal view
    (or the document with the global --json)."""
    from mlship.drift.render import render_terminal

    if to_stdout:
        console.document(report.document())
    else:
        console.result(report.document(), lambda out: render_terminal(report, out))


def profile(
    ctx: typer.Context,
    data: List[str] = typer.Argument(..., help="Data files, logs (file, dir, glob), or saved profiles to merge."),
    output: Path = typer.Option(..., "--output", "-o", help="Where to write the profile (JSON)."),
    strict: bool = typer.Option(False, "--strict", help="A malformed log line is an error (exit 3), not skipped."),
    chunk_rows: int = typer.Option(50_000, "--chunk-rows", help="Rows read at a time (memory bound)."),
    model: Optional[Path] = typer.Option(None, "--model", "-m", help="ONNX model: scores data without outputs, kept in the profile [model]."),
    engine: str = typer.Option("local", "--engine", help="local, or ray: profile the files (or Parquet row groups) in parallel Ray tasks and merge."),
    address: Optional[str] = typer.Option(None, "--address", help="Ray cluster to join (--engine ray); default: a local Ray on loopback."),
    num_cpus: Optional[int] = typer.Option(None, "--num-cpus", min=1, help="CPUs of the local Ray (--engine ray) [all]."),
    partitions: Optional[int] = typer.Option(None, "--partitions", min=1, help="Ray tasks (--engine ray) [the cluster's CPUs]."),
) -> None:
    """Profile a reference once (or in pieces, then merge the pieces' profiles)."""
    from mlship.drift.detection import build_profile
    from mlship.drift.profile import Profile, is_profile_file, merge_profiles, save_profile
    from mlship.errors import UsageError

    if engine not in ("local", "ray"):
        raise UsageError(f"--engine {engine!r}: use local or ray")
    console = state(ctx).console
    cfg = config_for(ctx)
    model = _model(cfg, model)
    features = _features(cfg, model)
    merged, tasks = Profile(), 0
    for spec in data:
        if is_profile_file(spec):
            merged.merge(merge_profiles([spec]))
        elif engine == "ray":
            from mlship.drift.distributed import build_profile_ray

            with console.status(f"profiling {spec} in Ray tasks"):
                part, used = build_profile_ray(spec, chunk_rows=chunk_rows, strict=strict, model=model,
                                               features=features, address=address, num_cpus=num_cpus,
                                               partitions=partitions)
            merged.merge(part)
            tasks += used
        else:
            merged.merge(build_profile(spec, chunk_rows=chunk_rows, strict=strict, model=model,
                                       features=features)[0])
    save_profile(merged, output)
    summary = {"output": str(output), "rows": merged.rows, "engine": engine,
               "columns": {n: c.kind for n, c in sorted(merged.columns.items())},
               **({"tasks": tasks} if engine == "ray" else {})}
    console.result(summary, lambda out: out.print(
        f"profiled {merged.rows:,} rows, {len(merged.columns)} columns -> {output}", markup=False))
