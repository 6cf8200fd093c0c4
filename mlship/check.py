"""`mlship check`: everything worth knowing about a model before it ships.

`run_check` returns a CheckReport; it raises InvalidInputError (exit 3) for
a model or data file that cannot be used at all. Failed thresholds are
recorded in the report (`passed` false) for the caller to turn into exit 4
after showing it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, Field

from mlship.data import Table, read_table
from mlship.errors import InvalidInputError, UsageError
from mlship.metrics import HIGHER_IS_BETTER, LOWER_IS_BETTER, ClassBreakdown, worse_by
from mlship.model import feeds as feeding
from mlship.model.compat import RuntimeSupport, compatibility_problems, runtime_support
from mlship.model.features import DeclaredFeatures
from mlship.model.latency import LatencyStats, measure_latency
from mlship.model.load import ModelFile, load_model
from mlship.model.providers import ProviderReport, ProviderRequest
from mlship.model.quality import class_labels, infer_task, sample_quality
from mlship.model.runner import Runner
from mlship.model.signature import Signature
from mlship.model.validate import run_checker, run_shape_inference

Status = Literal["pass", "fail", "warn", "skip"]
DEFAULT_TOLERANCE = 1e-4  # max |output difference| vs the baseline, unless --max-regression judges quality


class CheckOptions(BaseModel):
    """What to check and the thresholds to apply."""

    model: Path
    sample: Path | None = None
    labels: str | None = None
    baseline: Path | None = None
    tolerance: float | None = Field(None, description="Max |output difference| vs the baseline; unset: 1e-4, "
                                    "or not gated when --max-regression judges the baseline on labels.")
    min_agreement: float | None = None
    min_metric: dict[str, float] = Field(default_factory=dict)
    max_metric: dict[str, float] = Field(default_factory=dict)
    max_regression: dict[str, float] = Field(default_factory=dict, description="METRIC -> how much worse than the "
                                             "baseline on the sample's labels it may be.")
    max_p99_ms: float | None = None
    batch_size: int = 64
    task: Literal["auto", "classification", "regression"] = "auto"
    latency_budget_s: float = 1.0
    threads: int | None = None
    allow_missing: bool = Field(False, description="Missing values in the sample reach float inputs as NaN "
                                "instead of being refused (`missing_values: allow`).")
    features: DeclaredFeatures | None = Field(None, description="Column names of 2-D inputs (--features, "
                                              "mlship.yaml), over the model's metadata.")
    skipped_settings: list[str] = Field(default_factory=list, description="mlship.yaml settings left out because "
                                        "they belong to the project's model, not this one.")
    project_model: Path | None = Field(None, description="The project's `model:`, named when settings are skipped.")
    providers: ProviderRequest | None = Field(None, description="Execution providers, best first [cpu].")


class CheckItem(BaseModel):
    """One line of the verdict."""

    name: str
    status: Status
    detail: str


class ModelFacts(BaseModel):
    path: str
    sha256: str
    size_bytes: int
    ir_version: int
    opsets: dict[str, int]
    producer: str
    metadata: dict[str, str]


class OutputSummary(BaseModel):
    name: str
    dtype: str
    shape: list[int]
    non_finite: int
    sample: list[Any] = Field(description="The first few values.")


class SmokeResult(BaseModel):
    source: str = Field(description="'generated' or the sample file.")
    rows: int
    outputs: list[OutputSummary]


class BaselineResult(BaseModel):
    path: str
    sha256: str
    signature_changes: list[str]
    max_abs_diff: dict[str, float]
    label_agreement: float | None
    tolerance: float | None
    quality: dict[str, float] | None = Field(None, description="The baseline's metrics on the same labels.")
    quality_delta: dict[str, float] = Field(default_factory=dict, description="Candidate minus baseline, per metric.")


class QualityResult(BaseModel):
    task: Literal["classification", "regression"]
    labels: str
    rows: int
    metrics: dict[str, float]
    classes: ClassBreakdown | None = Field(None, description="More than two labels: per-class precision, recall, "
                                           "F1, one-vs-rest ROC AUC and the confusion matrix.")


class CheckReport(BaseModel):
    """Everything `mlship check` found."""

    model: ModelFacts
    runtime: RuntimeSupport
    providers: ProviderReport = Field(description="The execution provider the model ran on and its fallbacks.")
    signature: Signature
    smoke: SmokeResult
    latency: list[LatencyStats]
    baseline: BaselineResult | None = None
    quality: QualityResult | None = None
    checks: list[CheckItem]
    passed: bool

    def failures(self) -> list[CheckItem]:
        return [c for c in self.checks if c.status == "fail"]


def run_check(options: CheckOptions, progress: Any = None) -> CheckReport:
    """Run every check on one model; see the module docstring for errors."""
    step = progress or (lambda _msg: None)
    checks: list[CheckItem] = []
    step("loading the model")
    model = load_model(options.model)
    run_checker(model)
    inferred = run_shape_inference(model)
    checks.append(CheckItem(name="onnx checker", status="pass", detail="full check passed"))
    checks.append(CheckItem(name="shape inference", status="pass", detail=f"{inferred} intermediate shapes inferred"))
    support = runtime_support()
    runtime_item = _runtime_item(model, support)
    checks.append(runtime_item)
    checks.extend(_skipped_item(options))
    try:
        runner = Runner(model, threads=options.threads, features=options.features, providers=options.providers)
    except InvalidInputError:
        if runtime_item.status == "pass":
            raise
        raise InvalidInputError(f"{model.path}: {runtime_item.detail}",
                                hint="Export with a lower opset/IR version or upgrade onnxruntime") from None
    checks.append(_provider_item(runner.providers))

    step("smoke run")
    table = read_table(options.sample) if options.sample else None
    feeds = (feeding.feeds_from_table(table, runner.signature, allow_missing=options.allow_missing) if table
             else feeding.generated_feeds(runner.signature, 8))
    outputs = _run_batched(runner, feeds, options.batch_size)
    smoke = _smoke(outputs, runner.signature, str(options.sample) if options.sample else "generated", feeds)
    checks.append(_smoke_item(smoke, from_sample=table is not None))

    step("measuring latency")
    latency = _latency(runner, feeds, options)
    if options.max_p99_ms is not None:
        p99 = latency[0].p99_ms
        ok = p99 <= options.max_p99_ms
        checks.append(CheckItem(name="latency", status="pass" if ok else "fail",
                                detail=f"p99 {p99:.3f} ms at batch 1 (limit {options.max_p99_ms} ms)"))

    if options.max_regression and not (options.baseline and options.labels):
        raise UsageError("--max-regression compares quality with the baseline on labels",
                         hint="Pass --baseline MODEL and --labels COLUMN|FILE")
    baseline, base = None, None
    if options.baseline:
        step("comparing with the baseline")
        baseline, base = _compare_baseline(runner, outputs, feeds, options)
        checks.extend(_baseline_items(baseline, options))

    quality = None
    if options.labels:
        quality, y_true = _quality(runner, outputs, table, options)
        checks.extend(_quality_items(quality, options))
        if baseline is not None:
            checks.extend(_baseline_quality(baseline, base, quality, y_true, options))
    elif options.min_metric or options.max_metric:
        raise UsageError("--min-metric/--max-metric need labels", hint="Pass --labels COLUMN|FILE")

    return CheckReport(
        model=_facts(model),
        runtime=support,
        providers=runner.providers,
        signature=runner.signature,
        smoke=smoke,
        latency=latency,
        baseline=baseline,
        quality=quality,
        checks=checks,
        passed=not any(c.status == "fail" for c in checks),
    )


def _facts(model: ModelFile) -> ModelFacts:
    producer = f"{model.proto.producer_name} {model.proto.producer_version}".strip()
    return ModelFacts(
        path=str(model.path), sha256=model.sha256, size_bytes=model.size, ir_version=model.proto.ir_version,
        opsets=model.opsets, producer=producer or "unknown", metadata=model.metadata,
    )


def _skipped_item(options: CheckOptions) -> list[CheckItem]:
    """Say which project settings were left out, so a different result is not a mystery."""
    if not options.skipped_settings:
        return []
    names = ", ".join(options.skipped_settings)
    return [CheckItem(name="project settings", status="skip",
                      detail=f"mlship.yaml's {names} not used: they belong to its model {options.project_model}, "
                             f"not {options.model} (pass them as flags to use them)")]


def _provider_item(report: ProviderReport) -> CheckItem:
    """The provider the model ran on; a warning when a requested one was dropped (--provider-fallback)."""
    return CheckItem(name="execution provider", status="warn" if report.unavailable else "pass",
                     detail=report.summary())


def _runtime_item(model: ModelFile, support: RuntimeSupport) -> CheckItem:
    problems = compatibility_problems(model.opsets, model.proto.ir_version, support)
    if problems:
        return CheckItem(name="runtime support", status="warn", detail="; ".join(problems))
    return CheckItem(name="runtime support", status="pass",
                     detail=f"IR {model.proto.ir_version} and opsets run on onnxruntime {support.onnxruntime}")


def _run_batched(runner: Runner, feeds: dict[str, np.ndarray], batch_size: int) -> dict[str, Any]:
    """Run all rows, in chunks no larger than the model's fixed batch size."""
    rows = feeding.feed_rows(feeds)
    capacity = feeding.batch_capacity(runner.signature)
    chunk = capacity or max(batch_size, rows)
    parts = [runner.run(feeding.slice_feeds(feeds, i, i + chunk)) for i in range(0, rows, chunk)]
    if len(parts) == 1:
        return parts[0]
    return {name: _concat([p[name] for p in parts]) for name in parts[0]}


