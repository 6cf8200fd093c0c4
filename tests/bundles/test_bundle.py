"""`mlship build --edge` and `mlship keys generate`: deterministic, signed, verified bundles."""

from __future__ import annotations

import io
import json
import tarfile

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from mlship.bundles.read import unpack_bundle
from mlship.errors import InvalidInputError
from tests.support import EXAMPLE, MODEL, SAMPLE, run


@pytest.fixture
def keys(tmp_path):
    assert run("keys", "generate", "--dir", str(tmp_path), "--name", "edge").code == 0
    assert oct((tmp_path / "edge.key").stat().st_mode)[-3:] == "600"
    assert run("keys", "generate", "--dir", str(tmp_path), "--name", "edge").code == 2  # never overwrites
    return tmp_path / "edge.key", tmp_path / "edge.pub"


def bundle(tmp_path, *args, model=MODEL, out="out", version="1.0.0"):
    result = run("--json", "build", "--edge", str(model), "--name", "bc", "--model-version", version,
                 "--output-dir", str(tmp_path / out), *args)
    assert result.code == 0, result.stderr
    return result.json()


def test_bundles_are_deterministic_and_describe_the_model(tmp_path, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1767225600")
    monkeypatch.chdir(tmp_path)
    first, second = bundle(tmp_path, out="a"), bundle(tmp_path, out="b")
    a, b = (tmp_path / "a" / "bc-1.0.0.mlbundle").read_bytes(), (tmp_path / "b" / "bc-1.0.0.mlbundle").read_bytes()
    assert a == b and first["sha256"] == second["sha256"]
    manifest = first["manifest"]
    assert manifest["schema"] == "mlship.bundle/v1" and manifest["created"] == "2026-01-01T00:00:00Z"
    assert manifest["signature"]["inputs"][0]["name"] == "X" and manifest["opsets"]["ai.onnx"] == 17
    unpacked = unpack_bundle(tmp_path / "a" / "bc-1.0.0.mlbundle", tmp_path / "u")
    assert unpacked.model_path.read_bytes() == MODEL.read_bytes()
    versions = json.loads(run("--json", "versions", "list").stdout)["versions"]
    assert versions[-1]["kind"] == "bundle" and versions[-1]["artifact"] == f"sha256:{first['sha256']}"


def test_signed_bundle_verifies_and_rejects_tampering(tmp_path, keys):
    private, public = keys
    result = bundle(tmp_path, "--signing-key", str(private))
    path = tmp_path / "out" / "bc-1.0.0.mlbundle"
    assert unpack_bundle(path, tmp_path / "ok", public_key=public).manifest.name == "bc"
    assert run("keys", "generate", "--dir", str(tmp_path / "other"), "--name", "x").code == 0
    with pytest.raises(InvalidInputError, match="signature does not match"):
        unpack_bundle(path, tmp_path / "wrong", public_key=tmp_path / "other" / "x.pub")
    # A tampered manifest (the attacker cannot re-sign it) and a tampered model are both refused.
    members = {m.name: tarfile.open(path).extractfile(m).read() for m in tarfile.open(path).getmembers()}
    manifest = json.loads(members["manifest.json"])
    manifest["version"] = "6.6.6"
    for name, data, message in (("manifest.json", json.dumps(manifest).encode(), "signature does not match"),
                                ("model.onnx", members["model.onnx"] + b"x", "does not match its sha256")):
        forged = tmp_path / f"forged-{name}.mlbundle"
        with tarfile.open(forged, "w:gz") as tar:
            for member, content in {**members, name: data}.items():
                info = tarfile.TarInfo(member)
                info.size = len(content)
                tar.addfile(info, io.BytesIO(content))
        with pytest.raises(InvalidInputError, match=message):
            unpack_bundle(forged, tmp_path / f"x-{name}", public_key=public)
    # Unsigned is other content: refused under 1.0.0 (versions are immutable), built as 1.0.1.
    assert run("build", "--edge", str(MODEL), "--name", "bc", "--model-version", "1.0.0", "--output-dir",
               str(tmp_path / "plain")).code == 2
    unsigned = bundle(tmp_path, out="plain", version="1.0.1")
    assert unsigned["manifest"]["name"] == "bc"
    with pytest.raises(InvalidInputError, match="not signed"):
        unpack_bundle(tmp_path / "plain" / "bc-1.0.1.mlbundle", tmp_path / "p", public_key=public)
    assert result["size_bytes"] > 0


def test_int8_example_mlp_is_smaller_and_within_the_bound(tmp_path):
    """The example's neural network (model-mlp.onnx), checked on the example's labelled sample."""
    mlp = EXAMPLE / "model-mlp.onnx"
    result = run("-c", str(EXAMPLE / "mlship.yaml"), "--json", "build", "--edge", str(mlp), "--name", "mlp",
                 "--model-version", "1", "--output-dir", str(tmp_path), "--quantize", "int8",
                 "--max-accuracy-drop", "0.01")
    assert result.code == 0, result.stderr
    q = result.json()["manifest"]["quantization"]
    assert q["applied"] and q["mode"] == "dynamic" and q["rows"] == 171
    assert q["size"] < q["size_fp32"] * 0.5 and q["size_fp32"] == mlp.stat().st_size
    assert q["accuracy_drop"] <= 0.01 and q["label_agreement"] > 0.98
    unpacked = unpack_bundle(tmp_path / "mlp-1.mlbundle", tmp_path / "u")
    assert unpacked.model_path.stat().st_size == q["size"]
    X = np.load(EXAMPLE / "sample-features.npy")
    int8 = ort.InferenceSession(str(unpacked.model_path)).run(None, {"X": X})[0]
    fp32 = ort.InferenceSession(str(mlp)).run(None, {"X": X})[0]
    assert int8.shape == (171,) and np.mean(int8 == fp32) == q["label_agreement"]


def test_int8_on_a_tree_ensemble_ships_fp32_and_says_why(tmp_path):
    result = run("--json", "build", "--edge", str(MODEL), "--name", "bc", "--model-version", "1",
                 "--output-dir", str(tmp_path), "--quantize", "int8")
    assert result.code == 0, result.stderr
    assert "int8 not applied" in result.stderr and "tree ensembles" in result.stderr
    q = result.json()["manifest"]["quantization"]
    assert q["applied"] is False and q["size"] == q["size_fp32"] == MODEL.stat().st_size
    assert unpack_bundle(tmp_path / "bc-1.mlbundle", tmp_path / "u").model_path.read_bytes() == MODEL.read_bytes()


def _fragile_model(path):
    """label = argmax(X @ W): the decision rests on weights int8 rounds to zero next to a large one."""
    from onnx import TensorProto, helper, numpy_helper

    W = np.array([[0.001, 0.0005], [100.0, 100.0]], dtype=np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["X", "W"], ["scores"]),
         helper.make_node("ArgMax", ["scores"], ["label"], axis=1, keepdims=0)],
        "fragile", [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["N", 2])],
        [helper.make_tensor_value_info("label", TensorProto.INT64, ["N"]),
         helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["N", 2])],
        [numpy_helper.from_array(W, "W")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    helper.set_model_props(model, {"mlship.feature_names": json.dumps(["a", "b"])})
    path.write_bytes(model.SerializeToString())
    return path


def test_int8_past_the_accuracy_bound_fails_with_exit_4_and_writes_nothing(tmp_path, monkeypatch):
    model = _fragile_model(tmp_path / "fragile.onnx")
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=200), rng.normal(size=200) * 0.01
    label = (a < 0).astype(int)  # what the fp32 model answers: the sign of x0 decides, x1 cancels out
    (tmp_path / "sample.csv").write_text("a,b,label\n" + "".join(f"{x:.6f},{y:.6f},{t}\n" for x, y, t in zip(a, b, label)))
    (tmp_path / "mlship.yaml").write_text("sample: sample.csv\ncheck: {labels: label}\n")
    monkeypatch.chdir(tmp_path)
    result = run("build", "--edge", str(model), "--name", "fragile", "--model-version", "1", "--output-dir", "out",
                 "--quantize", "int8", "--max-accuracy-drop", "0.05")
    assert result.code == 4, result.stderr
    assert "int8 model loses" in result.stderr and "limit 0.05" in result.stderr and "sample.csv" in result.stderr
    assert len(result.stderr.strip().splitlines()) <= 2  # one line, and maybe its hint
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())
    assert not (tmp_path / ".mlship" / "versions.jsonl").exists()
    # A generous bound lets the same build through, with the loss on record.
    result = run("--json", "build", "--edge", str(model), "--name", "fragile", "--model-version", "1",
                 "--output-dir", "out", "--quantize", "int8", "--max-accuracy-drop", "0.9")
    assert result.code == 0, result.stderr
    q = result.json()["manifest"]["quantization"]
    assert q["accuracy_fp32"] == 1.0 and 0.3 < q["accuracy_drop"] < 0.7


