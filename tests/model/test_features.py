"""Feature names without editing the model: --features, `features:` in mlship.yaml,
`X_0 … X_{k-1}` columns, `mlship init --sample`, and project settings kept to the
project's model."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from mlship.config import load_config
from mlship.errors import UsageError
from mlship.model.features import DeclaredFeatures, apply_features, features_from_header, parse_features_flag
from mlship.model.signature import signature_of
from tests.serve.server_process import start_server
from tests.support import run

COLUMNS = ["age", "income", "score"]


@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    """skl2onnx's default export: X [N, 3], no feature names; a sample with named columns and labels."""
    from sklearn.linear_model import LogisticRegression
    from skl2onnx import to_onnx

    root = tmp_path_factory.mktemp("plain")
    rng = np.random.default_rng(3)
    X = rng.standard_normal((80, 3)).astype(np.float32)
    y = (X[:, 0] - X[:, 2] > 0).astype(np.int64)
    model = LogisticRegression().fit(X, y)
    onnx.save_model(to_onnx(model, X[:1], options={id(model): {"zipmap": False}}, target_opset=17), root / "m.onnx")
    rows = "".join(",".join(f"{v:.6f}" for v in x) + f",{t}\n" for x, t in zip(X, y))
    (root / "s.csv").write_text(",".join(COLUMNS) + ",label\n" + rows)
    (root / "indexed.csv").write_text("X_0,X_1,X_2\n" + "".join(",".join(f"{v:.6f}" for v in x) + "\n" for x in X))
    return root, X, y


@pytest.fixture(scope="module")
def two_inputs(tmp_path_factory):
    """a [N, 2] and b [N, 3] -> out = sum(a) + sum(b), [N, 1]."""
    root = tmp_path_factory.mktemp("two")
    a = helper.make_tensor_value_info("a", TensorProto.FLOAT, ["N", 2])
    b = helper.make_tensor_value_info("b", TensorProto.FLOAT, ["N", 3])
    out = helper.make_tensor_value_info("out", TensorProto.FLOAT, ["N", 1])
    axes = helper.make_tensor("axes", TensorProto.INT64, [1], [1])
    nodes = [helper.make_node("ReduceSum", ["a", "axes"], ["sa"], keepdims=1),
             helper.make_node("ReduceSum", ["b", "axes"], ["sb"], keepdims=1),
             helper.make_node("Add", ["sa", "sb"], ["out"])]
    graph = helper.make_graph(nodes, "two", [a, b], [out], initializer=[axes])
    onnx.save_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), root / "two.onnx")
    (root / "s.csv").write_text("p,q,r,s,t\n1,2,3,4,5\n0,0,0,0,1\n")
    return root


def test_flag_parses_a_list_or_a_mapping_per_input():
    assert parse_features_flag(["a, b,c"]) == ["a", "b", "c"]
    assert parse_features_flag(["x=a,b", "y=c"]) == {"x": ["a", "b"], "y": ["c"]}
    for bad in (["a,,b"], ["x=a", "c"], ["x=a", "x=b"]):
        with pytest.raises(UsageError):
            parse_features_flag(bad)


def test_declared_features_must_fit_the_inputs(plain, two_inputs):
    signature = signature_of(onnx.load(plain[0] / "m.onnx"))
    named = apply_features(signature, DeclaredFeatures(columns=COLUMNS, source="--features"))
    assert named.features == {"X": COLUMNS} and named.feature_names == COLUMNS and named.feature_source == "--features"
    cases = [(["a", "b"], "takes 3 columns, 2 are named: a, b"), (["a", "b", "a"], "column 'a' is named twice"),
             ({"Y": COLUMNS}, "no input 'Y'")]
    for columns, message in cases:
        with pytest.raises(UsageError, match=message):
            apply_features(signature, DeclaredFeatures(columns=columns, source="here"))
    two = signature_of(onnx.load(two_inputs / "two.onnx"))
    with pytest.raises(UsageError, match="one 2-D input; this one has 2 inputs"):
        apply_features(two, DeclaredFeatures(columns=["p", "q"], source="here"))


def test_header_gives_features_only_where_no_name_fits(plain, two_inputs):
    signature = signature_of(onnx.load(plain[0] / "m.onnx"))
    assert features_from_header(signature, COLUMNS) == COLUMNS
    assert features_from_header(signature, ["X_0", "X_1", "X_2"]) is None
    with pytest.raises(UsageError, match="takes 3 columns, 4 are named"):
        features_from_header(signature, [*COLUMNS, "id"])
    two = signature_of(onnx.load(two_inputs / "two.onnx"))
    assert features_from_header(two, ["a_0", "a_1", "p", "q", "r"]) == {"b": ["p", "q", "r"]}
    with pytest.raises(UsageError, match="cannot be told from a header"):  # never split columns by position
        features_from_header(two, ["p", "q", "r", "s", "t"])