def _concat(values: list[Any]) -> Any:
    if isinstance(values[0], np.ndarray):
        return np.concatenate(values)
    return [item for part in values for item in part]


def _smoke(outputs: dict[str, Any], signature: Signature, source: str, feeds: dict[str, np.ndarray]) -> SmokeResult:
    summaries = []
    for spec in signature.outputs:
        value = outputs[spec.name]
        if isinstance(value, np.ndarray):
            bad = int(np.sum(~np.isfinite(value))) if value.dtype.kind == "f" else 0
            head = value[:3].tolist() if value.ndim else [value.item()]
            summaries.append(OutputSummary(name=spec.name, dtype=str(value.dtype), shape=list(value.shape),
                                           non_finite=bad, sample=head))
        else:  # sequences of maps (ZipMap)
            summaries.append(OutputSummary(name=spec.name, dtype=spec.type, shape=[len(value)], non_finite=0,
                                           sample=list(value[:3])))
    return SmokeResult(source=source, rows=feeding.feed_rows(feeds), outputs=summaries)


def _smoke_item(smoke: SmokeResult, *, from_sample: bool) -> CheckItem:
    bad = {o.name: o.non_finite for o in smoke.outputs if o.non_finite}
    if not bad:
        return CheckItem(name="smoke run", status="pass", detail=f"{smoke.rows} rows from {smoke.source}, outputs finite")
    detail = ", ".join(f"{n}: {k} NaN/inf" for n, k in bad.items()) + f" on {smoke.rows} rows from {smoke.source}"
    # NaN on real data is a defect; on random inputs it may only be out-of-domain values.
    return CheckItem(name="smoke run", status="fail" if from_sample else "warn", detail=detail)


