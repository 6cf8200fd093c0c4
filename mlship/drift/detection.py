"""`mlship drift`: compare current data with a reference, overall and per window.

The reference and every window of current data become profiles (streamed
in chunks, so memory depends on chunk size and columns, not file size);
`comparison` compares them column by column and the share of drifted
columns decides dataset drift. The result is a typed `DriftReport`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from mlship.data.arrow import steady_memory_pool
from mlship.drift.comparison import compare, share_drifted, thresholds, time_column
from mlship.drift.profile import Profile, is_profile_file, load_profile
from mlship.drift.report import (DriftReport, OperationsReport, OperationsSummary, PerformanceReport,
                                 PerformanceSummary, ReadSummary, Source, VariantOperations, WindowDrift)
from mlship.drift.roles import column_times
from mlship.drift.samples import PREDICTION_COLUMNS as _PRED, REFERENCE_ROWS, SCORE_COLUMNS as _SCORE, Collector
from mlship.drift.together import beyond_columns
from mlship.drift.scoring import add_model_outputs, needs_scoring
from mlship.drift.settings import DriftOptions
from mlship.drift.sketch import NumericSketch
from mlship.drift.quality import assess
from mlship.drift.verdict import dataset_text, headline, ordered
from mlship.drift.frames import Frame, data_files, iter_frames
from mlship.predlog.reader import ReadReport
from mlship.predlog.schema import answered_mask, error_mask
from mlship.errors import InvalidInputError, UsageError
from mlship.metrics import (
    Classification,
    OneVsRestAuc,
    Regression,
    RocAuc,
    class_breakdown,
    label_order,
    label_text,
)
from mlship.model.features import DeclaredFeatures


@dataclass
class _Group:
    """One window of current data (or all of it)."""

    profile: Profile = field(default_factory=Profile)
    perf: "Performance" = field(default_factory=lambda: Performance())
    ops: "Operations" = field(default_factory=lambda: Operations())
    first_ts: float = math.inf
    last_ts: float = -math.inf


def run_drift(options: DriftOptions, progress: Callable[[int], None] = lambda rows: None) -> DriftReport:
    """The drift report (schema mlship.drift/v1) of the current data against the reference."""
    steady_memory_pool()  # before pyarrow is imported: half the kernel time of reading (mlship.data.arrow)
    read = ReadReport()
    labels = _load_labels(options.labels) if options.labels else None
    rows_ref, rows_cur = Collector(options, feature_cap=REFERENCE_ROWS, feature_cap_all=REFERENCE_ROWS), Collector(options)
    if parse_window(options.window)[1] == "s":  # time windows of data files need the reference's time column
        reference, ref_perf = _reference(options, read, labels, progress, rows_ref)
        overall, windows, by_version = _current(options, read, labels, progress, time_column(reference, options),
                                                rows_cur)
    else:
        (reference, ref_perf), (overall, windows, by_version) = _both(options, read, labels, progress, rows_ref,
                                                                      rows_cur)
    if overall.profile.rows == 0:
        raise InvalidInputError(f"{options.current}: no rows to compare")
    scored = options.model is not None and not is_profile_file(options.reference) \
        and needs_scoring(reference, overall.profile)
    if scored:
        add_model_outputs(reference, options.reference, options.model, chunk_rows=options.chunk_rows,
                          features=options.features)
    columns = ordered(compare(reference, overall.profile, options))
    drifted, share, any_judged = share_drifted(columns)
    window_list = [_window_summary(key, group, reference, options) for key, group in windows]
    together = beyond_columns(rows_ref, rows_cur, columns, window_list, [key for (key, _, _), _ in windows],
                              options)
    dataset_drift = any_judged and share >= options.drift_share or together.dataset_drift
    judged = sum(1 for c in columns if c.judged)
    return DriftReport(
        verdict=headline(dataset_text(dataset_drift, len(drifted), judged, share, options.drift_share,
                                      together.flagged_by), dataset_drift, window_list, judged),
        reference=Source(source=options.reference, rows=reference.rows,
                         **({"scored_with": str(options.model)} if scored else {})),
        current=Source(source=options.current, rows=overall.profile.rows),
        thresholds=thresholds(options),
        dataset_drift=dataset_drift,
        drifted_share=share,
        drifted_columns=drifted,
        columns=columns,
        quality=assess(reference, overall.profile, columns),
        windows=window_list,
        performance=PerformanceReport(reference=_performance(ref_perf, classes=True),
                                      current=_performance(overall.perf, classes=True)),
        operations=OperationsReport(
            overall=OperationsSummary(**overall.ops.summary()),
            by_version_variant=[VariantOperations(version=v, variant=var, **ops.summary())
                                for (v, var), ops in sorted(by_version.items())]),
        read=ReadSummary(bad_lines=read.bad_lines, examples=read.examples, files=len(read.files)),
        **together.fields(),
    )


def build_profile(spec: str, *, chunk_rows: int = 50_000, strict: bool = False, model: Path | None = None,
                  features: DeclaredFeatures | None = None,
                  progress: Callable[[int], None] = lambda rows: None) -> tuple[Profile, ReadReport]:
    """`mlship profile`: one pass over data or logs in chunks (prediction rows only); with
    `model`, data without outputs is scored so the profile holds them too."""
    read = ReadReport()
    profile = _scan(spec, chunk_rows=chunk_rows, strict=strict, read=read, progress=progress)
    if profile.rows == 0:
        raise InvalidInputError(f"{spec}: no rows to profile")
    if model is not None and needs_scoring(profile):
        add_model_outputs(profile, spec, model, chunk_rows=chunk_rows, features=features)
    return profile, read


def _performance(perf: "Performance", *, classes: bool = False) -> PerformanceSummary | None:
    """The quality summary; with `classes`, a multiclass model's per-class breakdown too (not per window)."""
    summary = perf.summary(classes=classes)
    return PerformanceSummary(**summary) if summary is not None else None


