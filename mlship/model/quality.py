"""Quality metrics against labels, computed with NumPy and SciPy only."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from mlship.errors import InvalidInputError
from mlship.model.signature import Signature

Task = Literal["classification", "regression"]

# Metrics where larger is better; the others (mae, rmse) are smaller-is-better.
HIGHER_IS_BETTER = {"accuracy", "precision", "recall", "f1", "roc_auc", "r2"}
LOWER_IS_BETTER = {"mae", "rmse"}


def infer_task(signature: Signature) -> Task:
    """A model with an integer or string output is a classifier."""
    for spec in signature.outputs:
        if spec.dtype and (spec.dtype.startswith(("int", "uint")) or spec.dtype == "string"):
            return "classification"
        if spec.type.startswith("seq(map"):
            return "classification"
    return "regression"


def predictions(outputs: dict[str, Any], signature: Signature, task: Task) -> tuple[np.ndarray, np.ndarray | None]:
    """(predicted labels or values, positive-class scores for binary classifiers)."""
    tensors = {s.name: np.asarray(outputs[s.name]) for s in signature.outputs if s.is_tensor}
    if task == "regression":
        floats = [v for v in tensors.values() if v.dtype.kind == "f"]
        if not floats:
            raise InvalidInputError("the model has no numeric output to score as a regressor")
        return floats[0].reshape(len(floats[0]), -1)[:, 0], None
    labels = next((v for v in tensors.values() if v.dtype.kind in "iuUSO" and v.ndim == 1), None)
    probs = next((v for v in tensors.values() if v.dtype.kind == "f" and v.ndim == 2), None)
    if labels is None and probs is None:
        raise InvalidInputError("the model has no label or probability output to score as a classifier")
    if labels is None:
        labels = probs.argmax(axis=1) if probs.shape[1] > 1 else (probs[:, 0] >= 0.5).astype(np.int64)
    score = None
    if probs is not None and probs.shape[1] in (1, 2):
        score = probs[:, -1]
    return labels, score


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray, score: np.ndarray | None) -> dict[str, float]:
    """Accuracy, precision, recall, F1 (binary: positive = the larger label;
    multiclass: macro average), ROC AUC for binary with scores."""
    y_true, y_pred = _same_kind(y_true, y_pred)
    classes = np.unique(np.concatenate([y_true, y_pred]))
    metrics = {"accuracy": float(np.mean(y_true == y_pred))}
    positives = classes[-1:] if len(classes) <= 2 else classes
    per_class = [_prf(y_true == c, y_pred == c) for c in positives]
    for i, name in enumerate(("precision", "recall", "f1")):
        metrics[name] = float(np.mean([p[i] for p in per_class]))
    if score is not None and len(np.unique(y_true)) == 2:
        metrics["roc_auc"] = roc_auc(y_true == np.unique(y_true)[-1], score)
    return {k: round(v, 6) for k, v in metrics.items()}


def _prf(truth: np.ndarray, pred: np.ndarray) -> tuple[float, float, float]:
    tp = float(np.sum(truth & pred))
    precision = tp / max(float(np.sum(pred)), 1.0)
    recall = tp / max(float(np.sum(truth)), 1.0)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def roc_auc(positive: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve via the Mann-Whitney U statistic (ties count half)."""
    from scipy.stats import rankdata

    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    ranks = rankdata(score)
    u = ranks[positive].sum() - n_pos * (n_pos + 1) / 2
    return float(u / (n_pos * n_neg))


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """MAE, RMSE and R²."""
    y_true = y_true.astype(np.float64)
    err = y_pred.astype(np.float64) - y_true
    ss_tot = float(np.sum((y_true - y_true.mean()) ** 2))
    metrics = {
        "mae": float(np.mean(np.abs(err))),
        "rmse": float(np.sqrt(np.mean(err**2))),
        "r2": 1.0 - float(np.sum(err**2)) / ss_tot if ss_tot else 0.0,
    }
    return {k: round(v, 6) for k, v in metrics.items()}


def _same_kind(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Compare labels as numbers when both are numeric, else as text."""
    if y_true.dtype.kind in "iuf" and y_pred.dtype.kind in "iuf":
        return y_true.astype(np.float64), y_pred.astype(np.float64)
    return y_true.astype(str), y_pred.astype(str)
