"""A model's quality against labels: which task it does, which outputs are its predictions,
and the metrics of one sample (the accumulators are in mlship/metrics.py)."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from mlship.errors import InvalidInputError
from mlship.metrics import HIGHER_IS_BETTER, LOWER_IS_BETTER, Classification, Regression, RocAuc
from mlship.model.signature import Signature

Task = Literal["classification", "regression"]

__all__ = ["HIGHER_IS_BETTER", "LOWER_IS_BETTER", "Task", "classification_metrics", "infer_task", "predictions",
           "regression_metrics"]  # the direction sets are check's, kept importable from here


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
    """Accuracy, precision, recall, F1 and (with scores, two classes) ROC AUC of a whole sample,
    rounded to 6 places (definitions in mlship/metrics.py)."""
    counts = Classification()
    counts.update(y_true, y_pred)
    metrics = counts.result()
    if score is not None:
        auc = RocAuc()
        auc.update(y_true, score)
        if (value := auc.result()) is not None:
            metrics["roc_auc"] = value
    return {k: round(v, 6) for k, v in metrics.items()}


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """MAE, RMSE and R² of a whole sample, rounded to 6 places."""
    errors = Regression()
    errors.update(y_true, y_pred)
    return {k: round(v, 6) for k, v in errors.result().items()}
