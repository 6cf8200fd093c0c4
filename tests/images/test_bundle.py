"""`mlship build --edge` and `mlship keys generate`: deterministic, signed, verified bundles."""

from __future__ import annotations

import io
import json
import tarfile

import numpy as np
import onnxruntime as ort
import pytest

from mlship.edge.bundle import unpack_bundle
from mlship.errors import InvalidInputError
from tests.support import EXAMPLE, MODEL, SAMPLE, run


@pytest.fixture
def keys(tmp_path):
    assert run("keys", "generate", "--dir", str(tmp_path), "--name", "edge").code == 0
    assert oct((tmp_path / "edge.key").stat().st_mode)[-3:] == "600"
    assert run("keys", "generate", "--dir", str(tmp_path), "--name", "edge").code == 2  # never overwrites
    return tmp_path / "edge.key", tmp_path / "edge.pub"


def bundle(tmp_path, *args, model=MODEL, out="out"):
    result = run("--json", "build", "--edge", str(model), "--name", "bc", "--model-version", "1.0.0",
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
    assert unpack_bundle(path, tmp_path / "ok", public_key=public).manifest["name"] == "bc"
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
    unsigned = bundle(tmp_path, out="plain")
    assert unsigned["manifest"]["name"] == "bc"
    with pytest.raises(InvalidInputError, match="not signed"):
        unpack_bundle(tmp_path / "plain" / "bc-1.0.0.mlbundle", tmp_path / "p", public_key=public)
    assert result["size_bytes"] > 0


def test_int8_mlp_is_smaller_and_within_the_bound(tmp_path):
    from sklearn.neural_network import MLPClassifier
    from skl2onnx import to_onnx

    from tests import models

    X, y, names = models.sample_matrix()
    scale = X.std(axis=0) + 1e-6
    mlp = MLPClassifier(hidden_layer_sizes=(256, 128), max_iter=400, random_state=0).fit(X / scale, y)
    onx = to_onnx(mlp, (X[:1] / scale).astype(np.float32), options={id(mlp): {"zipmap": False}},
                  target_opset={"": 17, "ai.onnx.ml": 3})
    from onnx import helper

    helper.set_model_props(onx, {"mlship.feature_names": json.dumps(names)})
    model = tmp_path / "mlp.onnx"
    model.write_bytes(onx.SerializeToString())
    sample = tmp_path / "scaled.csv"
    sample.write_text(",".join(names + ["label"]) + "\n"
                      + "".join(",".join(f"{v:.7g}" for v in row) + f",{t}\n" for row, t in zip(X / scale, y)))
    (tmp_path / "mlship.yaml").write_text(f"sample: {sample}\ncheck: {{labels: label}}\n")
    result = run("-c", str(tmp_path / "mlship.yaml"), "--json", "build", "--edge", str(model), "--name", "mlp",
                 "--model-version", "1", "--output-dir", str(tmp_path), "--quantize", "int8",
                 "--max-accuracy-drop", "0.05")
    assert result.code == 0, result.stderr
    q = result.json()["manifest"]["quantization"]
    assert q["size"] < q["size_fp32"] * 0.5 and q["accuracy_drop"] <= 0.05 and q["label_agreement"] > 0.9
    unpacked = unpack_bundle(tmp_path / "mlp-1.mlbundle", tmp_path / "u")
    session = ort.InferenceSession(str(unpacked.model_path))
    assert session.run(None, {"X": (X[:3] / scale).astype(np.float32)})[0].shape == (3,)


def test_ort_format_bundle_loads(tmp_path):
    result = bundle(tmp_path, "--ort")
    assert result["manifest"]["model"] == "model.ort"
    unpacked = unpack_bundle(tmp_path / "out" / "bc-1.0.0.mlbundle", tmp_path / "u")
    X = np.loadtxt(SAMPLE, delimiter=",", skiprows=1)[:4, :-1].astype(np.float32)
    assert ort.InferenceSession(str(unpacked.model_path)).run(None, {"X": X})[0].shape == (4,)
    assert EXAMPLE.exists()
