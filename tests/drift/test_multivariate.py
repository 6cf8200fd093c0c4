"""Multivariate drift: data reconstruction (PCA) and a domain classifier catch a change in
how features move together that no single column shows; NannyML's car-loan data drifts in
its second half only."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mlship.drift.detection import run_drift
from mlship.drift.html import render_html
from mlship.drift.profile import save_profile
from mlship.drift.render import render_markdown
from mlship.drift.settings import DriftOptions
from tests.drift.carloan import car_loan
from tests.support import run

ROWS = 2000  # per window


def _csv(path, x, y, z, colour):
    lines = ["x,y,z,colour"] + [f"{a:.5f},{b:.5f},{c:.5f},{k}" for a, b, c, k in zip(x, y, z, colour)]
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def _pairs(rng, n, rho):
    """x and y standard normal with correlation rho (the marginals do not depend on rho)."""
    x = rng.normal(size=n)
    y = rho * x + np.sqrt(1 - rho ** 2) * rng.normal(size=n)
    return x, y, rng.normal(size=n), rng.choice(["red", "green", "blue"], n)


@pytest.fixture(scope="module")
def flipped(tmp_path_factory):
    """A reference with corr(x, y) = 0.8; current: 2 windows as before, then 2 with -0.8."""
    tmp = tmp_path_factory.mktemp("flip")
    rng = np.random.default_rng(3)
    ref = _csv(tmp / "ref.csv", *_pairs(rng, 8000, 0.8))
    parts = [_pairs(rng, ROWS, rho) for rho in (0.8, 0.8, -0.8, -0.8)]
    cur = _csv(tmp / "cur.csv", *(np.concatenate(c) for c in zip(*parts)))
    return ref, cur


def _report(ref, cur, **settings):
    return run_drift(DriftOptions(reference=ref, current=cur, window=f"{ROWS}rows", **settings))


def test_a_flipped_correlation_is_flagged_by_both_checks_and_by_no_column(flipped):
    report = _report(*flipped)
    doc = report.document()
    assert doc["drifted_columns"] == [] and all(w["drifted_columns"] == [] for w in doc["windows"])
    mv = doc["multivariate"]
    rec, clf = mv["reconstruction"], mv["classifier"]
    assert rec["columns"] == clf["columns"] == ["colour", "x", "y", "z"]
    assert [w["drifted"] for w in rec["windows"]] == [False, False, True, True]
    assert [w["drifted"] for w in clf["windows"]] == [False, False, True, True]
    for w in rec["windows"][:2]:
        assert w["lower"] <= w["error"] <= w["upper"]
    for w in rec["windows"][2:]:
        assert w["error"] > w["upper"]
    for w in clf["windows"]:
        assert w["threshold"] >= 0.55 and (w["auc"] > w["threshold"]) == w["drifted"]
    assert mv["drifted"] and mv["flagged_by"] == ["reconstruction", "classifier"]
    # Both feed the verdict: the dataset and the last two windows drifted, though no column did.
    assert doc["dataset_drift"] and [w["dataset_drift"] for w in doc["windows"]] == [False, False, True, True]


def test_either_classifier_model_flags_the_flipped_windows_and_says_which_it_is(flipped):
    gaussian = _report(*flipped).document()["multivariate"]["classifier"]
    trees = _report(*flipped, multivariate={"model": "gradient_boosting"}).document()["multivariate"]["classifier"]
    assert gaussian["model"].startswith("Gaussian") and trees["model"] == "HistGradientBoostingClassifier"
    for clf in (gaussian, trees):
        assert [w["drifted"] for w in clf["windows"]] == [False, False, True, True]
    # The flip is a covariance change: the Gaussian model, built for it, separates it more clearly.
    assert min(w["auc"] for w in gaussian["windows"][2:]) > max(w["auc"] for w in trees["windows"][2:]) - 0.05


def test_the_windows_name_the_checks_that_flagged_them(flipped):
    windows = _report(*flipped).document()["windows"]
    assert [w.get("multivariate") for w in windows] == [None, None] + [["reconstruction", "classifier"]] * 2


def test_multivariate_checks_out_of_the_verdict_or_off(flipped):
    shown = _report(*flipped, multivariate={"verdict": False}).document()
    assert not shown["dataset_drift"] and not any(w["dataset_drift"] for w in shown["windows"])
    assert shown["multivariate"]["drifted"] and not shown["multivariate"]["verdict"]
    only = _report(*flipped, multivariate={"checks": ["reconstruction"]}).document()["multivariate"]
    assert "classifier" not in only and only["flagged_by"] == ["reconstruction"]
    off = _report(*flipped, multivariate={"checks": []}).document()
    assert "multivariate" not in off and not off["dataset_drift"]


def test_the_cli_fails_on_dataset_drift_found_by_the_features_together(flipped, tmp_path):
    ref, cur = flipped
    html, md = tmp_path / "r.html", tmp_path / "r.md"
    result = run("drift", "-r", ref, "-c", cur, "-w", f"{ROWS}rows", "--html", str(html), "--markdown", str(md))
    assert result.code == 4
    assert "the features together drifted (reconstruction, classifier)" in result.stdout
    assert "domain classifier AUC" in result.stdout and "windows flagged: 2" in result.stdout
    text = md.read_text()
    assert "| window | reconstruction error (band) |" in text and text.count("| reconstruction, classifier |") == 2
    page = html.read_text()
    assert "Reconstruction error per window" in page and "Domain classifier ROC AUC per window" in page
    assert page.count("<polygon") == 1  # the reconstruction band


def test_a_saved_profile_reference_says_why_there_is_no_multivariate_check(flipped, tmp_path):
    from mlship.drift.detection import build_profile

    ref, cur = flipped
    profile = tmp_path / "ref.json"
    save_profile(build_profile(ref)[0], profile)
    mv = _report(str(profile), cur).document()["multivariate"]
    assert not mv["drifted"] and "saved profile" in mv["note"]
    assert "not checked" in render_markdown(_report(str(profile), cur))


def test_a_small_reference_is_not_judged(tmp_path):
    rng = np.random.default_rng(1)
    ref = _csv(tmp_path / "ref.csv", *_pairs(rng, 300, 0.8))
    cur = _csv(tmp_path / "cur.csv", *_pairs(rng, 600, -0.8))
    mv = run_drift(DriftOptions(reference=ref, current=cur)).document()["multivariate"]
    assert mv["note"] == "multivariate checks need 400 reference rows, found 300" and not mv["drifted"]


def test_identifier_time_and_ignored_columns_stay_out(tmp_path):
    rng = np.random.default_rng(2)
    n = 1500
    lines = ["id,when,a,b,skip"] + [f"{i},2026-01-01 00:{i // 60 % 60:02d}:{i % 60:02d},{rng.normal():.4f},"
                                     f"{rng.normal():.4f},{rng.normal():.4f}" for i in range(n)]
    (tmp_path / "d.csv").write_text("\n".join(lines) + "\n")
    data = str(tmp_path / "d.csv")
    report = run_drift(DriftOptions(reference=data, current=data, columns={"skip": {"ignore": True}}))
    mv = report.document()["multivariate"]
    assert mv["reconstruction"]["columns"] == mv["classifier"]["columns"] == ["a", "b"]
    assert not mv["drifted"] and mv["classifier"]["overall"]["auc"] < 0.55


@pytest.fixture(scope="module")
def loans(tmp_path_factory):
    return car_loan(tmp_path_factory.mktemp("carloan"))


def test_car_loan_multivariate_drift_in_the_second_half_only(loans):
    report = run_drift(DriftOptions(reference=str(loans["reference"]), current=str(loans["analysis"]),
                                    window="5000rows", performance={"score": "y_pred_proba",
                                                                    "prediction": "y_pred"}))
    doc = report.document()
    mv = doc["multivariate"]
    features = ["car_value", "debt_to_income_ratio", "driver_tenure", "loan_length", "repaid_loan_on_prev_car",
                "salary_range", "size_of_downpayment"]
    assert mv["reconstruction"]["columns"] == features  # not id, timestamp, repaid nor the model's outputs
    for check in ("reconstruction", "classifier"):
        assert [w["drifted"] for w in mv[check]["windows"]] == [False] * 5 + [True] * 5, check
    assert [w["dataset_drift"] for w in doc["windows"]] == [False] * 5 + [True] * 5
    assert "Reconstruction error per window" in render_html(report)
    json.dumps(doc)  # plain JSON all through


def test_gradient_boosting_without_scikit_learn_is_a_usage_error_naming_the_setting(flipped):
    """scikit-learn is not one of mlship's dependencies: the default model needs none."""
    import os
    import subprocess
    import sys

    code = ("import sys; sys.modules['sklearn'] = None\n"
            "from mlship.drift.detection import run_drift; from mlship.drift.settings import DriftOptions\n"
            "from mlship.errors import UsageError\n"
            "ref, cur = sys.argv[1:3]\n"
            "print(run_drift(DriftOptions(reference=ref, current=cur)).multivariate.flagged_by)\n"
            "try:\n    run_drift(DriftOptions(reference=ref, current=cur, multivariate={'model': 'gradient_boosting'}))\n"
            "except UsageError as exc:\n    print(type(exc).__name__, exc, '|', exc.hint)\n")
    out = subprocess.run([sys.executable, "-c", code, *flipped], capture_output=True, text=True, env=dict(os.environ),
                         check=True).stdout.splitlines()
    assert out[0] == "['reconstruction', 'classifier']"
    assert out[1].startswith("MissingExtraError monitoring.multivariate.model: gradient_boosting needs scikit-learn")
    assert "model: gaussian" in out[1]