def _latency(runner: Runner, feeds: dict[str, np.ndarray], options: CheckOptions) -> list[LatencyStats]:
    single = feeding.slice_feeds(feeds, 0, 1)
    stats = [measure_latency(runner, single, budget_s=options.latency_budget_s / 2)]
    capacity = feeding.batch_capacity(runner.signature)
    if capacity is None or capacity >= options.batch_size:
        stats.append(measure_latency(runner, _tile(feeds, options.batch_size), budget_s=options.latency_budget_s / 2))
    return stats


def _tile(feeds: dict[str, np.ndarray], rows: int) -> dict[str, np.ndarray]:
    """`rows` rows made by repeating the available ones."""
    have = feeding.feed_rows(feeds)
    index = np.arange(rows) % have
    return {name: value[index] for name, value in feeds.items()}


def _compare_baseline(runner: Runner, outputs: dict[str, Any], feeds: dict[str, np.ndarray],
                      options: CheckOptions) -> tuple[BaselineResult, tuple[Runner, dict[str, Any]] | None]:
    """Signature and output differences; with the baseline's runner and outputs when its inputs match."""
    base = Runner.from_path(options.baseline, threads=options.threads, providers=options.providers)
    changes = _signature_changes(base.signature, runner.signature)
    diffs: dict[str, float] = {}
    agreement, base_out = None, None
    if not any(c.startswith("input") for c in changes):
        base_out = _run_batched(base, feeds, options.batch_size)
        for name, value in outputs.items():
            old = base_out.get(name)
            if not (isinstance(value, np.ndarray) and isinstance(old, np.ndarray)) or value.shape != old.shape:
                continue
            if value.dtype.kind in "iuf" and old.dtype.kind in "iuf":
                diffs[name] = float(np.max(np.abs(value.astype(np.float64) - old.astype(np.float64)), initial=0.0))
            if value.ndim == 1 and value.dtype.kind in "iuUSO" and agreement is None:
                agreement = float(np.mean(value == old))
    result = BaselineResult(path=str(options.baseline), sha256=base.model.sha256, signature_changes=changes,
                            max_abs_diff={k: round(v, 8) for k, v in diffs.items()},
                            label_agreement=None if agreement is None else round(agreement, 6),
                            tolerance=_tolerance(options))
    return result, (None if base_out is None else (base, base_out))


