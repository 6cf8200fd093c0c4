"""`mlship check` end to end through the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests import models
from tests.support import EXAMPLE, MODEL, SAMPLE, run


@pytest.fixture(scope="module")
def other_classifier(tmp_path_factory):
    return models.logistic_classifier(tmp_path_factory.mktemp("m") / "logreg.onnx")


def test_json_report_has_signature_digest_and_latency():
    result = run("check", str(MODEL), "--json")
    assert result.code == 0, result.stderr
    doc = result.json()
    assert doc["model"]["sha256"] == __import__("hashlib").sha256(MODEL.read_bytes()).hexdigest()
    assert doc["signature"]["inputs"] == [{"name": "X", "dtype": "float32", "shape": [None, 30], "type": "tensor(float)"}]
    assert [o["name"] for o in doc["signature"]["outputs"]] == ["label", "probabilities"]
    assert doc["smoke"]["source"] == "generated" and doc["smoke"]["rows"] == 8
    batch1, batch64 = doc["latency"]
    assert batch1["batch_size"] == 1 and batch64["batch_size"] == 64
    assert 0 < batch1["p50_ms"] <= batch1["p95_ms"] <= batch1["p99_ms"]
    assert batch64["rows_per_s"] > batch1["rows_per_s"]
    assert doc["runtime"]["max_opsets"]["ai.onnx"] >= 17
    assert doc["passed"] is True
    assert {c["name"] for c in doc["checks"]} >= {"onnx checker", "shape inference", "runtime support", "smoke run"}


def test_labels_give_accuracy_and_f1_matching_scikit_learn():
    from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score, roc_auc_score

    result = run("check", str(MODEL), "--sample", str(SAMPLE), "--labels", "label", "--json")
    assert result.code == 0, result.stderr
    quality = result.json()["quality"]
    assert quality["task"] == "classification" and quality["rows"] == 171

    import onnxruntime as ort

    X, y, _ = models.sample_matrix()
    label, probs = ort.InferenceSession(str(MODEL)).run(None, {"X": X})
    m = quality["metrics"]
    assert m["accuracy"] == pytest.approx(accuracy_score(y, label), abs=1e-6)
    assert m["f1"] == pytest.approx(f1_score(y, label), abs=1e-6)
    assert m["precision"] == pytest.approx(precision_score(y, label), abs=1e-6)
    assert m["recall"] == pytest.approx(recall_score(y, label), abs=1e-6)
    assert m["roc_auc"] == pytest.approx(roc_auc_score(y, probs[:, 1]), abs=1e-6)


def test_quality_floor_fails_with_exit_4_after_printing_the_report():
    result = run("check", str(MODEL), "-s", str(SAMPLE), "-l", "label", "--min-metric", "accuracy=0.99",
                 "--min-metric", "f1=0.5", "--json")
    assert result.code == 4
    doc = result.json()
    assert doc["passed"] is False
    statuses = {c["name"]: c["status"] for c in doc["checks"]}
    assert statuses["quality: accuracy"] == "fail" and statuses["quality: f1"] == "pass"
    assert "accuracy" in result.stderr and result.stderr.count("\n") == 1


def test_human_output_shows_tables_and_verdict():
    result = run("check", str(MODEL), "-s", str(SAMPLE), "-l", "label")
    assert result.code == 0
    for text in ("sha256", "Signature", "probabilities", "Latency", "p99 ms", "accuracy", "PASSED"):
        assert text in result.stdout


def test_wrong_direction_or_unknown_metric_is_a_usage_error():
    assert run("check", str(MODEL), "-s", str(SAMPLE), "-l", "label", "--min-metric", "rmse=1").code == 2
    bad = run("check", str(MODEL), "-s", str(SAMPLE), "-l", "label", "--min-metric", "auc=0.5")
    assert bad.code == 2 and "unknown metric 'auc'" in bad.stderr
    assert run("check", str(MODEL), "--min-metric", "accuracy").code == 2
    assert run("check", str(MODEL), "--min-metric", "accuracy=0.5").code == 2  # no labels


def test_labels_from_a_separate_file_with_an_npy_sample(tmp_path):
    labels = tmp_path / "labels.csv"
    _, y, _ = models.sample_matrix()
    labels.write_text("label\n" + "\n".join(str(v) for v in y) + "\n")
    result = run("check", str(MODEL), "-s", str(EXAMPLE / "sample-features.npy"), "-l", str(labels), "--json")
    assert result.code == 0, result.stderr
    assert result.json()["quality"]["metrics"]["accuracy"] > 0.9


def test_label_count_mismatch_is_invalid_input(tmp_path):
    labels = tmp_path / "labels.csv"
    labels.write_text("label\n1\n0\n")
    result = run("check", str(MODEL), "-s", str(SAMPLE), "-l", str(labels))
    assert result.code == 3 and "2 labels for 171 predicted rows" in result.stderr


def test_sample_with_a_missing_column_names_it(tmp_path):
    lines = SAMPLE.read_text().splitlines()
    bad = tmp_path / "sample.csv"
    bad.write_text("\n".join(",".join(line.split(",")[1:]) for line in lines) + "\n")
    result = run("check", str(MODEL), "--sample", str(bad))
    assert result.code == 3
    assert "missing column 'mean_radius'" in result.stderr and str(bad) in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


def test_sample_with_a_bad_value_names_column_and_row(tmp_path):
    lines = SAMPLE.read_text().splitlines()
    cells = lines[5].split(",")
    cells[2] = "n/a"
    lines[5] = ",".join(cells)
    bad = tmp_path / "sample.csv"
    bad.write_text("\n".join(lines) + "\n")
    result = run("check", str(MODEL), "--sample", str(bad))
    assert result.code == 3
    assert "column 'mean_perimeter' row 5: cannot convert 'n/a' to float32" in result.stderr


def test_jsonl_sample_with_named_features(tmp_path):
    X, _, names = models.sample_matrix()
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps(dict(zip(names, map(float, row)))) + "\n" for row in X[:10]))
    result = run("check", str(MODEL), "--sample", str(path), "--json")
    assert result.code == 0, result.stderr
    assert result.json()["smoke"]["rows"] == 10


def test_baseline_identical_model_passes():
    result = run("check", str(MODEL), "--baseline", str(MODEL), "-s", str(SAMPLE), "--json")
    assert result.code == 0
    base = result.json()["baseline"]
    assert base["max_abs_diff"] == {"label": 0.0, "probabilities": 0.0}
    assert base["label_agreement"] == 1.0 and base["signature_changes"] == []


def test_baseline_different_model_fails_past_tolerance(other_classifier):
    result = run("check", str(MODEL), "--baseline", str(other_classifier), "-s", str(SAMPLE), "--json")
    assert result.code == 4
    base = result.json()["baseline"]
    assert base["max_abs_diff"]["probabilities"] > 0.01
    assert 0.8 < base["label_agreement"] < 1.0
    loose = run("check", str(MODEL), "--baseline", str(other_classifier), "-s", str(SAMPLE), "--tolerance", "1",
                "--min-agreement", "0.8")
    assert loose.code == 0, loose.stderr
    strict = run("check", str(MODEL), "--baseline", str(other_classifier), "-s", str(SAMPLE), "--tolerance", "1",
                 "--min-agreement", "0.999", "--json")
    assert strict.code == 4
    assert {c["name"]: c["status"] for c in strict.json()["checks"]}["baseline labels"] == "fail"


def test_baseline_with_another_signature_reports_the_change(tmp_path):
    regressor, _, _ = models.linear_regressor(tmp_path / "reg.onnx")
    result = run("check", str(MODEL), "--baseline", str(regressor), "--json")
    assert result.code == 4
    changes = result.json()["baseline"]["signature_changes"]
    assert "input 'X' changed from float32[?, 2] to float32[?, 30]" in changes
    assert "output 'variable' removed" in changes


def test_regressor_metrics(tmp_path):
    path, X, y = models.linear_regressor(tmp_path / "reg.onnx")
    sample = tmp_path / "s.csv"
    sample.write_text("a,b,y\n" + "".join(f"{a},{b},{t + 0.5}\n" for (a, b), t in zip(X, y)))
    result = run("check", str(path), "-s", str(sample), "-l", "y", "--max-metric", "mae=0.6", "--json")
    assert result.code == 0, result.stderr
    metrics = result.json()["quality"]["metrics"]
    assert result.json()["quality"]["task"] == "regression"
    assert metrics["mae"] == pytest.approx(0.5, abs=1e-3) and metrics["rmse"] == pytest.approx(0.5, abs=1e-3)
    assert run("check", str(path), "-s", str(sample), "-l", "y", "--max-metric", "mae=0.4").code == 4


def test_generated_inputs_respect_dtypes_and_named_inputs(tmp_path):
    path = models.mixed_inputs(tmp_path / "mixed.onnx")
    result = run("check", str(path), "--json")
    assert result.code == 0, result.stderr
    doc = result.json()
    assert {i["name"]: i["dtype"] for i in doc["signature"]["inputs"]} == {
        "age": "int64", "city": "string", "score": "float32"}
    assert doc["signature"]["inputs"][0]["shape"] == ["N", 1]
    sample = tmp_path / "s.csv"
    sample.write_text("age,city,score\n30,Oslo,0.5\n41,Rome,1.5\n")
    named = run("check", str(path), "-s", str(sample), "--json")
    out = next(o for o in named.json()["smoke"]["outputs"] if o["name"] == "out")
    assert out["sample"] == [[30.5], [42.5]]
    sample.write_text("age,city,score\n30,Oslo,0.5\n,Rome,1.5\n")
    missing = run("check", str(path), "-s", str(sample))
    assert missing.code == 3 and "column 'age' row 2: missing value, but the input is int64" in missing.stderr


def test_fixed_batch_model_skips_the_large_batch(tmp_path):
    result = run("check", str(models.fixed_batch(tmp_path / "f.onnx")), "--json")
    assert result.code == 0, result.stderr
    assert [s["batch_size"] for s in result.json()["latency"]] == [1]


def test_non_finite_outputs_on_real_data_fail(tmp_path):
    path = models.log_of_input(tmp_path / "log.onnx")
    sample = tmp_path / "s.npy"
    np.save(sample, np.array([[1.0, 2.0], [-1.0, 3.0]], dtype=np.float32))
    result = run("check", str(path), "-s", str(sample), "--json")
    assert result.code == 4
    smoke = next(c for c in result.json()["checks"] if c["name"] == "smoke run")
    assert smoke["status"] == "fail" and "1 NaN/inf" in smoke["detail"]


def test_latency_ceiling(tmp_path):
    result = run("check", str(MODEL), "--max-p99-ms", "0.000001", "--json")
    assert result.code == 4
    item = next(c for c in result.json()["checks"] if c["name"] == "latency")
    assert item["status"] == "fail"
    assert run("check", str(MODEL), "--max-p99-ms", "10000").code == 0


def test_npy_with_wrong_width_is_invalid_input(tmp_path):
    sample = tmp_path / "s.npy"
    np.save(sample, np.ones((3, 29), dtype=np.float32))
    result = run("check", str(MODEL), "-s", str(sample))
    assert result.code == 3 and "expects 30 values on axis 1, the data gives 29" in result.stderr


def test_opset_newer_than_onnxruntime_is_named(tmp_path):
    from onnx import TensorProto, helper, save_model

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 500)])
    model.ir_version = 10
    save_model(model, tmp_path / "new.onnx")
    result = run("check", str(tmp_path / "new.onnx"))
    assert result.code == 3
    assert "opset ai.onnx 500 is newer than onnxruntime" in result.stderr
    assert result.stderr.count("\n") == 1


def test_missing_optional_dependency_names_the_extra(tmp_path, monkeypatch):
    import sys

    sample = tmp_path / "s.parquet"
    sample.write_bytes(b"PAR1")
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # as if not installed
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    result = run("check", str(MODEL), "--sample", str(sample))
    assert result.code == 2
    assert "pip install 'mlship[parquet]'" in result.stderr and "pyarrow" in result.stderr


@pytest.mark.parametrize("shape, task", [([None, 2], "classification"), (["batch", 3], "classification"),
                                         ([None, 1], "regression"), ([None], "regression"),
                                         ([None, "k"], "regression"), (None, "regression")])
def test_class_scores_without_a_label_output_are_a_classifier(shape, task):
    """A network exported from torch answers class scores only (float [N, k]); k >= 2 known
    columns is a classifier, one value per row (or an unknown width) a regressor."""
    from mlship.model.quality import infer_task
    from mlship.model.signature import Signature, TensorSpec

    out = TensorSpec(name="probabilities", dtype="float32", shape=shape, type="tensor(float)")
    x = TensorSpec(name="x", dtype="float32", shape=[None, 4], type="tensor(float)")
    assert infer_task(Signature(inputs=[x], outputs=[out])) == task
