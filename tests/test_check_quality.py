"""`mlship check` judges quality on the sample's labels: regressors and multiclass
classifiers as real converters export them (skl2onnx), the baseline scored on the
same labels, and the --max-regression gate."""

from __future__ import annotations

import math

import numpy as np
import onnxruntime as ort
import pytest
from sklearn import metrics as sk

from tests.models_corpus import NUMERIC, _data, _matrix_sample, _skl, sklearn_multiclass, sklearn_regressor
from tests.support import run

FEATURES = ["--features", ",".join(NUMERIC)]


@pytest.fixture(scope="module")
def regressors(tmp_path_factory):
    """(good, weak, sample): two GradientBoostingRegressors on one sample, the weak one a stump of 3 trees."""
    from sklearn.ensemble import GradientBoostingRegressor

    root = tmp_path_factory.mktemp("reg")
    good = sklearn_regressor(root)
    X, _, _ = _data()
    target = 2 * X[:, 0] - X[:, 3]
    _skl(GradientBoostingRegressor(n_estimators=3, max_depth=1).fit(X, target), X, root / "weak.onnx")
    return good.model, root / "weak.onnx", good.sample


@pytest.fixture(scope="module", params=[True, False], ids=["zipmap", "plain"])
def multiclass(request, tmp_path_factory):
    """(strong, weak, sample) three-class random forests, with or without ZipMap."""
    from sklearn.ensemble import RandomForestClassifier

    root = tmp_path_factory.mktemp("mc")
    strong = sklearn_multiclass(root, zipmap=request.param)
    X, _, y = _data()
    weak = RandomForestClassifier(n_estimators=2, max_depth=1, random_state=3).fit(X, y)
    _skl(weak, X, root / "weak.onnx", **({} if request.param else {"zipmap": False}))
    return strong.model, root / "weak.onnx", strong.sample


def _truth(sample):
    return np.loadtxt(sample, delimiter=",", skiprows=1)[:, -1]


def _ort(model, sample):
    X = np.loadtxt(sample, delimiter=",", skiprows=1)[:, :-1].astype(np.float32)
    return ort.InferenceSession(str(model)).run(None, {"X": X})


def check(model, sample, *args):
    return run("--json", "check", str(model), "-s", str(sample), "-l", "label", *FEATURES, *args)


def test_regressor_quality_against_the_baseline_fails_past_max_regression(regressors):
    good, weak, sample = regressors
    y = _truth(sample)
    good_pred, weak_pred = _ort(good, sample)[0][:, 0], _ort(weak, sample)[0][:, 0]
    result = check(weak, sample, "-b", str(good), "--max-regression", "rmse=0.1", "--max-regression", "mae=5")
    assert result.code == 4, result.stderr
    doc = result.json()
    rmse = {name: math.sqrt(sk.mean_squared_error(y, p)) for name, p in (("good", good_pred), ("weak", weak_pred))}
    assert doc["quality"]["metrics"]["rmse"] == pytest.approx(rmse["weak"], abs=1e-5)
    assert doc["baseline"]["quality"]["rmse"] == pytest.approx(rmse["good"], abs=1e-5)
    assert doc["baseline"]["quality"]["r2"] == pytest.approx(sk.r2_score(y, good_pred), abs=1e-5)
    assert doc["baseline"]["quality_delta"]["rmse"] == pytest.approx(rmse["weak"] - rmse["good"], abs=1e-5)
    status = {c["name"]: c["status"] for c in doc["checks"]}
    assert status["baseline quality: rmse"] == "fail" and status["baseline quality: mae"] == "pass"
    # the outputs differ (a retrained model): with --max-regression that is reported, not gated
    assert status["baseline outputs"] == "pass" and doc["baseline"]["tolerance"] is None
    assert "baseline quality: rmse" in result.stderr and "worse by" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_better_candidate_passes_and_the_terminal_shows_both_models(regressors):
    good, weak, sample = regressors
    result = run("check", str(good), "-s", str(sample), "-l", "label", *FEATURES, "-b", str(weak),
                 "--max-regression", "rmse=0", "--max-regression", "r2=0")
    assert result.code == 0, result.stderr
    assert "Baseline quality on the same labels: mae" in result.stdout and "better by" in result.stdout
    # without --max-regression the output difference is still gated at 1e-4
    plain = check(good, sample, "-b", str(weak))
    assert plain.code == 4 and "baseline outputs" in plain.stderr
    assert {c["name"] for c in plain.json()["checks"]} >= {"baseline quality"}