def _tolerance(options: CheckOptions) -> float | None:
    """The output-difference gate: as set, else 1e-4, or none when --max-regression judges quality."""
    if options.tolerance is not None:
        return options.tolerance
    return None if options.max_regression else DEFAULT_TOLERANCE


def _signature_changes(old: Signature, new: Signature) -> list[str]:
    """Breaking differences for callers: removed/retyped inputs and outputs."""
    changes = []
    for kind, before, after in (("input", old.inputs, new.inputs), ("output", old.outputs, new.outputs)):
        now = {s.name: s for s in after}
        for spec in before:
            if spec.name not in now:
                changes.append(f"{kind} '{spec.name}' removed")
            elif (now[spec.name].dtype, now[spec.name].shape) != (spec.dtype, spec.shape):
                changes.append(f"{kind} '{spec.name}' changed from {spec.dtype}{spec.shape_text()} "
                               f"to {now[spec.name].dtype}{now[spec.name].shape_text()}")
        if kind == "input":
            old_names = {s.name for s in before}
            changes += [f"input '{s.name}' added" for s in after if s.name not in old_names]
    return changes


def _baseline_items(result: BaselineResult, options: CheckOptions) -> list[CheckItem]:
    items = []
    if result.signature_changes:
        items.append(CheckItem(name="baseline signature", status="fail", detail="; ".join(result.signature_changes)))
    worst = max(result.max_abs_diff.values(), default=0.0)
    if result.max_abs_diff and result.tolerance is None:
        items.append(CheckItem(name="baseline outputs", status="pass",
                               detail=f"max |diff| {worst:.3g} (not gated: --max-regression judges quality)"))
    elif result.max_abs_diff:
        ok = worst <= result.tolerance
        items.append(CheckItem(name="baseline outputs", status="pass" if ok else "fail",
                               detail=f"max |diff| {worst:.3g} (tolerance {result.tolerance:g})"))
    if result.label_agreement is not None:
        floor = options.min_agreement
        ok = floor is None or result.label_agreement >= floor
        limit = f" (min {floor:g})" if floor is not None else ""
        items.append(CheckItem(name="baseline labels", status="pass" if ok else "fail",
                               detail=f"label agreement {result.label_agreement:.2%}{limit}"))
    return items


def _quality(runner: Runner, outputs: dict[str, Any], table: Table | None,
             options: CheckOptions) -> tuple[QualityResult, np.ndarray]:
    """The candidate's quality on the labels, and the labels (as scored)."""
    y_true, source = _labels(options.labels, table)
    rows = len(next(v for v in outputs.values()))
    if len(y_true) != rows:
        raise InvalidInputError(f"{source}: {len(y_true)} labels for {rows} predicted rows",
                                hint="Labels must line up with the sample's rows")
    task = infer_task(runner.signature) if options.task == "auto" else options.task
    if task == "regression":
        y_true = _numeric_labels(y_true, source)
    metrics, classes = sample_quality(outputs, runner.signature, task, y_true, class_labels(runner.model.proto))
    return QualityResult(task=task, labels=source, rows=rows, metrics=metrics, classes=classes), y_true


