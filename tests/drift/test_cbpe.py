"""Performance without labels (CBPE): metrics estimated from calibrated probabilities, with
sampling-error bands, realized metrics where labels arrive; on NannyML's car-loan data the
estimated ROC AUC per chunk is within 0.03 of the realized one."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

from mlship.drift.cbpe import expected_auc, metrics
from mlship.drift.detection import run_drift
from mlship.drift.settings import DriftOptions
from tests.drift.carloan import car_loan
from tests.drift.logs import START, write_log
from tests.support import run


@pytest.mark.parametrize("seed", range(4))
def test_with_labels_as_probabilities_the_metrics_are_the_realized_ones(seed):
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 2, 500).astype(float)
    score = np.round(np.clip(truth * 0.3 + rng.random(500) * 0.7, 0, 1), 1)  # coarse: many ties
    pred = (score >= 0.5).astype(float)
    found = metrics(truth, pred, score)
    assert found["roc_auc"] == pytest.approx(roc_auc_score(truth, score))
    assert found["accuracy"] == pytest.approx(accuracy_score(truth, pred))
    assert found["f1"] == pytest.approx(f1_score(truth, pred))
    assert np.isnan(expected_auc(score, np.ones(500)))  # no negative mass: undefined


def _labels_out(log, labels_file, keep):
    """Move the log's labels into a labels file (only for the request ids `keep` says)."""
    records = [json.loads(line) for line in log.read_text().splitlines()]
    with labels_file.open("w") as fh:
        fh.write("request_id,label\n")
        for r in records:
            label = r.pop("label", None)
            if label is not None and keep(r["request_id"]):
                fh.write(f"{r['request_id']},{label}\n")
    log.write_text("".join(json.dumps(r) + "\n" for r in records))
    return records


@pytest.fixture(scope="module")
def logs(tmp_path_factory):
    """A labelled reference log; current logs of 4 x 1500 rows, the last two of older patients
    (their predictions surer), with labels kept aside."""
    tmp = tmp_path_factory.mktemp("cbpe")
    rng = np.random.default_rng(5)
    ref = tmp / "ref.jsonl"
    write_log(ref, rng, START, 24, 6000, labels=True)
    cur = tmp / "cur.jsonl"
    for day in range(4):
        write_log(cur.with_name(f"day{day}.jsonl"), rng, START, 24, 1500, labels=True,
                  shift={"age": 25.0} if day >= 2 else None)
        cur.open("a").write(cur.with_name(f"day{day}.jsonl").read_text())
    truth = {}
    for r in (json.loads(line) for line in cur.read_text().splitlines()):
        truth[r["request_id"]] = r.get("label")
    early = tmp / "early-labels.csv"
    _labels_out(cur, early, keep=lambda rid: rid.startswith(("day0", "day1")))
    return ref, cur, early, truth


def test_estimates_follow_the_realized_metrics_without_labels(logs):
    ref, cur, _, truth = logs
    doc = run_drift(DriftOptions(reference=str(ref), current=str(cur), window="1500rows")).document()
    est = doc["estimated_performance"]
    assert est["method"] == "CBPE" and est["reference_rows"] == 6000
    assert est["calibration"] == "none"  # the logged probabilities are calibrated (labels drawn from them)
    assert "performance" not in doc["windows"][0] or doc["windows"][0]["performance"] is None
    records = [json.loads(line) for line in cur.read_text().splitlines()]
    for i, window in enumerate(est["windows"]):
        part = records[i * 1500:(i + 1) * 1500]
        y = np.array([truth[r["request_id"]] for r in part])
        p = np.array([r["outputs"]["probabilities"][1] for r in part])
        realized = {"accuracy": accuracy_score(y, p > 0.5), "roc_auc": roc_auc_score(y, p)}
        for name, value in realized.items():
            m = window["metrics"][name]
            assert m["source"] == "estimated" and m["realized"] is None and window["labelled"] == 0
            assert m["lower"] < m["value"] < m["upper"]
            assert abs(m["value"] - value) <= (m["upper"] - m["value"]), (i, name, m, value)
    accuracy = [w["metrics"]["accuracy"]["value"] for w in est["windows"]]
    assert min(accuracy[2:]) > max(accuracy[:2]) + 0.02  # surer predictions: more right
    assert [w["metrics"]["accuracy"]["alert"] for w in est["windows"]] == [False, False, True, True]


def test_realized_metrics_replace_estimates_where_labels_arrive(logs):
    ref, cur, early, _ = logs
    result = run("drift", "-r", str(ref), "-c", str(cur), "-w", "1500rows", "--labels", str(early),
                 "--json-out", "-", "--fail-on", "never")
    assert result.code == 0, result.stderr
    doc = json.loads(result.stdout)
    windows = doc["estimated_performance"]["windows"]
    assert [w["labelled"] for w in windows] == [1500, 1500, 0, 0]
    assert [w["metrics"]["roc_auc"]["source"] for w in windows] == ["realized"] * 2 + ["estimated"] * 2
    for w, summary in zip(windows[:2], doc["windows"][:2]):
        m = w["metrics"]["roc_auc"]
        assert m["value"] == m["realized"] == pytest.approx(summary["performance"]["roc_auc"], abs=2e-3)
        assert abs(m["estimated"] - m["realized"]) < 0.03


