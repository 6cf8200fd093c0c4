"""`mlship drift`: compare current data with a reference, overall and per window.

The reference and every window of current data become profiles (streamed
in chunks, so memory depends on chunk size and columns, not file size);
columns are compared with the statistics in `stats`, judged by the DEFAULTS
table, and the share of drifted columns decides dataset drift.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
from pydantic import BaseModel, Field

from mlship.drift import stats
from mlship.drift.profile import ColumnProfile, Profile, is_profile_file, load_profile
from mlship.drift.sketch import NumericSketch
from mlship.drift.sources import Frame, ReadReport, iter_frames
from mlship.errors import InvalidInputError, UsageError
from mlship.metrics import Classification, Regression, RocAuc, label_text

SCHEMA = "mlship.drift/v1"

# The defaults, documented in the README. Effect sizes decide; p-values
# (Benjamini-Hochberg adjusted within each family of tests) only keep small
# samples from being judged on noise.
DEFAULTS: dict[str, float] = {
    "p_value": 0.05,
    "wasserstein_norm": 0.1,
    "psi": 0.2,
    "js": 0.1,
    "unseen_share": 0.05,
    "missing_delta": 0.05,
    "min_rows": 200,
}


class ColumnRule(BaseModel):
    """A per-column override from mlship.yaml (monitoring.columns)."""

    kind: str | None = None
    threshold: float | None = None
    ignore: bool = False


class DriftOptions(BaseModel):
    reference: str
    current: str
    window: str | None = None
    min_rows: int = Field(int(DEFAULTS["min_rows"]), ge=1)
    drift_share: float = Field(0.5, gt=0, le=1)
    labels: Path | None = None
    strict: bool = False
    chunk_rows: int = Field(50_000, ge=1)
    columns: dict[str, ColumnRule] = Field(default_factory=dict)


@dataclass
class _Group:
    """One window of current data (or all of it)."""

    profile: Profile = field(default_factory=Profile)
    perf: "Performance" = field(default_factory=lambda: Performance())
    ops: "Operations" = field(default_factory=lambda: Operations())
    first_ts: float = math.inf
    last_ts: float = -math.inf


def run_drift(options: DriftOptions, progress: Callable[[int], None] = lambda rows: None) -> dict[str, Any]:
    """The drift report as a JSON-able dict (schema mlship.drift/v1)."""
    read = ReadReport()
    labels = _load_labels(options.labels) if options.labels else None
    reference, ref_perf = _reference(options, read, labels, progress)
    overall, windows, by_version = _current(options, read, labels, progress)
    if overall.profile.rows == 0:
        raise InvalidInputError(f"{options.current}: no rows to compare")
    columns = compare(reference, overall.profile, options)
    drifted = [c["name"] for c in columns if c["drifted"]]
    judged = [c for c in columns if not c.get("insufficient") and not c.get("ignored")]
    share = len(drifted) / len(judged) if judged else 0.0
    return {
        "schema": SCHEMA,
        "reference": {"source": options.reference, "rows": reference.rows},
        "current": {"source": options.current, "rows": overall.profile.rows},
        "thresholds": {**DEFAULTS, "drift_share": options.drift_share, "min_rows": options.min_rows},
        "dataset_drift": bool(judged) and share >= options.drift_share,
        "drifted_share": share,
        "drifted_columns": drifted,
        "columns": columns,
        "windows": [_window_summary(key, group, reference, options) for key, group in windows],
        "performance": {"reference": ref_perf.summary(), "current": overall.perf.summary()},
        "operations": {"overall": overall.ops.summary(),
                       "by_version_variant": [{"version": v, "variant": var, **ops.summary()}
                                              for (v, var), ops in sorted(by_version.items())]},
        "read": {"bad_lines": read.bad_lines, "examples": read.examples, "files": len(read.files)},
    }


def compare(reference: Profile, current: Profile, options: DriftOptions) -> list[dict[str, Any]]:
    """Per-column statistics and verdicts (BH correction across columns)."""
    results = []
    for name in sorted(set(reference.columns) | set(current.columns)):
        rule = options.columns.get(name, ColumnRule())
        ref, cur = reference.columns.get(name), current.columns.get(name)
        result: dict[str, Any] = {"name": name, "role": "output" if name.startswith("outputs.") else "feature",
                                  "drifted": False, "reasons": []}
        if rule.ignore:
            result.update(ignored=True, kind=ref.kind if ref else None)
        elif ref is None or cur is None:
            result.update(kind=(ref or cur).kind, insufficient=True,
                          reasons=[f"only in the {'current data' if ref is None else 'reference'}"])
        else:
            result.update(_column_stats(ref, cur, rule, options))
        results.append(result)
    _judge(results, options)
    return results


def _column_stats(ref: ColumnProfile, cur: ColumnProfile, rule: ColumnRule, options: DriftOptions) -> dict[str, Any]:
    kind = rule.kind or ref.kind
    if kind == "categorical" and not (ref.category_counts() and (cur.category_counts() or not cur.numeric.n)):
        kind = "numeric"
    cur_kind = cur.kind if not (ref.kind == "categorical" and cur.codes is not None) else "categorical"
    out: dict[str, Any] = {
        "kind": kind,
        "type": _type_change(ref, cur, cur_kind),
        "missing": stats.missing_stats(ref, cur),
        "reference_summary": _summary(ref, kind),
        "current_summary": _summary(cur, kind),
    }
    valid = cur.count - cur.missing
    if valid < options.min_rows:
        if not out["type"]["changed"]:
            out["insufficient"] = True
            out["reasons"] = [f"{valid} values, fewer than {options.min_rows}"]
        # else: too few values for statistics, but a type change is a fact, judged on its own (in _judge)
        return out
    if kind == "numeric":
        out["stats"] = stats.numeric_stats(ref, cur)  # {} when one side has no numbers (a type change)
        out["histogram"] = stats.shared_histogram(ref, cur)
    else:
        out["stats"] = stats.categorical_stats(ref, cur)
        out["categories"] = _top_categories(ref, cur)
    out["threshold"] = rule.threshold
    return out


def _type_change(ref: ColumnProfile, cur: ColumnProfile, cur_kind: str) -> dict[str, Any]:
    """Whether the column's values changed type: numbers became text, or text appeared or went.

    A type change is a finding (the column drifts), whatever the sample size.
    """
    ref_values = {"numbers": ref.numeric.n, "text": ref.non_numeric}
    cur_values = {"numbers": cur.numeric.n, "text": cur.non_numeric}
    changed = bool(sum(ref_values.values()) and sum(cur_values.values())) and \
        (ref.non_numeric == 0) != (cur.non_numeric == 0)
    new_text = sorted((c for c in cur.categories if c not in ref.categories), key=lambda c: -cur.categories[c])
    return {"reference": ref.kind, "current": cur_kind, "changed": changed,
            "reference_values": ref_values, "current_values": cur_values,
            "examples": [c[:40] for c in new_text[:3]] if changed and cur.non_numeric else []}


def _type_reason(change: dict[str, Any]) -> str:
    def shape(values: dict[str, int]) -> str:
        return "numbers and text" if values["numbers"] and values["text"] else \
            ("text" if values["text"] else "numbers")

    ref, cur = change["reference_values"], change["current_values"]
    total = cur["numbers"] + cur["text"]
    detail = f"{cur['text']} of {total} values are text" if cur["text"] else f"all {total} values are numbers"
    examples = ", ".join(repr(e) for e in change["examples"])
    return f"type changed: {shape(ref)} -> {shape(cur)} ({detail}{f', e.g. {examples}' if examples else ''})"


def _judge(results: list[dict[str, Any]], options: DriftOptions) -> None:
    judged = [r for r in results if r.get("stats") is not None and not r.get("insufficient")]
    dist_p = [r["stats"].get("ks_p", r["stats"].get("chi2_p", 1.0)) for r in judged]
    miss_p = [r["missing"]["p"] for r in judged]
    for r, p_dist, p_miss in zip(judged, stats.benjamini_hochberg(dist_p), stats.benjamini_hochberg(miss_p)):
        s, reasons = r["stats"], []
        significant = p_dist < DEFAULTS["p_value"]
        limit = r.get("threshold")
        # Keyed on the statistics present: after a type change one side may have none to compare.
        if "wasserstein_norm" in s:
            wd_limit = limit if limit is not None else DEFAULTS["wasserstein_norm"]
            r["effect"] = s["wasserstein_norm"]
            if significant and s["wasserstein_norm"] >= wd_limit:
                reasons.append(f"distribution moved: Wasserstein {s['wasserstein_norm']:.3f} std (>= {wd_limit:g})")
            elif significant and limit is None and s["psi"] >= DEFAULTS["psi"]:
                reasons.append(f"distribution moved: PSI {s['psi']:.3f} (>= {DEFAULTS['psi']:g})")
        elif "js" in s:
            js_limit = limit if limit is not None else DEFAULTS["js"]
            r["effect"] = s["js"]
            if significant and s["js"] >= js_limit:
                reasons.append(f"categories moved: Jensen-Shannon {s['js']:.3f} (>= {js_limit:g})")
            elif significant and s["unseen_share"] >= DEFAULTS["unseen_share"]:
                reasons.append(f"new categories: {s['unseen_share']:.1%} of values unseen in the reference")
        s["p_adj"] = p_dist
        r["missing"]["p_adj"] = p_miss
        if p_miss < DEFAULTS["p_value"] and abs(r["missing"]["delta"]) >= DEFAULTS["missing_delta"]:
            reasons.append(f"missing values {r['missing']['reference']:.1%} -> {r['missing']['current']:.1%}")
        r["reasons"] = reasons
    for r in results:
        if (r.get("type") or {}).get("changed") and not r.get("insufficient") and not r.get("ignored"):
            r["reasons"] = [*r["reasons"], _type_reason(r["type"])]
        r["drifted"] = bool(r["reasons"]) and not r.get("insufficient") and not r.get("ignored")


def _summary(col: ColumnProfile, kind: str) -> dict[str, Any]:
    summary = {"count": col.count, "missing": col.missing}
    if col.numeric.n:
        summary.update(mean=col.numeric.mean, std=col.numeric.std, min=col.numeric.min, max=col.numeric.max)
    if kind == "categorical":
        summary["distinct"] = len(col.category_counts())
    return summary


def _top_categories(ref: ColumnProfile, cur: ColumnProfile, k: int = 12) -> dict[str, Any]:
    rc, cc = ref.category_counts(), cur.category_counts()
    rt, ct = sum(rc.values()) or 1, sum(cc.values()) or 1
    names = sorted(set(rc) | set(cc), key=lambda c: -(rc.get(c, 0) / rt + cc.get(c, 0) / ct))[:k]
    return {"names": names, "reference": [rc.get(c, 0) / rt for c in names],
            "current": [cc.get(c, 0) / ct for c in names]}


# -- reading -------------------------------------------------------------------


def _reference(options: DriftOptions, read: ReadReport, labels: dict[str, Any] | None,
               progress: Callable[[int], None]) -> tuple[Profile, "Performance"]:
    perf = Performance()
    if is_profile_file(options.reference):
        return load_profile(Path(options.reference)), perf
    profile = Profile()
    for frame in iter_frames(options.reference, chunk_rows=options.chunk_rows, strict=options.strict, report=read):
        ok = _ok_rows(frame)
        profile.add_frame(_rows(frame.columns, ok), int(ok.sum()))
        perf.add(frame, ok, labels)
        progress(frame.rows)
    if profile.rows == 0:
        raise InvalidInputError(f"{options.reference}: no rows in the reference")
    return profile, perf


def _current(options: DriftOptions, read: ReadReport, labels: dict[str, Any] | None,
             progress: Callable[[int], None]):
    size, unit = parse_window(options.window)
    overall, windows = _Group(), {}
    by_version: dict[tuple[str, str], Operations] = {}
    seen = 0
    for frame in iter_frames(options.current, chunk_rows=options.chunk_rows, strict=options.strict, report=read):
        ok = _ok_rows(frame)
        overall.profile.add_frame(_rows(frame.columns, ok), int(ok.sum()))
        overall.perf.add(frame, ok, labels)
        overall.ops.add(frame, np.ones(frame.rows, dtype=bool))
        _by_version(frame, by_version)
        if size:
            keys = _window_keys(frame, size, unit, seen, options)
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
        raise UsageError(f"--window {options.window}: time windows need records with a 'ts' (prediction logs)",
                         hint="Use a row window such as --window 5000rows")
    return np.floor(frame.ts / size) * size  # a record without a time (NaN) joins no window


def _window_summary(key: tuple[float, float, str], group: _Group, reference: Profile,
                    options: DriftOptions) -> dict[str, Any]:
    start, size, unit = key
    rows = group.profile.rows
    summary: dict[str, Any] = {"rows": rows, "performance": group.perf.summary(), "operations": group.ops.summary()}
    if unit == "rows":
        summary.update(start_row=int(start * size), end_row=int(start * size) + rows, label=f"rows {int(start * size):,}+")
    else:
        from datetime import datetime, timezone

        begin = datetime.fromtimestamp(start, tz=timezone.utc)
        summary.update(start=begin.isoformat().replace("+00:00", "Z"),
                       end=datetime.fromtimestamp(start + size, tz=timezone.utc).isoformat().replace("+00:00", "Z"),
                       label=begin.strftime("%Y-%m-%d %H:%M"))
    if rows < options.min_rows:
        summary.update(insufficient=True, dataset_drift=None, drifted_share=None, drifted_columns=[])
        return summary
    columns = compare(reference, group.profile, options)
    judged = [c for c in columns if not c.get("insufficient") and not c.get("ignored")]
    drifted = [c["name"] for c in columns if c["drifted"]]
    share = len(drifted) / len(judged) if judged else 0.0
    summary.update(insufficient=False, dataset_drift=bool(judged) and share >= options.drift_share,
                   drifted_share=share, drifted_columns=drifted,
                   effects={c["name"]: c.get("effect") for c in columns if c.get("effect") is not None})
    return summary


def _ok_rows(frame: Frame) -> np.ndarray:
    """Rows that are predictions (status 200, when the log says)."""
    status = frame.meta.get("status")
    if status is None:
        return np.ones(frame.rows, dtype=bool)
    return np.asarray([s == 200 or s is None for s in status.tolist()], dtype=bool) if status.dtype == object \
        else (status == 200) | np.isnan(status)


def _rows(columns: dict[str, np.ndarray], mask: np.ndarray) -> dict[str, np.ndarray]:
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
    from mlship.data.tables import read_table

    table = read_table(path)
    if "request_id" not in table.columns or "label" not in table.columns:
        raise InvalidInputError(f"{path}: a labels file needs 'request_id' and 'label' columns",
                                hint=f"It has: {', '.join(table.columns)}")
    ids = [label_text(v) for v in table.column("request_id").tolist()]  # 1000.0 from a CSV is id 1000
    return dict(zip(ids, table.column("label").tolist()))


# -- performance and operations ----------------------------------------------------

_PRED = ("outputs.label", "outputs.prediction", "outputs.predicted_label", "outputs.class", "outputs.output_label")
_SCORE = ("outputs.probabilities_1", "outputs.probability_1", "outputs.probability", "outputs.score")
_REGRESSION = ("outputs.variable", "outputs.prediction", "outputs.output", "outputs.value")


class Performance:
    """Quality against labels, accumulated in bounded memory (mlship/metrics.py)."""

    BINS = 1000

    def __init__(self) -> None:
        self.classification = Classification()
        self.roc_auc = RocAuc(bins=self.BINS)
        self.regression = Regression()

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
            score_name = next((n for n in _SCORE if n in frame.columns), None)
            if score_name is not None:
                self.roc_auc.update(truth_have, frame.columns[score_name][have])
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

    def summary(self) -> dict[str, Any] | None:
        if self.classification.rows:
            out = {"task": "classification", "rows": self.classification.rows, **self.classification.result()}
            if (auc := self.roc_auc.result()) is not None:
                out["roc_auc"] = auc
            return out
        if self.regression.rows:
            errors = self.regression.result()
            return {"task": "regression", "rows": self.regression.rows, "mae": errors["mae"], "rmse": errors["rmse"]}
        return None


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
            values = status[mask]
            if values.dtype == object:
                self.errors += sum(1 for s in values.tolist() if s is not None and s != 200)
            else:
                self.errors += int(((values != 200) & ~np.isnan(values)).sum())
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