def test_max_regression_from_mlship_yaml(regressors, tmp_path, monkeypatch):
    good, weak, sample = regressors
    (tmp_path / "mlship.yaml").write_text(f"model: {weak}\nsample: {sample}\nfeatures: {NUMERIC}\n"
                                          f"check: {{labels: label, baseline: {good}, max_regression: {{rmse: 0.5}}}}\n")
    monkeypatch.chdir(tmp_path)
    result = run("--json", "check")
    assert result.code == 4 and "rmse" in result.stderr and "max regression 0.5" in result.stderr
    assert run("--json", "check", "--max-regression", "rmse=2").code == 0  # the flag over the file
    (tmp_path / "mlship.yaml").write_text("check: {max_regression: {rmsx: 0.5}}\n")
    bad = run("check", str(good))
    assert bad.code == 2 and "check.max_regression" in bad.stderr and "rmsx" in bad.stderr


@pytest.mark.parametrize("flag,words", [
    ("rmsx=0.1", ["unknown metric 'rmsx'", "rmse"]),
    ("rmse=-1", ["rmse", ">= 0"]),
    ("rmse=nan", ["rmse", ">= 0"]),
    ("rmse", ["--max-regression", "NAME=NUMBER"]),
    ("rmse=abc", ["--max-regression", "NAME=NUMBER"]),
    ("accuracy=0.1", ["accuracy", "not a metric of both models", "regression"]),
])
def test_a_bad_max_regression_is_exit_2_naming_it(regressors, flag, words):
    good, weak, sample = regressors
    result = run("check", str(weak), "-s", str(sample), "-l", "label", *FEATURES, "-b", str(good),
                 "--max-regression", flag)
    assert result.code == 2, result.stderr
    assert result.stdout == "" and len(result.stderr.strip().splitlines()) == 1
    for word in words:
        assert word in result.stderr


def test_max_regression_needs_a_baseline_and_labels(regressors):
    good, _, sample = regressors
    result = check(good, sample, "--max-regression", "rmse=0.1")
    assert result.code == 2 and "--baseline" in result.stderr and "--labels" in result.stderr


def test_multiclass_per_class_confusion_and_one_vs_rest_auc_match_scikit_learn(multiclass):
    strong, _, sample = multiclass
    y = _truth(sample).astype(np.int64)
    label, probs = _ort(strong, sample)
    if isinstance(probs, list):  # ZipMap: a list of {class: probability}
        probs = np.array([[row[c] for c in sorted(row)] for row in probs])
    result = check(strong, sample)
    assert result.code == 0, result.stderr
    quality = result.json()["quality"]
    classes = quality["classes"]
    precision, recall, f1, support = sk.precision_recall_fscore_support(y, label, labels=[0, 1, 2], zero_division=0)
    aucs = [sk.roc_auc_score(y == c, probs[:, c]) for c in range(3)]
    assert [c["label"] for c in classes["classes"]] == ["0", "1", "2"]
    for c, p, r, f, s, a in zip(classes["classes"], precision, recall, f1, support, aucs):
        assert (c["precision"], c["recall"], c["f1"], c["roc_auc"]) == pytest.approx((p, r, f, a), abs=1e-6)
        assert c["support"] == s
    assert classes["confusion"]["counts"] == sk.confusion_matrix(y, label, labels=[0, 1, 2]).tolist()
    m = quality["metrics"]
    assert m["roc_auc"] == pytest.approx(sk.roc_auc_score(y, probs, multi_class="ovr", average="macro"), abs=1e-6)
    assert m["f1"] == pytest.approx(sk.f1_score(y, label, average="macro"), abs=1e-6)