def test_without_labelled_reference_or_probabilities_it_says_why(logs, tmp_path):
    ref, cur, _, _ = logs
    unlabelled = tmp_path / "ref.jsonl"
    unlabelled.write_text("".join(json.dumps({k: v for k, v in json.loads(line).items() if k != "label"}) + "\n"
                                  for line in ref.read_text().splitlines()))
    est = run_drift(DriftOptions(reference=str(unlabelled), current=str(cur))).document()["estimated_performance"]
    assert "both labels on 400 rows or more, found 0" in est["note"] and "overall" not in est
    named = run_drift(DriftOptions(reference=str(ref), current=str(cur), performance={"score": "p"})).document()
    assert named["estimated_performance"]["note"] == "monitoring.performance.score: no column 'p' in the current data"
    off = run_drift(DriftOptions(reference=str(ref), current=str(cur), performance={"estimate": False})).document()
    assert "estimated_performance" not in off


def test_a_multiclass_log_is_not_estimated(tmp_path):
    rng = np.random.default_rng(0)
    lines = []
    for i in range(600):
        p = rng.dirichlet([1, 1, 1]).tolist()
        lines.append(json.dumps({"request_id": str(i), "inputs": {"a": float(rng.normal())}, "label": int(np.argmax(p)),
                                 "outputs": {"label": int(np.argmax(p)), "probabilities": p}, "status": 200}))
    (tmp_path / "l.jsonl").write_text("\n".join(lines) + "\n")
    doc = run_drift(DriftOptions(reference=str(tmp_path / "l.jsonl"), current=str(tmp_path / "l.jsonl"))).document()
    assert "estimated_performance" not in doc


@pytest.fixture(scope="module")
def loans(tmp_path_factory):
    return car_loan(tmp_path_factory.mktemp("carloan"))


def test_car_loan_estimated_roc_auc_is_within_003_of_the_realized_per_chunk(loans, tmp_path):
    (tmp_path / "mlship.yaml").write_text(
        "monitoring:\n  performance: {score: y_pred_proba, prediction: y_pred, label: repaid, id: id}\n")
    result = run("--config", str(tmp_path / "mlship.yaml"), "drift", "-r", str(loans["reference"]),
                 "-c", str(loans["analysis"]), "-w", "5000rows", "--json-out", "-", "--fail-on", "never")
    assert result.code == 0, result.stderr
    est = json.loads(result.stdout)["estimated_performance"]
    with loans["analysis"].open() as fh:
        scores = {row["id"]: float(row["y_pred_proba"]) for row in csv.DictReader(fh)}
    with loans["targets"].open() as fh:
        targets = [(scores[row["id"]], int(row["repaid"])) for row in csv.DictReader(fh)]
    assert len(est["windows"]) == 10
    for i, window in enumerate(est["windows"]):
        p, y = np.array(targets[i * 5000:(i + 1) * 5000]).T
        m = window["metrics"]["roc_auc"]
        assert m["source"] == "estimated"
        assert abs(m["estimated"] - roc_auc_score(y, p)) <= 0.03, (i, m["estimated"], roc_auc_score(y, p))
    assert [w["metrics"]["roc_auc"]["alert"] for w in est["windows"]][:5] == [False] * 5
    labelled = tmp_path / "labels.csv"
    with loans["targets"].open() as fh:
        labelled.write_text("request_id,label\n" + "".join(f"{r['id']},{r['repaid']}\n" for r in csv.DictReader(fh)))
    result = run("--config", str(tmp_path / "mlship.yaml"), "drift", "-r", str(loans["reference"]),
                 "-c", str(loans["analysis"]), "-w", "5000rows", "--labels", str(labelled), "--json-out", "-",
                 "--fail-on", "never")
    windows = json.loads(result.stdout)["estimated_performance"]["windows"]
    assert all(w["metrics"]["roc_auc"]["source"] == "realized" and w["labelled"] == 5000 for w in windows)


def test_a_metric_the_reference_chunks_leave_undefined_is_left_out(tmp_path):
    """Precision needs predicted positives: a reference with them in one chunk only has no range
    for it, so no window shows it (and the report holds no NaN)."""
    rng = np.random.default_rng(4)
    lines = []
    for i in range(4000):
        p = float(rng.uniform(0.0, 0.4)) if i >= 300 else float(rng.uniform(0.6, 1.0))
        lines.append(json.dumps({"request_id": str(i), "inputs": {"a": float(rng.normal())},
                                 "label": int(rng.random() < p), "status": 200,
                                 "outputs": {"label": int(p > 0.5), "probabilities": [1 - p, p]}}))
    (tmp_path / "l.jsonl").write_text("\n".join(lines) + "\n")
    doc = run_drift(DriftOptions(reference=str(tmp_path / "l.jsonl"), current=str(tmp_path / "l.jsonl"))).document()
    est = doc["estimated_performance"]
    assert "precision" not in est["reference"] and "precision" not in est["overall"]["metrics"]
    assert "accuracy" in est["overall"]["metrics"]
    json.dumps(doc, allow_nan=False)