def test_check_names_expected_and_present_columns_in_full(plain):
    root, *_ = plain
    result = run("check", str(root / "m.onnx"), "--sample", str(root / "s.csv"))
    assert result.code == 3 and result.stderr.count("\n") == 1
    assert "input 'X' [?, 3] needs a column 'X' of lists, or columns X_0 … X_2" in result.stderr
    assert "The file has: age, income, score, label" in result.stderr and "features:" in result.stderr


def test_flag_and_indexed_columns_feed_the_same_predictions(plain):
    import onnxruntime as ort

    root, X, y = plain
    named = run("check", str(root / "m.onnx"), "-s", str(root / "s.csv"), "-l", "label",
                "--features", ",".join(COLUMNS), "--json")
    assert named.code == 0, named.stderr
    doc = named.json()
    assert doc["signature"]["features"] == {"X": COLUMNS} and doc["signature"]["feature_source"] == "--features"
    label = ort.InferenceSession(str(root / "m.onnx")).run(None, {"X": X})[0]
    assert doc["quality"]["metrics"]["accuracy"] == pytest.approx(float(np.mean(label == y)), abs=1e-9)
    indexed = run("check", str(root / "m.onnx"), "-s", str(root / "indexed.csv"), "--json")
    assert indexed.code == 0, indexed.stderr
    assert indexed.json()["smoke"]["outputs"][0]["sample"] == doc["smoke"]["outputs"][0]["sample"]


def test_flag_over_config_over_metadata(plain, tmp_path):
    root, X, _ = plain
    model = onnx.load(root / "m.onnx")
    helper.set_model_props(model, {"mlship.feature_names": json.dumps(["m1", "m2", "m3"])})
    onnx.save_model(model, tmp_path / "named.onnx")
    (tmp_path / "mlship.yaml").write_text(f"model: named.onnx\nfeatures: [{', '.join(COLUMNS)}]\n")
    (tmp_path / "flag.csv").write_text("f1,f2,f3\n1,2,3\n")
    config = str(tmp_path / "mlship.yaml")
    sig = lambda *a: run("--config", config, "check", str(tmp_path / "named.onnx"), *a, "--json").json()["signature"]
    assert sig("-s", str(root / "s.csv"))["feature_source"].endswith("mlship.yaml: features")
    assert sig("-s", str(tmp_path / "flag.csv"), "--features", "f1,f2,f3")["features"] == {"X": ["f1", "f2", "f3"]}
    bare = run("check", str(tmp_path / "named.onnx"), "--json").json()["signature"]
    assert bare["features"] == {"X": ["m1", "m2", "m3"]} and bare["feature_source"] == "model metadata"


def test_a_mapping_feeds_two_matrix_inputs_in_check_predict_and_logs(two_inputs, tmp_path):
    import pyarrow.parquet as pq

    features = ["--features", "a=p,q", "--features", "b=r,s,t"]
    result = run("check", str(two_inputs / "two.onnx"), "-s", str(two_inputs / "s.csv"), *features, "--json")
    assert result.code == 0, result.stderr
    assert result.json()["smoke"]["outputs"][0]["sample"] == [[15.0], [1.0]]
    out = tmp_path / "p.parquet"
    result = run("predict", str(two_inputs / "two.onnx"), "-i", str(two_inputs / "s.csv"), "-o", str(out),
                 "--log-dir", str(tmp_path / "logs"), *features)
    assert result.code == 0, result.stderr
    assert pq.read_table(out).column("out").to_pylist() == [15.0, 1.0]
    records = [json.loads(line) for f in (tmp_path / "logs").glob("*.jsonl") for line in f.read_text().splitlines()]
    assert sorted(records[0]["inputs"]) == ["p", "q", "r", "s", "t"]  # named columns, not lists


def test_serve_takes_predict_objects_by_config_names_and_logs_them_for_drift(plain, tmp_path):
    root, X, _ = plain
    project = tmp_path / "proj"
    project.mkdir()
    (project / "mlship.yaml").write_text(f"name: plain\nmodel: {root / 'm.onnx'}\nfeatures: [{', '.join(COLUMNS)}]\n")
    server = start_server(project, tmp_path)
    try:
        rows = [dict(zip(COLUMNS, map(float, x))) for x in X[:40]]
        answer = server.post("/predict", {"instances": rows})
        assert answer.status == 200, answer.body
        bad = server.post("/predict", {"instances": [{"X_0": 1.0}]})
        assert bad.status == 400 and b"unknown feature 'X_0'" in bad.body
    finally:
        assert server.terminate() == 0
    logged = server.log_records()
    assert logged[0]["inputs"] == pytest.approx(rows[0])
    result = run("drift", "--reference", str(root / "s.csv"), "--current", str(tmp_path / "logs"),
                 "--min-rows", "10", "--json-out", "-")
    assert result.code in (0, 4), result.stderr
    compared = {c["name"] for c in json.loads(result.stdout)["columns"]}
    assert set(COLUMNS) <= compared


