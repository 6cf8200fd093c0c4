"""int8 edge builds of a regressor (skl2onnx's MLPRegressor: MatMul weights to quantize) are
judged on RMSE/MAE/R² against fp32, on the labels or with fp32's outputs as the truth, and
gated with --max-metric-drop METRIC=DELTA (exit 4)."""

from __future__ import annotations

import math

import numpy as np
import onnxruntime as ort
import pytest

from mlship.bundles.read import unpack_bundle
from tests.models_corpus import NUMERIC, _data, _matrix_sample, _skl
from tests.support import run


@pytest.fixture(scope="module")
def mlp(tmp_path_factory):
    """A small MLP regressor on four named columns, with its sample (label column: the target)."""
    from sklearn.neural_network import MLPRegressor

    root = tmp_path_factory.mktemp("mlp")
    X, _, _ = _data(300)
    target = 2 * X[:, 0] - X[:, 3] + 0.5 * X[:, 1] * X[:, 2]
    _skl(MLPRegressor(hidden_layer_sizes=(32, 32), max_iter=400, random_state=0).fit(X, target), X, root / "model.onnx")
    return root / "model.onnx", _matrix_sample(root, X, target)


def _project(tmp_path, monkeypatch, sample, labels=True):
    text = f"sample: {sample}\nfeatures: {NUMERIC}\n" + ("check: {labels: label}\n" if labels else "")
    (tmp_path / "mlship.yaml").write_text(text)
    monkeypatch.chdir(tmp_path)


def _edge(model, *args):
    return run("--json", "build", "--edge", str(model), "--name", "mlp", "--model-version", "1",
               "--output-dir", "out", "--quantize", "int8", *args)


def _predict(model, sample):
    X = np.loadtxt(sample, delimiter=",", skiprows=1)[:, :-1].astype(np.float32)
    return ort.InferenceSession(str(model)).run(None, {"X": X})[0][:, 0].astype(np.float64)


def test_regressor_metrics_on_the_labels_and_the_gate(mlp, tmp_path, monkeypatch):
    model, sample = mlp
    _project(tmp_path, monkeypatch, sample)
    failed = _edge(model, "--max-metric-drop", "rmse=0.000001")
    assert failed.code == 4
    assert "int8 model's rmse is worse by" in failed.stdout + failed.stderr and "limit 1e-06" in failed.stdout
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())
    result = _edge(model, "--max-metric-drop", "rmse=0.5", "--max-metric-drop", "mae=0.5")
    assert result.code == 0, result.stderr
    q = result.json()["manifest"]["quantization"]
    assert q["applied"] and q["task"] == "regression" and q["truth"] == "labels" and "accuracy_drop" not in q
    truth = np.loadtxt(sample, delimiter=",", skiprows=1)[:, -1]
    int8 = _predict(unpack_bundle(tmp_path / "out" / "mlp-1.mlbundle", tmp_path / "u").model_path, sample)
    fp32 = _predict(model, sample)
    assert q["metrics"]["rmse"] == pytest.approx(math.sqrt(np.mean((int8 - truth) ** 2)), abs=1e-5)
    assert q["metrics_fp32"]["mae"] == pytest.approx(np.mean(np.abs(fp32 - truth)), abs=1e-5)
    assert q["metric_drop"]["rmse"] == pytest.approx(q["metrics"]["rmse"] - q["metrics_fp32"]["rmse"], abs=1e-6)
    assert q["metric_drop"]["r2"] == pytest.approx(q["metrics_fp32"]["r2"] - q["metrics"]["r2"], abs=1e-6)
    assert q["max_abs_diff"] == pytest.approx(np.max(np.abs(int8 - fp32)), abs=1e-6) and q["max_abs_diff"] > 0


def test_without_labels_fp32_outputs_are_the_truth(mlp, tmp_path, monkeypatch):
    model, sample = mlp
    _project(tmp_path, monkeypatch, sample, labels=False)
    result = run("build", "--edge", str(model), "--name", "mlp", "--model-version", "1", "--output-dir", "out",
                 "--quantize", "int8", "--max-metric-drop", "mae=0.000001")
    assert result.code == 4 and "fp32 outputs as the truth" in result.stderr
    result = _edge(model, "--max-metric-drop", "mae=1")
    assert result.code == 0, result.stderr
    q = result.json()["manifest"]["quantization"]
    assert q["truth"] == "fp32" and q["metrics_fp32"]["rmse"] == 0 and q["metrics_fp32"]["r2"] == 1
    int8 = _predict(unpack_bundle(tmp_path / "out" / "mlp-1.mlbundle", tmp_path / "u").model_path, sample)
    assert q["metrics"]["rmse"] == pytest.approx(math.sqrt(np.mean((int8 - _predict(model, sample)) ** 2)), abs=1e-6)


@pytest.mark.parametrize("flag,words", [("accuracy=0.1", ["accuracy", "regression", "rmse"]),
                                        ("rmsx=0.1", ["unknown metric 'rmsx'"]),
                                        ("rmse=-0.1", ["rmse", ">= 0"]),
                                        ("rmse", ["NAME=NUMBER"])])
def test_a_bad_max_metric_drop_is_exit_2_naming_it(mlp, tmp_path, monkeypatch, flag, words):
    model, sample = mlp
    _project(tmp_path, monkeypatch, sample)
    result = run("build", "--edge", str(model), "--name", "mlp", "--model-version", "1", "--output-dir", "out",
                 "--quantize", "int8", "--max-metric-drop", flag)
    assert result.code == 2, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and all(w in result.stderr for w in words)
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_max_metric_drop_from_mlship_yaml(mlp, tmp_path, monkeypatch):
    model, sample = mlp
    _project(tmp_path, monkeypatch, sample)
    with (tmp_path / "mlship.yaml").open("a") as f:
        f.write("build: {edge: {max_metric_drop: {rmse: 0.000001}}}\n")
    result = _edge(model)
    assert result.code == 4 and "rmse" in result.stdout
    (tmp_path / "mlship.yaml").write_text("build: {edge: {max_metric_drop: {rmse: lots}}}\n")
    bad = run("build", "--edge", str(model), "--name", "mlp", "--output-dir", "out")
    assert bad.code == 2 and "build.edge.max_metric_drop" in bad.stderr
