"""Quality metrics against labels, as streaming accumulators.

Each accumulator takes `update(...)` once per chunk and gives `result()` at
the end, so `check` (one chunk, the sample), `drift` (chunks of a log, per
window) and quantization's accuracy comparison share one definition:

- accuracy; precision, recall and F1 with the larger label positive when
  there are at most two labels, else the macro average over all labels
  (docs/commands/check.md); a class never predicted has precision 0.
- ROC AUC for two truth classes (the larger positive): the Mann-Whitney U
  statistic, ties counting half; exact (all scores kept), or over `bins`
  equal bins of [0, 1] in bounded memory.
- per class (`class_breakdown`, for more than two labels): precision, recall,
  F1, support and one-vs-rest ROC AUC (`OneVsRestAuc`: each class's score
  against all other rows; its macro mean is the model's `roc_auc`), and the
  confusion matrix (rows the truth, columns the prediction).
- MAE, RMSE and R² (0 when the truth is constant).
- comparisons (`worse_by`): how much worse a candidate is than a baseline,
  in each metric's bad direction.

Labels are compared as text keys (`label_text`): 1, 1.0 and "1" are one
label. They are ordered numbers first (by value), then other text.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from pydantic import BaseModel, Field

# Metrics where larger is better, and those where smaller is.
HIGHER_IS_BETTER = {"accuracy", "precision", "recall", "f1", "roc_auc", "r2"}
LOWER_IS_BETTER = {"mae", "rmse"}
# What each task reports (the names gates and comparisons may use).
TASK_METRICS = {"classification": ("accuracy", "precision", "recall", "f1", "roc_auc"),
                "regression": ("mae", "rmse", "r2")}


def worse_by(name: str, baseline: float, candidate: float) -> float:
    """How much worse `candidate` is than `baseline` in metric `name` (negative: better)."""
    return candidate - baseline if name in LOWER_IS_BETTER else baseline - candidate


def outputs_close(candidate: Any, reference: Any, *, rtol: float, atol: float) -> bool:
    """numpy.isclose over every element: |candidate - reference| <= atol + rtol * |reference|
    (NaN agrees only with NaN)."""
    a, b = np.asarray(candidate, dtype=np.float64), np.asarray(reference, dtype=np.float64)
    return bool(np.all(np.isclose(a, b, rtol=rtol, atol=atol, equal_nan=True)))


def parse_metric_limits(values: dict[str, Any], where: str) -> dict[str, float]:
    """{METRIC: DELTA} checked: a known metric and a finite DELTA >= 0; a ValueError names the bad one."""
    limits: dict[str, float] = {}
    prefix = f"{where}: " if where else ""
    for name, raw in values.items():
        key = str(name).strip().lower()
        if key not in HIGHER_IS_BETTER | LOWER_IS_BETTER:
            known = ", ".join(sorted(HIGHER_IS_BETTER | LOWER_IS_BETTER))
            raise ValueError(f"{prefix}unknown metric {str(name)[:60]!r} (use one of: {known})")
        try:
            delta = math.nan if isinstance(raw, bool) else float(raw)  # `true` is no delta
        except (TypeError, ValueError, OverflowError):
            delta = math.nan
        if not math.isfinite(delta) or delta < 0:
            raise ValueError(f"{prefix}{key}={str(raw)[:40]}: the delta must be a finite number >= 0")
        if key in limits and limits[key] != delta:
            raise ValueError(f"{prefix}{key} is given twice ({limits[key]:g} and {delta:g}): give it once")
        limits[key] = delta
    return limits


def label_text(value: Any) -> str:
    """The key a label is counted under: a whole float is written as an int (1000.0 -> "1000")."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def label_order(label: str) -> tuple[int, Any]:
    """Sort key for label texts: numbers by value first (then NaN), then other text."""
    try:
        number = float(label)
    except ValueError:
        return 2, label
    return (1, 0.0) if math.isnan(number) else (0, number)


def label_texts(values: Any) -> tuple[list[str], np.ndarray]:
    """(distinct label texts, each value's index into them); one text per distinct value."""
    array = values if isinstance(values, np.ndarray) else _object_array(values)
    if array.dtype == object:
        # Mixed Python values do not sort against each other: make them text first.
        array = np.array([label_text(v) for v in array.tolist()], dtype=object)
    distinct, inverse = np.unique(array, return_inverse=True)
    return [label_text(v) for v in distinct.tolist()], inverse.reshape(-1)