def test_multiclass_terminal_report_shows_the_tables(multiclass):
    strong, _, sample = multiclass
    result = run("check", str(strong), "-s", str(sample), "-l", "label", *FEATURES)
    assert result.code == 0, result.stderr
    out = result.stdout
    assert "Per class" in out and "roc auc (ovr)" in out and "support" in out
    assert "Confusion matrix (rows: truth, columns: predicted)" in out
    matrix = out.split("Confusion matrix (rows: truth, columns: predicted)")[1].splitlines()
    row = next(line.split() for line in matrix if line.split()[:1] == ["0"])  # truth 0: n00 n01 n02
    assert len(row) == 4 and int(row[1]) > 0


def test_multiclass_accuracy_regression_against_the_baseline(multiclass):
    strong, weak, sample = multiclass
    result = check(weak, sample, "-b", str(strong), "--max-regression", "accuracy=0.05",
                   "--max-regression", "roc_auc=0.5")
    assert result.code == 4, result.stderr
    doc = result.json()
    status = {c["name"]: c["status"] for c in doc["checks"]}
    assert status["baseline quality: accuracy"] == "fail" and status["baseline quality: roc_auc"] == "pass"
    delta = doc["baseline"]["quality_delta"]
    assert delta["accuracy"] == pytest.approx(doc["quality"]["metrics"]["accuracy"]
                                              - doc["baseline"]["quality"]["accuracy"], abs=1e-6)
    assert delta["accuracy"] < -0.05


def test_text_classes_name_the_probability_columns_from_the_graph(tmp_path):
    """A plain (no ZipMap) export of text classes: the probability columns are named by the
    classifier's classlabels_strings, so each class's one-vs-rest AUC is its own column's."""
    from sklearn.linear_model import LogisticRegression

    from tests.models_corpus import _write_csv

    X, _, y = _data()
    names = np.array(["eel", "cat", "dog"], dtype=object)[y]  # not in sorted order: cat, dog, eel
    estimator = LogisticRegression().fit(X, names)
    _skl(estimator, X, tmp_path / "model.onnx", zipmap=False)
    sample = _write_csv(tmp_path / "sample.csv", {**{n: X[:, j] for j, n in enumerate(NUMERIC)}, "label": names})
    result = check(tmp_path / "model.onnx", sample)
    assert result.code == 0, result.stderr
    quality = result.json()["quality"]
    probs = ort.InferenceSession(str(tmp_path / "model.onnx")).run(None, {"X": X})[1]
    expected = {c: sk.roc_auc_score(names == c, probs[:, j]) for j, c in enumerate(estimator.classes_)}
    assert {c["label"]: c["roc_auc"] for c in quality["classes"]["classes"]} == pytest.approx(expected, abs=1e-6)
    assert quality["metrics"]["roc_auc"] == pytest.approx(
        sk.roc_auc_score(names, estimator.predict_proba(X), multi_class="ovr"), abs=1e-4)


def test_a_binary_zipmap_classifier_gets_its_roc_auc(tmp_path):
    """skl2onnx's default binary export (label and ZipMap probabilities): the larger class's score."""
    from tests.models_corpus import sklearn_plain

    corpus = sklearn_plain(tmp_path)
    label, maps = _ort(corpus.model, corpus.sample)
    truth = _truth(corpus.sample)
    result = check(corpus.model, corpus.sample)
    assert result.code == 0, result.stderr
    quality = result.json()["quality"]
    assert quality["classes"] is None  # two labels: no per-class breakdown
    assert quality["metrics"]["roc_auc"] == pytest.approx(sk.roc_auc_score(truth, [m[1] for m in maps]), abs=1e-6)