def test_ort_format_bundle_loads(tmp_path):
    result = bundle(tmp_path, "--ort")
    assert result["manifest"]["model"] == "model.ort"
    unpacked = unpack_bundle(tmp_path / "out" / "bc-1.0.0.mlbundle", tmp_path / "u")
    X = np.loadtxt(SAMPLE, delimiter=",", skiprows=1)[:4, :-1].astype(np.float32)
    assert ort.InferenceSession(str(unpacked.model_path)).run(None, {"X": X})[0].shape == (4,)
    assert EXAMPLE.exists()


def test_a_projects_feature_names_and_external_data_travel_in_the_bundle(tmp_path):
    """A converter's export without column names, `features:` in mlship.yaml: the bundle keeps the
    names (manifest `features`), so `serve BUNDLE` takes /predict objects as the project did; a
    model with external data (torch's model.onnx.data) is bundled with its data inline."""
    from onnx import TensorProto, helper, numpy_helper

    from tests.models_corpus import NUMERIC, _data, _matrix_sample
    from tests.serve.server_process import start_server

    X_all, _, _ = _data()
    weights = numpy_helper.from_array(np.array([[2.0], [-1.0], [0.5], [0.25]], dtype=np.float32), "W")
    graph = helper.make_graph([helper.make_node("MatMul", ["X", "W"], ["variable"])], "linear",
                              [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["N", 4])],
                              [helper.make_tensor_value_info("variable", TensorProto.FLOAT, ["N", 1])], [weights])
    model = tmp_path / "model.onnx"
    onnx.save_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), model,
                    save_as_external_data=True, location="model.onnx.data", size_threshold=0)
    assert (tmp_path / "model.onnx.data").stat().st_size == 16  # W lives beside the model
    sample = _matrix_sample(tmp_path, X_all, X_all[:, 0])
    (tmp_path / "mlship.yaml").write_text(f"name: reg\nmodel: model.onnx\nfeatures: {json.dumps(NUMERIC)}\n")
    result = run("--config", str(tmp_path / "mlship.yaml"), "--json", "build", "--edge", "--model-version", "1.0.0",
                 "--output-dir", str(tmp_path / "dist"))
    assert result.code == 0, result.stderr
    assert result.json()["manifest"]["features"] == {"X": NUMERIC}
    bundle_path = tmp_path / "dist" / "reg-1.0.0.mlbundle"
    with tarfile.open(bundle_path) as tar:
        assert sorted(tar.getnames()) == ["manifest.json", "model.onnx"]
    rows = [line.split(",") for line in sample.read_text().splitlines()[1:6]]
    X = np.array([[float(v) for v in r[:4]] for r in rows], dtype=np.float32)
    want = ort.InferenceSession(str(model)).run(None, {"X": X})[0]
    server = start_server(bundle_path, tmp_path / "serve")
    try:
        answer = server.post("/predict", {"instances": [dict(zip(NUMERIC, map(float, x))) for x in X]})
        assert answer.status == 200, answer.body
        got = [p["variable"] if isinstance(p, dict) else p for p in json.loads(answer.body)["predictions"]]
        assert np.allclose(np.array(got, dtype=np.float32).ravel(), want.ravel(), atol=1e-6)
    finally:
        assert server.terminate() == 0
    assert list(server.log_records()[0]["inputs"]) == NUMERIC