def _object_array(values: Any) -> np.ndarray:
    # np.asarray would turn [1, "a"] into the texts "1" and "a", but [1.0, "a"] into "1.0" and "a".
    array = np.empty(len(values), dtype=object)
    array[:] = list(values)
    return array


class Classification:
    """Accuracy, precision, recall and F1 from confusion counts."""

    def __init__(self) -> None:
        self.counts: dict[tuple[str, str], int] = {}

    @property
    def rows(self) -> int:
        return sum(self.counts.values())

    def update(self, y_true: Any, y_pred: Any) -> None:
        """Count one chunk of (truth, prediction) pairs."""
        truth, t_index = label_texts(y_true)
        pred, p_index = label_texts(y_pred)
        pairs, counts = np.unique(t_index * len(pred) + p_index, return_counts=True)
        for pair, n in zip(pairs.tolist(), counts.tolist()):
            key = (truth[pair // len(pred)], pred[pair % len(pred)])
            self.counts[key] = self.counts.get(key, 0) + n

    def result(self) -> dict[str, float]:
        """accuracy, precision, recall, f1 (empty before any rows)."""
        rows = self.rows
        if not rows:
            return {}
        labels = self.labels()
        correct = sum(n for (t, p), n in self.counts.items() if t == p)
        positives = labels[-1:] if len(labels) <= 2 else labels
        prf = [self._prf(label) for label in positives]
        return {"accuracy": correct / rows, "precision": float(np.mean([x[0] for x in prf])),
                "recall": float(np.mean([x[1] for x in prf])), "f1": float(np.mean([x[2] for x in prf]))}

    def labels(self) -> list[str]:
        """Every label seen as truth or prediction, in label order."""
        return sorted({t for t, _ in self.counts} | {p for _, p in self.counts}, key=label_order)

    def confusion(self) -> "ConfusionMatrix":
        """The confusion matrix over every label: rows the truth, columns the prediction."""
        labels = self.labels()
        return ConfusionMatrix(labels=labels, counts=[[self.counts.get((t, p), 0) for p in labels] for t in labels])

    def per_class(self, label: str) -> tuple[float, float, float, int]:
        """(precision, recall, F1, support) of one label."""
        support = sum(n for (t, _), n in self.counts.items() if t == label)
        return (*self._prf(label), support)

    def _prf(self, label: str) -> tuple[float, float, float]:
        tp = self.counts.get((label, label), 0)
        predicted = sum(n for (_, p), n in self.counts.items() if p == label)
        true = sum(n for (t, _), n in self.counts.items() if t == label)
        precision = tp / predicted if predicted else 0.0
        recall = tp / true if true else 0.0
        return precision, recall, 2 * precision * recall / (precision + recall) if precision + recall else 0.0


class RocAuc:
    """ROC AUC of a positive-class score, exact or (with `bins`) over binned scores in [0, 1]."""

    def __init__(self, bins: int | None = None) -> None:
        self.bins = bins
        self.scores: dict[str, list[np.ndarray]] = {}
        self.histograms: dict[str, np.ndarray] = {}

    def update(self, y_true: Any, score: Any) -> None:
        """Add one chunk of truth labels and their scores (a NaN score is left out)."""
        score = np.asarray(score, dtype=np.float64) if self.bins else np.asarray(score)
        keep = ~np.isnan(score) if score.dtype.kind == "f" else np.ones(len(score), dtype=bool)
        truth, index = label_texts(y_true)
        for i, label in enumerate(truth):
            chosen = score[(index == i) & keep]
            if self.bins:
                counts = np.bincount(np.rint(np.clip(chosen, 0, 1) * self.bins).astype(np.int64),
                                     minlength=self.bins + 1)
                self.histograms[label] = self.histograms.get(label, 0) + counts.astype(np.float64)
            else:
                self.scores.setdefault(label, []).append(chosen)

    def result(self) -> float | None:
        """The AUC, or None unless exactly two truth classes had scores."""
        classes = sorted(self.histograms if self.bins else self.scores, key=label_order)
        if len(classes) != 2:
            return None
        if self.bins:
            neg, pos = (self.histograms[c] for c in classes)
            below = np.cumsum(neg) - neg  # pairs in the same bin count half
            return float((pos * (below + neg / 2)).sum() / (pos.sum() * neg.sum()))
        neg, pos = (np.concatenate(self.scores[c]) for c in classes)
        return roc_auc(np.r_[np.zeros(len(neg), dtype=bool), np.ones(len(pos), dtype=bool)],
                       np.concatenate([neg, pos]))


def roc_auc(y: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC of `scores` for the rows where `y` (bool) holds (Mann-Whitney: ties count half)."""
    _, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    ranks = (np.cumsum(counts) - (counts - 1) / 2.0)[inverse.ravel()]  # average ranks, from 1
    positives, negatives = int(y.sum()), int((~y).sum())
    return float((ranks[y].sum() - positives * (positives + 1) / 2) / (positives * negatives))


class OneVsRestAuc:
    """ROC AUC of each class's score column against all other rows (one-vs-rest), exact or binned."""

    def __init__(self, bins: int | None = None) -> None:
        self.bins = bins
        self.per_class: dict[str, RocAuc] = {}

    def update(self, y_true: Any, scores: np.ndarray, classes: list[str]) -> None:
        """Add one chunk: `scores[:, j]` is the score of `classes[j]` (label texts)."""
        truth, index = label_texts(y_true)
        texts = np.asarray(truth, dtype=object)[index]
        for j, label in enumerate(classes):
            positive = np.where(texts == label, 1, 0)
            self.per_class.setdefault(label, RocAuc(self.bins)).update(positive, scores[:, j])

    def result(self) -> dict[str, float]:
        """Each class's AUC (the classes with rows of both kinds), in label order."""
        values = {label: self.per_class[label].result() for label in sorted(self.per_class, key=label_order)}
        return {label: auc for label, auc in values.items() if auc is not None}

    def macro(self) -> float | None:
        """The unweighted mean over the classes that have an AUC."""
        values = list(self.result().values())
        return float(np.mean(values)) if values else None


class ClassMetrics(BaseModel):
    """One class of a multiclass model."""

    label: str
    support: int = Field(description="Rows whose truth is this class.")
    precision: float
    recall: float
    f1: float
    roc_auc: float | None = Field(None, description="This class's score against all other rows (one-vs-rest).")


class ConfusionMatrix(BaseModel):
    """Counts of (truth, prediction) pairs."""

    labels: list[str]
    counts: list[list[int]] = Field(description="counts[i][j]: rows of truth labels[i] predicted as labels[j].")


class ClassBreakdown(BaseModel):
    """Per-class quality and the confusion matrix of a model with more than two labels."""

    classes: list[ClassMetrics]
    confusion: ConfusionMatrix


def class_breakdown(counts: Classification, auc: OneVsRestAuc | None = None,
                    digits: int = 6) -> ClassBreakdown | None:
    """Per-class precision, recall, F1, support and one-vs-rest AUC; None with two labels or fewer."""
    labels = counts.labels()
    if len(labels) <= 2:
        return None
    aucs = auc.result() if auc else {}
    classes = []
    for label in labels:
        precision, recall, f1, support = counts.per_class(label)
        roc = aucs.get(label)
        classes.append(ClassMetrics(label=label, support=support, precision=round(precision, digits),
                                    recall=round(recall, digits), f1=round(f1, digits),
                                    roc_auc=None if roc is None else round(roc, digits)))
    return ClassBreakdown(classes=classes, confusion=counts.confusion())


class Regression:
    """MAE, RMSE and R² from running sums (Chan et al.'s merge for the truth's spread)."""

    def __init__(self) -> None:
        self.rows = 0
        self.abs_err = 0.0
        self.sq_err = 0.0
        self.mean = 0.0
        self.m2 = 0.0  # sum of squared deviations of the truth from its mean

    def update(self, y_true: Any, y_pred: Any) -> None:
        """Add one chunk of numeric truths and predictions."""
        truth = np.asarray(y_true).astype(np.float64)
        err = np.asarray(y_pred).astype(np.float64) - truth
        n = len(err)
        if not n:
            return
        self.abs_err += float(np.abs(err).sum())
        self.sq_err += float((err**2).sum())
        mean = float(truth.mean())
        m2 = float(np.sum((truth - mean) ** 2))
        total = self.rows + n
        if self.rows:
            delta = mean - self.mean
            m2 += self.m2 + delta**2 * self.rows * n / total
            mean = self.mean + delta * n / total
        self.rows, self.mean, self.m2 = total, mean, m2

    def result(self) -> dict[str, float]:
        """mae, rmse, r2 (empty before any rows)."""
        if not self.rows:
            return {}
        return {"mae": self.abs_err / self.rows, "rmse": math.sqrt(self.sq_err / self.rows),
                "r2": 1.0 - self.sq_err / self.m2 if self.m2 else 0.0}