def _baseline_quality(result: BaselineResult, base: tuple[Runner, dict[str, Any]] | None, quality: QualityResult,
                      y_true: np.ndarray, options: CheckOptions) -> list[CheckItem]:
    """The baseline scored on the same labels, and the --max-regression gate per metric."""
    if base is None:
        return [CheckItem(name=f"baseline quality: {name}", status="skip",
                          detail="the baseline takes other inputs: not scored on this sample")
                for name in options.max_regression]
    runner, outputs = base
    result.quality, _ = sample_quality(outputs, runner.signature, quality.task, y_true,
                                       class_labels(runner.model.proto))
    result.quality_delta = {k: round(v - result.quality[k], 6) for k, v in quality.metrics.items()
                            if k in result.quality}
    items = [_regression_item(name, delta, quality, result.quality) for name, delta in options.max_regression.items()]
    if not items:
        summary = ", ".join(f"{k} {result.quality[k]:.4g} -> {quality.metrics[k]:.4g}" for k in result.quality_delta)
        items.append(CheckItem(name="baseline quality", status="pass", detail=f"{summary} (no --max-regression set)"))
    return items


def _regression_item(name: str, limit: float, quality: QualityResult, baseline: dict[str, float]) -> CheckItem:
    if name not in quality.metrics or name not in baseline:
        have = [k for k in quality.metrics if k in baseline]
        raise UsageError(f"--max-regression {name}: not a metric of both models ({quality.task})",
                         hint=f"Use one of: {', '.join(have)}")
    worse = worse_by(name, baseline[name], quality.metrics[name])
    verdict = f"worse by {worse:.4g}" if worse > 0 else f"better by {-worse:.4g}" if worse < 0 else "unchanged"
    return CheckItem(name=f"baseline quality: {name}", status="fail" if worse > limit else "pass",
                     detail=f"{name} {quality.metrics[name]:.4f} vs baseline {baseline[name]:.4f}: {verdict} "
                            f"(max regression {limit:g})")


def _labels(spec: str, table: Table | None) -> tuple[np.ndarray, str]:
    """Labels from a sample column, or from a file (its only or `label` column)."""
    if table is not None and spec in table.columns:
        return table.column(spec), f"{table.path}:{spec}"
    if table is None and not Path(spec).exists():
        raise UsageError(f"--labels {spec}: no sample to take the column from and no such file",
                         hint="Pass --sample FILE, or a labels file")
    path = Path(spec)
    if not path.exists():
        raise InvalidInputError(f"{table.path}: no labels column '{spec}' and no file of that name",
                                hint=f"The sample has: {', '.join(table.columns)}")
    labels = read_table(path)
    if len(labels.columns) == 1:
        return next(iter(labels.columns.values())), str(path)
    for name in ("label", "labels", "target", "y"):
        if name in labels.columns:
            return labels.column(name), f"{path}:{name}"
    raise InvalidInputError(f"{path}: cannot tell which column holds the labels",
                            hint="Use a file with one column, or one named 'label'")


def _numeric_labels(values: np.ndarray, source: str) -> np.ndarray:
    try:
        return values.astype(np.float64)
    except (TypeError, ValueError):
        raise InvalidInputError(f"{source}: regression labels must be numbers") from None


def _quality_items(quality: QualityResult, options: CheckOptions) -> list[CheckItem]:
    items = []
    for name, floor in options.min_metric.items():
        items.append(_threshold(quality, name, floor, higher=True))
    for name, ceiling in options.max_metric.items():
        items.append(_threshold(quality, name, ceiling, higher=False))
    if not items:
        summary = ", ".join(f"{k} {v:.4g}" for k, v in quality.metrics.items())
        items.append(CheckItem(name="quality", status="pass", detail=f"{summary} (no floor set)"))
    return items


def _threshold(quality: QualityResult, name: str, limit: float, *, higher: bool) -> CheckItem:
    if name not in quality.metrics:
        raise UsageError(f"unknown metric '{name}' for a {quality.task} model",
                         hint=f"Use one of: {', '.join(quality.metrics)}")
    wrong_way = name in LOWER_IS_BETTER if higher else name in HIGHER_IS_BETTER
    if wrong_way:
        flag, other = ("--min-metric", "--max-metric") if higher else ("--max-metric", "--min-metric")
        raise UsageError(f"{flag} {name}: {name} is {'lower' if higher else 'higher'}-is-better",
                         hint=f"Use {other} {name}=VALUE")
    value = quality.metrics[name]
    ok = value >= limit if higher else value <= limit
    sign = ">=" if higher else "<="
    return CheckItem(name=f"quality: {name}", status="pass" if ok else "fail",
                     detail=f"{name} {value:.4f} (must be {sign} {limit:g})")
