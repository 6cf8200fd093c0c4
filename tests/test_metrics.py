"""mlship.metrics against scikit-learn's definitions, and chunked updates against one update."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import metrics as sk

from mlship.metrics import (
    Classification,
    OneVsRestAuc,
    Regression,
    RocAuc,
    class_breakdown,
    label_order,
    label_text,
    parse_metric_limits,
    worse_by,
)

SETTINGS = settings(max_examples=150, deadline=None)


@st.composite
def labelled(draw, min_size: int = 1) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """(truth, prediction, chunk boundaries) over up to five integer labels."""
    n = draw(st.integers(min_size, 120))
    classes = draw(st.integers(1, 5))
    truth = np.array(draw(st.lists(st.integers(0, classes - 1), min_size=n, max_size=n)))
    pred = np.array(draw(st.lists(st.integers(0, classes - 1), min_size=n, max_size=n)))
    cuts = sorted(draw(st.lists(st.integers(0, n), max_size=4)))
    return truth, pred, cuts


def _chunks(cuts: list[int], *arrays: np.ndarray):
    edges = [0, *cuts, len(arrays[0])]
    for start, end in zip(edges, edges[1:]):
        yield tuple(a[start:end] for a in arrays)


@SETTINGS
@given(labelled())
def test_classification_matches_scikit_learn(case):
    truth, pred, _ = case
    counts = Classification()
    counts.update(truth, pred)
    result = counts.result()
    labels = sorted(set(truth) | set(pred))
    if len(labels) <= 2:  # binary: the larger label is positive
        kwargs = {"labels": labels[-1:], "average": None, "zero_division": 0}
        expected = [sk.precision_score(truth, pred, **kwargs)[0], sk.recall_score(truth, pred, **kwargs)[0],
                    sk.f1_score(truth, pred, **kwargs)[0]]
    else:
        kwargs = {"labels": labels, "average": "macro", "zero_division": 0}
        expected = [sk.precision_score(truth, pred, **kwargs), sk.recall_score(truth, pred, **kwargs),
                    sk.f1_score(truth, pred, **kwargs)]
    assert result["accuracy"] == pytest.approx(sk.accuracy_score(truth, pred), abs=1e-12)
    assert [result["precision"], result["recall"], result["f1"]] == pytest.approx(expected, abs=1e-12)
    assert counts.rows == len(truth)


@SETTINGS
@given(labelled())
def test_chunked_classification_equals_one_update(case):
    truth, pred, cuts = case
    whole, chunked = Classification(), Classification()
    whole.update(truth, pred)
    for t, p in _chunks(cuts, truth, pred):
        chunked.update(t, p)
    assert chunked.result() == whole.result()


def test_labels_are_compared_as_text_and_ordered_numbers_first():
    counts = Classification()
    counts.update([9, 9.0, "9", 10.0], np.array(["9", "9", "9", "9"]))
    assert counts.counts == {("9", "9"): 3, ("10", "9"): 1}
    # "10" is the larger label (by value, not as text): the positive class, never predicted
    assert counts.result() == {"accuracy": 0.75, "precision": 0.0, "recall": 0.0, "f1": 0.0}
    assert sorted(["b", "10", "nan", "9", "a"], key=label_order) == ["9", "10", "nan", "a", "b"]
    assert [label_text(v) for v in (1000.0, 2.5, float("nan"), float("inf"), "x", 3)] == \
        ["1000", "2.5", "nan", "inf", "x", "3"]


@st.composite
def scored(draw) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Binary truth (both classes present) with scores in [0, 1], some tied."""
    n = draw(st.integers(2, 150))
    truth = np.array(draw(st.lists(st.integers(0, 1), min_size=n, max_size=n)))
    truth[:2] = [0, 1]
    decimals = draw(st.sampled_from([1, 2, 6]))
    score = np.round(np.array(draw(st.lists(st.floats(0, 1), min_size=n, max_size=n))), decimals)
    cuts = sorted(draw(st.lists(st.integers(0, n), max_size=4)))
    return truth, score, cuts


