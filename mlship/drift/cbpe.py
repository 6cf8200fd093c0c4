"""Performance without labels: confidence-based performance estimation (CBPE), as NannyML.

A binary classifier's probabilities, once calibrated, say how likely each
prediction is right: with p the calibrated probability of the positive class
and ŷ the predicted class, a row adds p·ŷ to the expected true positives,
(1-p)·ŷ to the false positives, p·(1-ŷ) to the false negatives and
(1-p)·(1-ŷ) to the true negatives. Accuracy, precision, recall and F1 follow
from the expected confusion matrix; the expected ROC AUC ranks rows by their
score and counts p as positive mass and 1-p as negative mass. Calibration is
isotonic regression of the labels on the scores, fitted on the labelled
reference.

Sampling-error bands come from the reference's own chunks: the standard
deviation of each realized metric across chunks, scaled to a window's row
count (± 3 of them around the estimate); an estimate outside the reference's
range (the chunks' mean ± 3 standard deviations, scaled alike) is an alert.
Where labels cover a window (90% of its rows or more), the realized metric
replaces the estimate.
"""

from __future__ import annotations

import math
from typing import Any, Literal, Optional

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from mlship.drift.samples import ALL, LABEL, RowSample, chunk_rows, floats

METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc")
SIGMAS = 3.0
COVERED = 0.9  # labelled share of a window from which realized metrics replace the estimates


