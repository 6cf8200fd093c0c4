"""Quality bounds: `check --max-regression` / `check.max_regression`, `build --edge
--max-metric-drop` / `build.edge.max_metric_drop` and `rollout.analysis.rtol/atol`, fed NaN,
infinities, negatives, booleans, duplicates and bounds that could never be judged.

Each was seen to pass silently before the fix (a gate turned off or loosened without a
word, exit 0) or to print pydantic's wording; now each is exit 2 with one line naming
the bound and where it came from, and nothing is built.
"""

from __future__ import annotations

import pytest

from tests.adversarial.files import assert_one_line_error
from tests.models_corpus import NUMERIC, _data, _matrix_sample, _skl
from tests.support import EXAMPLE, MODEL, SAMPLE, run

BASELINE = EXAMPLE / "model-mlp.onnx"
CHECK = ("check", str(MODEL), "--sample", str(SAMPLE), "--labels", "label", "--baseline", str(BASELINE))


@pytest.mark.parametrize("flags,words", [
    # the second value used to win silently: accuracy=0.1 then Accuracy=0.5 checked 0.5
    (["accuracy=0.1", "Accuracy=0.5"], ["--max-regression", "accuracy is given twice", "0.1 and 0.5"]),
    (["accuracy=1e400"], ["accuracy=inf", "finite"]),
    (["accuracy=nan"], ["accuracy=nan", "finite"]),
    (["f1=-0.01"], ["f1=-0.01", ">= 0"]),
])
def test_check_max_regression_flags(tmp_path, monkeypatch, flags, words):
    monkeypatch.chdir(tmp_path)
    result = run(*CHECK, *[arg for flag in flags for arg in ("--max-regression", flag)])
    assert_one_line_error(2, result, *words)


@pytest.mark.parametrize("value,words", [
    ("{accuracy: true}", ["accuracy=True", "finite number >= 0"]),  # was read as a delta of 1
    ("{accuracy: 0.1, ACCURACY: 0.5}", ["accuracy is given twice"]),  # was 0.5, silently
    ("{accuracy: .inf}", ["accuracy=inf"]),
    ("{accuracy: .nan}", ["accuracy=nan"]),
    ("{logloss: 0.1}", ["unknown metric 'logloss'"]),
])
def test_check_max_regression_in_mlship_yaml(tmp_path, monkeypatch, value, words):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mlship.yaml").write_text(f"check:\n  max_regression: {value}\n")
    assert_one_line_error(2, run(*CHECK), "mlship.yaml: check.max_regression: ", *words)


def test_the_flag_overrides_mlship_yaml_per_metric(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mlship.yaml").write_text("check:\n  max_regression: {accuracy: 0.5, f1: 0.5}\n")
    result = run("--json", *CHECK, "--max-regression", "ACCURACY=0.001")
    assert result.code == 4, result.stderr
    items = {i["name"]: i for i in result.json()["checks"] if i["name"].startswith("baseline quality")}
    text = " ".join(i["detail"] for i in items.values())
    assert "accuracy" in text and "max regression 0.001" in text and "max regression 0.5" in text


@pytest.mark.parametrize("key,value", [("rtol", ".inf"), ("atol", ".inf"), ("atol", "1e999"), ("tolerance", ".inf"),
                                       ("rtol", ".nan"), ("rtol", "-1e-9")])
def test_rollout_rtol_atol_infinite_or_negative(tmp_path, monkeypatch, key, value):
    # An infinite rtol made every shadow output "agree": the gate was off.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mlship.yaml").write_text(f"rollout:\n  analysis: {{{key}: {value}}}\n")
    result = run("config", "show")
    shown = "atol" if key == "tolerance" else key
    assert_one_line_error(2, result, f"rollout.analysis.{shown}")


@pytest.fixture(scope="module")
def regressor(tmp_path_factory):
    """A small MLP regressor (MatMul weights: int8 applies) and its sample with labels."""
    from sklearn.neural_network import MLPRegressor

    root = tmp_path_factory.mktemp("mlp")
    X, _, _ = _data(200)
    target = 2 * X[:, 0] - X[:, 3] + 0.5 * X[:, 1] * X[:, 2]
    _skl(MLPRegressor(hidden_layer_sizes=(16,), max_iter=300, random_state=0).fit(X, target), X, root / "model.onnx")
    return root / "model.onnx", _matrix_sample(root, X, target)


def _edge(model, *args):
    return run("build", "--edge", str(model), "--name", "mlp", "--model-version", "1", "--output-dir", "out", *args)


def test_max_metric_drop_without_quantize_is_refused(regressor, tmp_path, monkeypatch):
    model, sample = regressor
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mlship.yaml").write_text(f"sample: {sample}\nfeatures: {NUMERIC}\n")
    # was exit 0: an fp32 bundle and a bound nobody judged
    assert_one_line_error(2, _edge(model, "--max-metric-drop", "rmse=0.01"), "--max-metric-drop", "--quantize int8")
    assert not (tmp_path / "out").exists()


def test_max_metric_drop_without_a_sample_is_refused(regressor, tmp_path, monkeypatch):
    model, _ = regressor
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mlship.yaml").write_text(f"features: {NUMERIC}\nbuild: {{edge: {{max_metric_drop: {{rmse: 0.000001}}}}}}\n")
    # was exit 0: int8 shipped, the rmse bound skipped because there was nothing to score
    assert_one_line_error(2, _edge(model, "--quantize", "int8"), "sample")
    assert not (tmp_path / "out").exists()


def test_an_unchanged_bundle_is_judged_again_with_this_runs_bound(regressor, tmp_path, monkeypatch):
    model, sample = regressor
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mlship.yaml").write_text(f"sample: {sample}\nfeatures: {NUMERIC}\ncheck: {{labels: label}}\n")
    first = _edge(model, "--quantize", "int8", "--max-metric-drop", "rmse=100")
    assert first.code == 0, first.stderr
    bundle = (tmp_path / "out" / "mlp-1.mlbundle").read_bytes()
    # The same inputs: "unchanged", and the stricter bound used to be skipped (exit 0).
    strict = _edge(model, "--quantize", "int8", "--max-metric-drop", "rmse=0.0000001")
    assert strict.code == 4, (strict.stdout, strict.stderr)
    assert "int8 model's rmse is worse by" in strict.stderr and len(strict.stderr.strip().splitlines()) == 1
    wrong = _edge(model, "--quantize", "int8", "--max-metric-drop", "accuracy=0.1")
    assert_one_line_error(2, wrong, "accuracy", "regression")
    assert (tmp_path / "out" / "mlp-1.mlbundle").read_bytes() == bundle