@SETTINGS
@given(scored())
def test_exact_roc_auc_matches_scikit_learn_in_any_chunks(case):
    truth, score, cuts = case
    auc = RocAuc()
    for t, s in _chunks(cuts, truth, score):
        auc.update(t, s)
    assert auc.result() == pytest.approx(sk.roc_auc_score(truth, score), abs=1e-12)


@SETTINGS
@given(scored())
def test_binned_roc_auc_is_the_exact_auc_of_the_binned_scores(case):
    truth, score, cuts = case
    auc = RocAuc(bins=100)
    for t, s in _chunks(cuts, truth, score):
        auc.update(t, s)
    assert auc.result() == pytest.approx(sk.roc_auc_score(truth, np.rint(score * 100)), abs=1e-12)


def test_roc_auc_needs_two_classes_and_skips_missing_scores():
    auc = RocAuc()
    auc.update([1, 1], [0.2, 0.9])
    assert auc.result() is None
    auc.update([0, 0, 2], [0.1, np.nan, 0.5])
    assert auc.result() is None  # three truth classes
    two = RocAuc(bins=10)
    two.update(["a", "b", "b"], [0.1, np.nan, 0.7])
    assert two.result() == 1.0


@st.composite
def regression(draw) -> tuple[np.ndarray, np.ndarray, list[int]]:
    n = draw(st.integers(2, 150))
    values = st.floats(-1e3, 1e3, allow_nan=False)
    truth = np.array(draw(st.lists(values, min_size=n, max_size=n)))
    pred = np.array(draw(st.lists(values, min_size=n, max_size=n)))
    cuts = sorted(draw(st.lists(st.integers(0, n), max_size=4)))
    return truth, pred, cuts


@SETTINGS
@given(regression())
def test_regression_matches_scikit_learn_in_any_chunks(case):
    truth, pred, cuts = case
    errors = Regression()
    for t, p in _chunks(cuts, truth, pred):
        errors.update(t, p)
    result = errors.result()
    assert result["mae"] == pytest.approx(sk.mean_absolute_error(truth, pred), rel=1e-9, abs=1e-9)
    assert result["rmse"] == pytest.approx(math.sqrt(sk.mean_squared_error(truth, pred)), rel=1e-9, abs=1e-9)
    if np.ptp(truth) > 1e-3:
        assert result["r2"] == pytest.approx(sk.r2_score(truth, pred), rel=1e-6, abs=1e-6)


def test_r2_is_zero_for_a_constant_truth_and_nothing_before_rows():
    errors = Regression()
    assert errors.result() == {} and Classification().result() == {}
    errors.update([2.0, 2.0], [2.0, 2.0])
    assert errors.result() == {"mae": 0.0, "rmse": 0.0, "r2": 0.0}


@st.composite
def multiclass(draw) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[int]]:
    """(truth over 3 or 4 classes, all present; predictions; score rows summing to 1; chunk boundaries)."""
    k = draw(st.integers(3, 4))
    n = draw(st.integers(k, 120))
    truth = np.array(draw(st.lists(st.integers(0, k - 1), min_size=n, max_size=n)))
    truth[:k] = np.arange(k)
    raw = np.array(draw(st.lists(st.lists(st.floats(0.01, 1), min_size=k, max_size=k), min_size=n, max_size=n)))
    scores = np.round(raw / raw.sum(axis=1, keepdims=True), draw(st.sampled_from([2, 6])))
    cuts = sorted(draw(st.lists(st.integers(0, n), max_size=4)))
    return truth, scores.argmax(axis=1), scores, cuts