class _Part(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MetricEstimate(_Part):
    """One metric of one window: the value shown, its sampling-error band and the reference's range."""

    value: float
    source: Literal["estimated", "realized"]
    estimated: float
    realized: Optional[float] = Field(None, description="On the window's labelled rows, when there are any.")
    lower: float = Field(description="value - 3 sampling errors.")
    upper: float = Field(description="value + 3 sampling errors.")
    alert: bool = Field(description="The value is outside the reference's range for this many rows.")


class EstimatedWindow(_Part):
    label: str
    rows: int
    labelled: int
    metrics: dict[str, MetricEstimate]


class ReferenceRange(_Part):
    """A metric across the reference's chunks."""

    mean: float
    std: float
    lower: float
    upper: float


class EstimatedPerformance(_Part):
    """CBPE: expected classification metrics from calibrated probabilities, per window."""

    method: Literal["CBPE"] = "CBPE"
    calibration: Literal["isotonic", "none"] = Field(
        "isotonic", description="none: the reference's probabilities were calibrated already (isotonic "
        "regression, cross-validated on the reference, did not lower their Brier score).")
    reference_rows: int = Field(description="Labelled reference rows the calibration was fitted on.")
    chunk_rows: int
    chunks: int
    reference: dict[str, ReferenceRange] = Field(description="Each metric's range across the reference chunks "
                                                 "(for chunk_rows rows).")
    overall: Optional[EstimatedWindow] = None
    windows: list[Optional[EstimatedWindow]] = []
    note: Optional[str] = Field(None, description="Why nothing was estimated.")


def estimate_performance(reference: RowSample, current: RowSample, windows: list[tuple[float, str, bool]],
                         min_rows: int) -> EstimatedPerformance | None:
    """CBPE for the current data and each window (key, label, too small); None when the current
    data holds no probabilities."""
    cur = current.rows()
    if "score" not in cur or not np.isfinite(floats(cur["score"])).any():
        return None
    ref = _usable(reference.rows())
    if ref is None or len(ref[0]) < 2 * min_rows or len(np.unique(ref[2])) < 2:
        found = 0 if ref is None else len(ref[0])
        return EstimatedPerformance(reference_rows=found, chunk_rows=0, chunks=0, reference={},
                                    note=f"CBPE needs a reference with probabilities and both labels on "
                                    f"{2 * min_rows} rows or more, found {found}")
    score, pred, truth = ref
    calibrator, method = calibration(score, truth)
    chunk = chunk_rows(current, windows, len(score))
    chunks = [metrics(truth[i:i + chunk], pred[i:i + chunk], score[i:i + chunk])
              for i in range(0, len(score) // chunk * chunk, chunk)]
    spread = {m: _spread([c[m] for c in chunks]) for m in METRICS}
    spread = {m: v for m, v in spread.items() if v is not None}  # undefined in the reference: not shown

    def judge(key: float, label: str) -> EstimatedWindow:
        return _window(current.rows(key), label, calibrator, spread, chunk)

    return EstimatedPerformance(
        method="CBPE", calibration=method, reference_rows=len(score), chunk_rows=chunk, chunks=len(chunks),
        reference={m: ReferenceRange(mean=mu, std=sd, lower=mu - SIGMAS * sd, upper=mu + SIGMAS * sd)
                   for m, (mu, sd) in spread.items()},
        overall=judge(ALL, "all"),
        windows=[None if small else judge(key, label) for key, label, small in windows])


class _Identity:
    @staticmethod
    def predict(score: np.ndarray) -> np.ndarray:
        return score


def calibration(score: np.ndarray, truth: np.ndarray) -> tuple[Any, str]:
    """Isotonic regression of the labels on the scores, when it helps: as NannyML, calibrated
    probabilities are used only if cross-validated calibration lowers the reference's Brier score
    (an isotonic fit overfits where the reference has few rows, at the extremes)."""
    from sklearn.isotonic import IsotonicRegression
    from sklearn.model_selection import KFold

    calibrated = np.empty(len(score))
    for fit, held in KFold(3, shuffle=True, random_state=0).split(score):
        model = IsotonicRegression(y_min=0, y_max=1, out_of_bounds="clip").fit(score[fit], truth[fit])
        calibrated[held] = model.predict(score[held])
    if np.mean((calibrated - truth) ** 2) >= np.mean((np.clip(score, 0, 1) - truth) ** 2):
        return _Identity(), "none"
    return IsotonicRegression(y_min=0, y_max=1, out_of_bounds="clip").fit(score, truth), "isotonic"


def _window(rows: dict[str, np.ndarray], label: str, calibrator, spread: dict[str, tuple[float, float]],
            chunk: int) -> EstimatedWindow:
    score = floats(rows["score"])
    have = np.isfinite(score)
    score = score[have]
    pred = _prediction(rows, have, score)
    truth = _binary(rows[LABEL])[have] if LABEL in rows else np.full(len(score), np.nan)
    estimated = metrics(calibrator.predict(score), pred, score)
    known = np.isfinite(truth)
    realized = metrics(truth[known], pred[known], score[known]) if known.sum() else {}
    covered = known.sum() >= COVERED * len(score)
    scale = math.sqrt(chunk / max(len(score), 1))
    out = {}
    for m in METRICS:
        value = realized[m] if covered else estimated[m]
        if not math.isfinite(value) or not math.isfinite(estimated[m]) or m not in spread:
            continue
        mu, sd = spread[m]
        out[m] = MetricEstimate(
            value=value, source="realized" if covered else "estimated", estimated=estimated[m],
            realized=realized[m] if realized and math.isfinite(realized[m]) else None,
            lower=value - SIGMAS * sd * scale, upper=value + SIGMAS * sd * scale,
            alert=abs(value - mu) > SIGMAS * sd * scale)
    return EstimatedWindow(label=label, rows=len(score), labelled=int(known.sum()), metrics=out)


def _spread(values: list[float]) -> tuple[float, float] | None:
    """Mean and standard deviation of a metric over the reference chunks where it is defined
    (precision has no value in a chunk without predicted positives); None below two chunks."""
    found = [v for v in values if math.isfinite(v)]
    return (float(np.mean(found)), float(np.std(found, ddof=1))) if len(found) >= 2 else None


def metrics(positive: np.ndarray, pred: np.ndarray, score: np.ndarray) -> dict[str, float]:
    """Classification metrics from each row's chance of being positive (a label, 0 or 1, gives
    the realized metrics; a calibrated probability the expected ones)."""
    tp, fp = float((positive * pred).sum()), float(((1 - positive) * pred).sum())
    fn, tn = float((positive * (1 - pred)).sum()), float(((1 - positive) * (1 - pred)).sum())
    n = tp + fp + fn + tn
    return {"accuracy": (tp + tn) / n if n else math.nan,
            "precision": tp / (tp + fp) if tp + fp else math.nan,
            "recall": tp / (tp + fn) if tp + fn else math.nan,
            "f1": 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else math.nan,
            "roc_auc": expected_auc(score, positive)}


def expected_auc(score: np.ndarray, positive: np.ndarray) -> float:
    """ROC AUC with each row's positive mass `positive` and negative mass 1 - positive, rows ranked
    by `score` (tied scores move together: the diagonal step counts half)."""
    if len(score) == 0:
        return math.nan
    order = np.argsort(-score, kind="stable")
    score, positive = score[order], positive[order]
    ends = np.r_[np.flatnonzero(np.diff(score)), len(score) - 1]  # last row of each tied group
    tp, fp = np.cumsum(positive)[ends], np.cumsum(1 - positive)[ends]
    if tp[-1] <= 0 or fp[-1] <= 0:
        return math.nan
    tpr, fpr = np.r_[0, tp / tp[-1]], np.r_[0, fp / fp[-1]]
    return float(np.sum((fpr[1:] - fpr[:-1]) * (tpr[1:] + tpr[:-1]) / 2))


def _usable(rows: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """The reference's (score, prediction, label) on rows with a score and a 0/1 label."""
    if "score" not in rows or LABEL not in rows:
        return None
    score, truth = floats(rows["score"]), _binary(rows[LABEL])
    keep = np.isfinite(score) & np.isfinite(truth)
    return score[keep], _prediction(rows, keep, score[keep]), truth[keep]


def _prediction(rows: dict[str, np.ndarray], keep: np.ndarray, score: np.ndarray) -> np.ndarray:
    if "prediction" in rows:
        pred = _binary(rows["prediction"])[keep]
        return np.where(np.isfinite(pred), pred, (score >= 0.5).astype(float))
    return (score >= 0.5).astype(float)



_TRUE, _FALSE = {"1", "1.0", "true", "yes"}, {"0", "0.0", "false", "no"}


def _binary(values: np.ndarray) -> np.ndarray:
    """0/1 labels or predictions as 0.0/1.0 (anything else: NaN)."""
    if values.dtype.kind in "fiub":
        numbers = values.astype(np.float64)
        return np.where((numbers == 0) | (numbers == 1), numbers, np.nan)
    distinct, inverse = np.unique(values.astype(str), return_inverse=True)
    table = np.array([1.0 if t in _TRUE else 0.0 if t in _FALSE else np.nan
                      for t in (v.strip().lower() for v in distinct.tolist())])
    return table[inverse.ravel()]
