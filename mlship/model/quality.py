"""A model's quality against labels: which task it does, which outputs are its predictions,
and the metrics of one sample (the accumulators are in mlship/metrics.py)."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from mlship.errors import InvalidInputError
from mlship.metrics import (
    HIGHER_IS_BETTER,
    LOWER_IS_BETTER,
    ClassBreakdown,
    Classification,
    OneVsRestAuc,
    Regression,
    RocAuc,
    class_breakdown,
    label_order,
    label_text,
)
from mlship.model.signature import Signature

Task = Literal["classification", "regression"]

__all__ = ["HIGHER_IS_BETTER", "LOWER_IS_BETTER", "Task", "class_labels", "class_scores", "classification_metrics",
           "infer_task", "predictions", "regression_metrics", "sample_quality"]  # the direction sets are check's, kept importable from here


def infer_task(signature: Signature) -> Task:
    """A model with an integer or string output, or a map per row, is a classifier; so is one
    whose first float output gives two or more values per row (class scores, as a network
    exported from torch gives them). One float value per row is a regressor."""
    for spec in signature.outputs:
        if spec.dtype and (spec.dtype.startswith(("int", "uint")) or spec.dtype == "string"):
            return "classification"
        if spec.type.startswith("seq(map"):
            return "classification"
    floats = [s.shape or [] for s in signature.outputs if s.is_tensor and (s.dtype or "").startswith("float")]
    scores = bool(floats) and len(floats[0]) == 2 and isinstance(floats[0][1], int) and floats[0][1] >= 2
    return "classification" if scores else "regression"


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


def class_labels(proto: Any) -> list[str] | None:
    """The class labels a converter wrote into the graph (ai.onnx.ml classifiers and ZipMap), in
    the order of the probability columns; None when the graph does not say."""
    for node in proto.graph.node:
        if node.domain != "ai.onnx.ml":
            continue
        for attr in node.attribute:
            if attr.name in ("classlabels_int64s", "classlabels_ints") and attr.ints:
                return [str(v) for v in attr.ints]
            if attr.name == "classlabels_strings" and attr.strings:
                return [v.decode("utf-8", "replace") for v in attr.strings]
    return None


def class_scores(outputs: dict[str, Any], signature: Signature,
                 labels: list[str] | None = None) -> tuple[np.ndarray, list[str]] | None:
    """(scores [N, k], the k class labels) from a probability matrix (columns named by `labels`
    when they fit, else by their index) or a ZipMap output; None without either."""
    for spec in signature.outputs:
        value = outputs.get(spec.name)
        if spec.is_tensor and isinstance(value, np.ndarray) and value.dtype.kind == "f" and value.ndim == 2 \
                and value.shape[1] >= 2:
            names = labels if labels and len(labels) == value.shape[1] else [str(j) for j in range(value.shape[1])]
            return value.astype(np.float64), names
        if spec.type.startswith("seq(map") and isinstance(value, list) and value and isinstance(value[0], dict):
            names = sorted({label_text(k) for k in value[0]}, key=label_order)
            keys = {label_text(k): k for k in value[0]}
            matrix = np.array([[row.get(keys[n], np.nan) for n in names] for row in value], dtype=np.float64)
            return matrix, names
    return None


def sample_quality(outputs: dict[str, Any], signature: Signature, task: Task, y_true: np.ndarray,
                   labels: list[str] | None = None) -> tuple[dict[str, float], ClassBreakdown | None]:
    """The metrics of a whole sample (rounded to 6 places), and for more than two labels the
    per-class breakdown with one-vs-rest ROC AUC (`roc_auc` is then their macro mean)."""
    y_pred, score = predictions(outputs, signature, task)
    if task == "regression":
        return regression_metrics(y_true, y_pred), None
    counts = Classification()
    counts.update(y_true, y_pred)
    metrics = counts.result()
    scores = class_scores(outputs, signature, labels)
    breakdown = None
    if len(counts.labels()) > 2 and scores is not None:
        ovr = OneVsRestAuc()
        ovr.update(y_true, *scores)
        if (macro := ovr.macro()) is not None:
            metrics["roc_auc"] = macro
        breakdown = class_breakdown(counts, ovr)
    else:
        if score is None and scores is not None and scores[0].shape[1] == 2:
            score = scores[0][:, max(range(2), key=lambda j: label_order(scores[1][j]))]
        if score is not None:
            auc = RocAuc()
            auc.update(y_true, score)
            if (value := auc.result()) is not None:
                metrics["roc_auc"] = value
        breakdown = class_breakdown(counts)
    return {k: round(v, 6) for k, v in metrics.items()}, breakdown


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