def test_init_writes_sample_labels_and_features_from_the_header(plain, tmp_path, monkeypatch):
    root, *_ = plain
    monkeypatch.chdir(tmp_path)
    result = run("init", "--model", str(root / "m.onnx"), "--sample", str(root / "s.csv"), "--labels", "label")
    assert result.code == 0, result.stderr
    cfg = load_config(tmp_path / "mlship.yaml", environ={})
    assert cfg.features == COLUMNS and cfg.check.labels == "label"
    assert cfg.resolve(cfg.sample).resolve() == (root / "s.csv").resolve()
    assert run("check").code == 0
    (tmp_path / "mlship.yaml").unlink()
    bad = run("init", "--model", str(root / "m.onnx"), "--sample", str(root / "s.csv"))  # label counted as a feature
    assert bad.code == 2 and "takes 3 columns, 4 are named: age, income, score, label" in bad.stderr
    assert not (tmp_path / "mlship.yaml").exists()


def test_project_settings_stay_with_the_project_model(plain, tmp_path):
    root, *_ = plain
    other = tmp_path / "other.onnx"
    other.write_bytes((root / "m.onnx").read_bytes())
    (tmp_path / "mlship.yaml").write_text(f"model: {root / 'm.onnx'}\nsample: {root / 's.csv'}\n"
                                          f"features: [{', '.join(COLUMNS)}]\ncheck: {{labels: label}}\n")
    config = str(tmp_path / "mlship.yaml")
    own = run("--config", config, "check", "--json")
    assert own.code == 0 and own.json()["quality"]["rows"] == 80
    result = run("--config", config, "check", str(other), "--json")
    assert result.code == 0, result.stderr
    doc = result.json()
    assert doc["smoke"]["source"] == "generated" and doc["quality"] is None
    skipped = next(c for c in doc["checks"] if c["name"] == "project settings")
    assert skipped["status"] == "skip" and "sample, features, check.labels not used" in skipped["detail"]
    flagged = run("--config", config, "check", str(other), "-s", str(root / "s.csv"), "-l", "label",
                  "--features", ",".join(COLUMNS), "--json")
    assert flagged.code == 0 and all(c["name"] != "project settings" for c in flagged.json()["checks"])
    predicted = run("--config", config, "predict", str(other), "-i", str(root / "s.csv"), "-o", str(tmp_path / "o.csv"))
    assert predicted.code == 3 and "features not used: they name the columns of" in predicted.stderr


def test_drift_and_profile_score_the_reference_with_the_projects_features(plain, tmp_path):
    """Prediction drift scores the reference with the project's model: `features:` name its columns
    there too (before, the reference's named columns could not feed `X` and drift exited 3)."""
    root, X, _ = plain
    (tmp_path / "mlship.yaml").write_text(f"name: plain\nmodel: {root / 'm.onnx'}\nfeatures: [{', '.join(COLUMNS)}]\n")
    config = str(tmp_path / "mlship.yaml")
    logged = run("--config", config, "predict", "-i", str(root / "s.csv"), "-o", str(tmp_path / "p.parquet"),
                 "--log-dir", str(tmp_path / "logs"))
    assert logged.code == 0, logged.stderr
    result = run("--config", config, "drift", "--reference", str(root / "s.csv"), "--current", str(tmp_path / "logs"),
                 "--min-rows", "10", "--json-out", "-")
    assert result.code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["reference"]["scored_with"] == str(root / "m.onnx") and doc["drifted_columns"] == []
    outputs = {c["name"]: c for c in doc["columns"] if c["name"].startswith("outputs.")}
    assert set(outputs) == {"outputs.label", "outputs.probabilities_0", "outputs.probabilities_1"}
    assert [c["reference_summary"]["count"] for c in outputs.values() if "reference_summary" in c] == [80, 80]
    profiled = run("--config", config, "profile", str(root / "s.csv"), "-o", str(tmp_path / "ref.json"), "--json")
    assert profiled.code == 0, profiled.stderr
    assert {"outputs.label", "outputs.probabilities_1"} <= set(profiled.json()["columns"])


def test_the_image_config_bakes_in_the_projects_features(plain, tmp_path):
    """`build --image` writes mlship.yaml beside the model in the image: with the project's
    `features:`, the container's /predict takes the same named objects."""
    from mlship.images.docker import ImageOptions, serving_config

    root, X, _ = plain
    options = ImageOptions(model=root / "m.onnx", name="plain", version="1.0.0", base="b", tag="t", features=COLUMNS)
    baked = tmp_path / "opt-model"
    baked.mkdir()
    (baked / "model.onnx").write_bytes((root / "m.onnx").read_bytes())
    (baked / "mlship.yaml").write_text(serving_config(options))
    assert load_config(baked / "mlship.yaml", environ={}).features == COLUMNS
    server = start_server(baked, tmp_path, log=False)  # as the image's entrypoint serves /opt/model
    try:
        answer = server.post("/predict", {"instances": [dict(zip(COLUMNS, map(float, X[0])))]})
        assert answer.status == 200, answer.body
    finally:
        assert server.terminate() == 0