# -- reading -------------------------------------------------------------------


def _reference(options: DriftOptions, read: ReadReport, labels: dict[str, Any] | None,
               progress: Callable[[int], None], rows: Collector | None = None) -> tuple[Profile, "Performance"]:
    perf = Performance()
    if is_profile_file(options.reference):
        return load_profile(Path(options.reference)), perf
    profile = _scan(options.reference, chunk_rows=options.chunk_rows, strict=options.strict, read=read,
                    progress=progress, perf=perf, labels=labels, rows=rows)
    if profile.rows == 0:
        raise InvalidInputError(f"{options.reference}: no rows in the reference")
    return profile, perf


def _both(options: DriftOptions, read: ReadReport, labels: dict[str, Any] | None, progress: Callable[[int], None],
          rows_ref: Collector, rows_cur: Collector) -> tuple[Any, Any]:
    """The reference and the current data read at once, the reference on a second thread: where a
    second core is free they overlap (NumPy and pyarrow do much of their work without the GIL).
    A failure is the reference's first, as when they were read one after the other."""
    import threading

    if not is_profile_file(options.reference):
        data_files(options.reference)  # a missing reference fails now, not after the current data
    ref_read, cur_read, outcome = ReadReport(), ReadReport(), {}

    def reference() -> None:
        try:
            outcome["result"] = _reference(options, ref_read, labels, progress, rows_ref)
        except BaseException as exc:  # raised on the caller's thread
            outcome["error"] = exc

    thread = threading.Thread(target=reference, name="mlship-drift-reference", daemon=True)
    thread.start()
    try:
        current = _current(options, cur_read, labels, progress, None, rows_cur)
    finally:
        thread.join()
        if "error" in outcome:
            raise outcome["error"]
    read.merge(ref_read)
    read.merge(cur_read)
    return outcome["result"], current


def _scan(spec: str, *, chunk_rows: int, strict: bool, read: ReadReport, progress: Callable[[int], None],
          perf: "Performance | None" = None, labels: dict[str, Any] | None = None,
          rows: Collector | None = None) -> Profile:
    """The profile of the predictions (and their quality, given `perf`; their rows, given `rows`)
    in data or logs."""
    return profile_frames(iter_frames(spec, chunk_rows=chunk_rows, strict=strict, report=read), progress=progress,
                          perf=perf, labels=labels, rows=rows)


