"""Prediction drift: a reference without outputs scored once by the model, outputs judged like columns."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mlship.drift.comparison import compare, probability_complements
from mlship.drift.profile import Profile
from mlship.drift.settings import DriftOptions
from tests.support import MODEL, SAMPLE, run

SCALED = [0, 2, 3, 20, 22, 23]  # radius, perimeter, area (mean and worst): what moves the model's answer


def _write(path, header, rows):
    path.write_text(",".join(header) + "\n" + "".join(",".join(f"{v:.6g}" for v in r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    """Training-like data (features only), and prediction logs of the same and of larger tumours."""
    tmp = tmp_path_factory.mktemp("scored")
    lines = SAMPLE.read_text().splitlines()
    header = lines[0].split(",")[:-1]
    base = np.array([[float(v) for v in line.split(",")[:-1]] for line in lines[1:]])
    rng = np.random.default_rng(0)

    def data(n, scale=1.0):
        x = base[rng.integers(0, len(base), n)] * rng.normal(1, 0.03, (n, base.shape[1]))
        x[:, SCALED] *= scale
        return x

    ref = _write(tmp / "train.csv", header, data(3000))
    logs = {}
    for name, scale in (("same", 1.0), ("larger", 1.25)):
        source = _write(tmp / f"{name}.csv", header, data(2000, scale))
        logs[name] = tmp / f"logs-{name}"
        result = run("predict", str(MODEL), "--input", str(source), "-o", str(tmp / f"{name}.parquet"),
                     "--log-dir", str(logs[name]))
        assert result.code == 0, result.stderr
    return tmp, ref, logs


def _drift(*args):
    result = run("drift", *args, "--json-out", "-", "--fail-on", "never")
    assert result.code == 0, result.stderr
    report = json.loads(result.stdout)
    return report, {c["name"]: c for c in report["columns"]}


def test_without_the_model_outputs_are_only_in_the_current_data(scored):
    _, ref, logs = scored
    report, by = _drift("-r", str(ref), "-c", str(logs["larger"]))
    assert "scored_with" not in report["reference"]
    assert by["outputs.probabilities_1"]["insufficient"] is True
    assert "--model" in by["outputs.probabilities_1"]["reasons"][0]


def test_the_reference_is_scored_and_output_drift_judged(scored):
    _, ref, logs = scored
    report, by = _drift("-r", str(ref), "-c", str(logs["larger"]), "--model", str(MODEL))
    assert report["reference"]["scored_with"] == str(MODEL)
    assert by["outputs.probabilities_1"]["drifted"] is True
    assert by["outputs.probabilities_1"]["reference_summary"]["count"] == 3000
    assert by["outputs.label"].get("insufficient") is None and "stats" in by["outputs.label"]
    same, by_same = _drift("-r", str(ref), "-c", str(logs["same"]), "--model", str(MODEL))
    assert same["drifted_columns"] == []
    assert by_same["outputs.probabilities_1"]["stats"]["ks_d"] < 0.05


def test_a_binary_classifiers_two_probabilities_count_once(scored):
    _, ref, logs = scored
    report, by = _drift("-r", str(ref), "-c", str(logs["larger"]), "--model", str(MODEL))
    first = by["outputs.probabilities_0"]
    assert first["ignored"] is True and not first["drifted"]
    assert first["note"].startswith("1 - outputs.probabilities_1")
    assert "outputs.probabilities_0" not in report["drifted_columns"]
    judged = [c for c in report["columns"] if not c.get("ignored") and not c.get("insufficient")]
    assert report["drifted_share"] == pytest.approx(len(report["drifted_columns"]) / len(judged))


def test_the_model_from_mlship_yaml_scores_the_reference(scored):
    tmp, ref, logs = scored
    config = tmp / "mlship.yaml"
    config.write_text(f"model: {MODEL}\nmonitoring:\n  reference: {ref}\n")
    result = run("-c", str(config), "drift", "-c", str(logs["larger"]), "--json-out", "-", "--fail-on", "never")
    assert json.loads(result.stdout)["reference"]["scored_with"] == str(MODEL)


def test_a_profile_made_with_the_model_keeps_the_outputs(scored):
    tmp, ref, logs = scored
    saved = tmp / "train-profile.json"
    assert run("profile", str(ref), "--model", str(MODEL), "-o", str(saved)).code == 0
    columns = json.loads(saved.read_text())["columns"]
    assert {"outputs.label", "outputs.probabilities_0", "outputs.probabilities_1"} <= set(columns)
    from_profile, by_profile = _drift("-r", str(saved), "-c", str(logs["larger"]))
    from_data, by_data = _drift("-r", str(ref), "-c", str(logs["larger"]), "--model", str(MODEL))
    assert "scored_with" not in from_profile["reference"]  # scored once, when profiled
    assert by_profile["outputs.probabilities_1"]["stats"] == pytest.approx(by_data["outputs.probabilities_1"]["stats"])
    assert from_profile["drifted_columns"] == from_data["drifted_columns"]


@pytest.mark.parametrize("columns,paired", [
    ({"outputs.p_0": [0.2, 0.9], "outputs.p_1": [0.8, 0.1]}, {"outputs.p_0": "outputs.p_1"}),
    ({"outputs.p_0": [0.2, 0.5], "outputs.p_1": [0.7, 0.1], "outputs.p_2": [0.1, 0.4]}, {}),  # three classes
    ({"outputs.v_0": [-3.0, 2.0], "outputs.v_1": [3.0, -2.0]}, {}),  # not probabilities
    ({"p_0": [0.2, 0.9], "p_1": [0.8, 0.1]}, {}),  # features, not outputs
])
def test_probability_pairs(columns, paired):
    profile = Profile()
    profile.add_frame({k: np.asarray(v) for k, v in columns.items()}, 2)
    assert probability_complements(profile) == paired


def test_exact_values_against_a_sketch_do_not_drift_where_values_crowd():
    # Probabilities crowd near 1: a 0.2% bucket holds many of them. The exact side goes
    # through the same buckets, or rounding alone reads as a KS distance of about 0.4.
    rng = np.random.default_rng(4)

    def crowded(n):
        return 1 - rng.exponential(0.002, n)

    ref, cur = Profile(), Profile()
    ref.add_frame({"p": crowded(20_000)}, 20_000)
    cur.add_frame({"p": crowded(1500)}, 1500)
    (result,) = compare(ref, cur, DriftOptions(reference="r", current="c"))
    assert result.stats.ks_d < 0.06 and not result.drifted