@SETTINGS
@given(multiclass())
def test_per_class_confusion_and_one_vs_rest_auc_match_scikit_learn_in_any_chunks(case):
    truth, pred, scores, cuts = case
    k = scores.shape[1]
    counts, ovr = Classification(), OneVsRestAuc()
    for t, p, s in _chunks(cuts, truth, pred, scores):
        counts.update(t, p)
        ovr.update(t, s, [str(j) for j in range(k)])
    breakdown = class_breakdown(counts, ovr, digits=12)
    labels = list(range(k))
    precision, recall, f1, support = sk.precision_recall_fscore_support(truth, pred, labels=labels, zero_division=0)
    got = breakdown.classes
    assert [c.label for c in got] == [str(j) for j in labels]
    assert [c.precision for c in got] == pytest.approx(precision, abs=1e-9)
    assert [c.recall for c in got] == pytest.approx(recall, abs=1e-9)
    assert [c.f1 for c in got] == pytest.approx(f1, abs=1e-9)
    assert [c.support for c in got] == support.tolist()
    per_class = [sk.roc_auc_score(truth == j, scores[:, j]) for j in labels]
    assert [c.roc_auc for c in got] == pytest.approx(per_class, abs=1e-9)
    assert breakdown.confusion.counts == sk.confusion_matrix(truth, pred, labels=labels).tolist()
    assert ovr.macro() == pytest.approx(np.mean(per_class), abs=1e-9)  # scikit-learn's multi_class="ovr" macro
    if np.allclose(scores.sum(axis=1), 1):  # scikit-learn takes only rows of probabilities
        assert ovr.macro() == pytest.approx(sk.roc_auc_score(truth, scores, multi_class="ovr"), abs=1e-9)


@SETTINGS
@given(multiclass())
def test_binned_one_vs_rest_is_the_exact_auc_of_binned_scores(case):
    truth, _, scores, cuts = case
    classes = [str(j) for j in range(scores.shape[1])]
    binned = OneVsRestAuc(bins=100)
    for t, s in _chunks(cuts, truth, scores):
        binned.update(t, s, classes)
    expected = {c: sk.roc_auc_score(truth == j, np.rint(scores[:, j] * 100)) for j, c in enumerate(classes)}
    assert binned.result() == pytest.approx(expected, abs=1e-12)


def test_breakdown_is_for_more_than_two_labels_and_names_text_labels():
    two = Classification()
    two.update([0, 1, 1], [0, 1, 0])
    assert class_breakdown(two) is None
    three = Classification()
    three.update(["cat", "dog", "eel", "dog"], ["cat", "dog", "dog", "cat"])
    breakdown = class_breakdown(three)
    assert breakdown.confusion.labels == ["cat", "dog", "eel"]
    assert breakdown.confusion.counts == [[1, 0, 0], [1, 1, 0], [0, 1, 0]]
    eel = breakdown.classes[2]
    assert (eel.support, eel.precision, eel.recall, eel.f1, eel.roc_auc) == (1, 0.0, 0.0, 0.0, None)
    ovr = OneVsRestAuc()
    ovr.update(["a", "a", "b"], np.array([[0.9, 0.1, 0.0], [0.8, 0.2, 0.0], [0.1, 0.9, 0.0]]), ["a", "b", "c"])
    assert ovr.result() == {"a": 1.0, "b": 1.0}  # no row of class c: no AUC for it
    assert ovr.macro() == 1.0


def test_worse_by_follows_each_metric_direction_and_limits_are_checked():
    assert worse_by("rmse", 1.0, 1.5) == 0.5 and worse_by("accuracy", 0.9, 0.8) == pytest.approx(0.1)
    assert worse_by("r2", 0.5, 0.7) == pytest.approx(-0.2)
    assert parse_metric_limits({"RMSE": "0.5", "f1": 0}, "--max-regression") == {"rmse": 0.5, "f1": 0.0}
    for bad, word in (({"rmsx": 1}, "unknown metric 'rmsx'"), ({"mae": -1}, ">= 0"), ({"mae": "inf"}, ">= 0"),
                      ({"mae": "x"}, "mae=x")):
        with pytest.raises(ValueError, match=word):
            parse_metric_limits(bad, "--max-regression")