def profile_frames(frames: Iterable[Frame], *, progress: Callable[[int], None] = lambda rows: None,
                   perf: "Performance | None" = None, labels: dict[str, Any] | None = None,
                   rows: Collector | None = None) -> Profile:
    """The profile of frames' prediction rows, in order (also a piece of a larger reference:
    drift/distributed.py); their rows kept in `rows`, given."""
    profile = Profile()
    for frame in frames:
        ok = _ok_rows(frame)
        profile.add_frame(_rows(frame.columns, ok), int(ok.sum()), _coded(frame, ok))
        if perf is not None:
            perf.add(frame, ok, labels)
        if rows is not None:
            rows.add(frame.columns, frame.meta, ok, None, labels)
        progress(frame.rows)
    return profile


def _current(options: DriftOptions, read: ReadReport, labels: dict[str, Any] | None,
             progress: Callable[[int], None], time_col: str | None, rows: Collector):
    size, unit = parse_window(options.window)
    overall, windows = _Group(), {}
    by_version: dict[tuple[str, str], Operations] = {}
    seen = 0
    for frame in iter_frames(options.current, chunk_rows=options.chunk_rows, strict=options.strict, report=read):
        if unit == "s" and frame.ts is None and time_col in frame.columns:  # data files: their time column
            frame.ts = column_times(frame.columns[time_col])
        ok = _ok_rows(frame)
        overall.profile.add_frame(_rows(frame.columns, ok), int(ok.sum()), _coded(frame, ok))
        overall.perf.add(frame, ok, labels)
        overall.ops.add(frame, np.ones(frame.rows, dtype=bool))
        _by_version(frame, by_version)
        keys = _window_keys(frame, size, unit, seen, options) if size else None
        rows.add(frame.columns, frame.meta, ok, keys, labels)
        if keys is not None:
            for key in np.unique(keys[~np.isnan(keys)]):
                mask = keys == key
                group = windows.setdefault(float(key), _Group())
                group.profile.add_frame(_rows(frame.columns, mask & ok), int((mask & ok).sum()))
                group.perf.add(frame, mask & ok, labels)
                group.ops.add(frame, mask)
                if frame.ts is not None:
                    group.first_ts = min(group.first_ts, float(np.nanmin(frame.ts[mask])))
                    group.last_ts = max(group.last_ts, float(np.nanmax(frame.ts[mask])))
        seen += frame.rows
        progress(frame.rows)
    ordered = sorted(windows.items())
    return overall, [((key, size, unit), group) for key, group in ordered], by_version


def parse_window(spec: str | None) -> tuple[float, str]:
    """"1h" -> (3600, "s"); "5000rows" -> (5000, "rows"); None -> (0, "")."""
    if not spec:
        return 0.0, ""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w|rows?)\s*", spec)
    number = float(match.group(1)) if match else 0.0
    unit = match.group(2) if match else ""
    if not match or number <= 0 or (unit.startswith("row") and number != int(number)):
        raise UsageError(f"--window {spec!r}: use a duration like 30m, 1h, 1d, or a whole row count like 5000rows")
    if unit.startswith("row"):
        return number, "rows"
    return number * {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[unit], "s"


def _window_keys(frame: Frame, size: float, unit: str, seen: int, options: DriftOptions) -> np.ndarray:
    if unit == "rows":
        return (np.arange(seen, seen + frame.rows) // int(size)).astype(np.float64)
    if frame.ts is None or np.isnan(frame.ts).all():
        raise UsageError(f"--window {options.window}: time windows need records with a 'ts' (prediction logs) "
                         "or a time column", hint="Use a row window such as --window 5000rows, or declare the "
                         "time column: monitoring.columns.NAME.role: time")
    return np.floor(frame.ts / size) * size  # a record without a time (NaN) joins no window


def _window_summary(key: tuple[float, float, str], group: _Group, reference: Profile,
                    options: DriftOptions) -> WindowDrift:
    start, size, unit = key
    rows = group.profile.rows
    window: dict[str, Any] = {"rows": rows, "performance": _performance(group.perf),
                              "operations": OperationsSummary(**group.ops.summary())}
    if unit == "rows":
        window.update(start_row=int(start * size), end_row=int(start * size) + rows, label=f"rows {int(start * size):,}+")
    else:
        from datetime import datetime, timezone

        begin = datetime.fromtimestamp(start, tz=timezone.utc)
        window.update(start=begin.isoformat().replace("+00:00", "Z"),
                      end=datetime.fromtimestamp(start + size, tz=timezone.utc).isoformat().replace("+00:00", "Z"),
                      label=begin.strftime("%Y-%m-%d %H:%M"))
    if rows < options.min_rows:
        return WindowDrift(**window, insufficient=True, dataset_drift=None, drifted_share=None, drifted_columns=[])
    columns = compare(reference, group.profile, options)
    drifted, share, any_judged = share_drifted(columns)
    return WindowDrift(**window, insufficient=False, dataset_drift=any_judged and share >= options.drift_share,
                       drifted_share=share, drifted_columns=drifted,
                       effects={c.name: c.effect for c in columns if c.effect is not None})


def _ok_rows(frame: Frame) -> np.ndarray:
    """Rows that are predictions (answered: predlog's one definition, when the log says)."""
    status = frame.meta.get("status")
    if status is None:
        return np.ones(frame.rows, dtype=bool)
    return answered_mask(status)


def _coded(frame: Frame, mask: np.ndarray) -> dict[str, tuple[np.ndarray, list[str]]]:
    """The frame's dictionary-encoded columns, when every row is kept (a masked copy has none)."""
    return frame.coded if frame.coded and mask.all() else {}


def _rows(columns: dict[str, np.ndarray], mask: np.ndarray) -> dict[str, np.ndarray]:
    if mask.all():  # data files: every row (no copy)
        return columns
    return {k: v[mask] for k, v in columns.items()}


def _by_version(frame: Frame, groups: dict[tuple[str, str], "Operations"]) -> None:
    version = frame.meta.get("version")
    variant = frame.meta.get("variant")
    if version is None and variant is None:
        return
    keys = list(zip(*(m.astype(str).tolist() if m is not None else ["-"] * frame.rows for m in (version, variant))))
    for key in set(keys):
        mask = np.array([k == key for k in keys], dtype=bool)
        groups.setdefault(key, Operations()).add(frame, mask)


def _load_labels(path: Path) -> dict[str, Any]:
    """request_id -> label from a CSV, Parquet or JSON Lines file."""
    from mlship.data import read_table

    table = read_table(path)
    if "request_id" not in table.columns or "label" not in table.columns:
        raise InvalidInputError(f"{path}: a labels file needs 'request_id' and 'label' columns",
                                hint=f"It has: {', '.join(table.columns)}")
    ids = [label_text(v) for v in table.column("request_id").tolist()]  # 1000.0 from a CSV is id 1000
    return dict(zip(ids, table.column("label").tolist()))


# -- performance and operations ----------------------------------------------------

_REGRESSION = ("outputs.variable", "outputs.prediction", "outputs.output", "outputs.value")
# Class probabilities: a list output (NAME_0 … NAME_{k-1}, column j the class j) or ZipMap's {class: p}
# (NAME_CLASS per class, as predlog's flatten_outputs and predict write it).
_PROBS = ("outputs.probabilities", "outputs.output_probability", "outputs.probability", "outputs.scores")


class Performance:
    """Quality against labels, accumulated in bounded memory (mlship/metrics.py)."""

    BINS = 1000

    def __init__(self) -> None:
        self.classification = Classification()
        self.roc_auc = RocAuc(bins=self.BINS)
        self.regression = Regression()
        self.one_vs_rest = OneVsRestAuc(bins=self.BINS)

    def add(self, frame: Frame, mask: np.ndarray, labels: dict[str, Any] | None) -> None:
        truth = self._labels(frame, labels)
        if truth is None:
            return
        have = mask & np.array([t is not None and not (isinstance(t, float) and math.isnan(t)) for t in truth])
        if not have.any():
            return
        pred_name = next((n for n in _PRED if n in frame.columns), None)
        truth_have = [truth[i] for i in np.flatnonzero(have)]
        if pred_name is not None and _is_discrete(frame.columns[pred_name]):
            self.classification.update(truth_have, frame.columns[pred_name][have])
            scores = _class_scores(frame, have)
            score_name = next((n for n in _SCORE if n in frame.columns), None)
            if scores is not None and scores[0].shape[1] > 2:
                self.one_vs_rest.update(truth_have, *scores)
            elif score_name is not None:
                self.roc_auc.update(truth_have, frame.columns[score_name][have])
            elif scores is not None:  # two classes: the larger one's score
                self.roc_auc.update(truth_have, scores[0][:, max((0, 1), key=lambda j: label_order(scores[1][j]))])
            return
        reg_name = next((n for n in _REGRESSION if n in frame.columns), None)
        if reg_name is None:
            return
        self.regression.update(np.asarray(truth_have, dtype=np.float64), frame.columns[reg_name][have])

    @staticmethod
    def _labels(frame: Frame, labels: dict[str, Any] | None) -> list[Any] | None:
        if labels is not None and "request_id" in frame.meta:
            return [labels.get(str(r)) for r in frame.meta["request_id"].tolist()]
        if "label" in frame.meta:
            return frame.meta["label"].tolist()
        return None

    def summary(self, *, classes: bool = False) -> dict[str, Any] | None:
        if self.classification.rows:
            out = {"task": "classification", "rows": self.classification.rows, **self.classification.result()}
            multiclass = len(self.classification.labels()) > 2
            if (auc := self.one_vs_rest.macro() if multiclass else self.roc_auc.result()) is not None:
                out["roc_auc"] = auc
            if classes and multiclass:
                out["classes"] = class_breakdown(self.classification, self.one_vs_rest)
            return out
        if self.regression.rows:
            errors = self.regression.result()
            return {"task": "regression", "rows": self.regression.rows, "mae": errors["mae"], "rmse": errors["rmse"]}
        return None


def _class_scores(frame: Frame, have: np.ndarray) -> tuple[np.ndarray, list[str]] | None:
    """(scores [n, k], class labels) of the rows in `have`, from a list or ZipMap probability
    output: its NAME_CLASS columns (CLASS the index of a list, the key of a map)."""
    for name in _PROBS:
        prefix = f"{name}_"
        classes = sorted((c[len(prefix):] for c in frame.columns if c.startswith(prefix)), key=label_order)
        if classes:
            parts = [frame.columns[prefix + c][have] for c in classes]
            if any(p.dtype == object for p in parts):  # a missing or text score among numbers
                parts = [p.astype(object) for p in parts]
            return _floats(np.column_stack(parts)), classes
    return None


def _floats(values: np.ndarray) -> np.ndarray:
    """Numbers as floats; anything else (a missing or text score) NaN, which the AUC leaves out."""
    if values.dtype != object:
        return values.astype(np.float64)
    flat = [float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else np.nan for v in values.ravel()]
    return np.array(flat, dtype=np.float64).reshape(values.shape)


def _is_discrete(values: np.ndarray) -> bool:
    if values.dtype.kind == "f":
        finite = values[np.isfinite(values)]
        return bool(len(finite)) and bool(np.all(finite == np.floor(finite)))
    return True


class Operations:
    """Request counts, error rate and latency percentiles."""

    def __init__(self) -> None:
        self.requests = 0
        self.errors = 0
        self.latency = NumericSketch()

    def add(self, frame: Frame, mask: np.ndarray) -> None:
        self.requests += int(mask.sum())
        status = frame.meta.get("status")
        if status is not None:
            self.errors += int(error_mask(status[mask]).sum())  # predlog's one definition of an error
        latency = frame.meta.get("latency_ms")
        if latency is not None and latency.dtype.kind == "f":
            values = latency[mask]
            self.latency.add(values[np.isfinite(values)])

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"requests": self.requests,
                               "error_rate": self.errors / self.requests if self.requests else 0.0}
        values, weights = self.latency.weighted()
        if len(values):
            cumulative = np.cumsum(weights) / weights.sum()
            out["latency_ms"] = {f"p{q}": float(values[min(np.searchsorted(cumulative, q / 100), len(values) - 1)])
                                 for q in (50, 95, 99)}
        return out
