"""Every model of the converters' corpus (tests/models_corpus.py) goes the way a new user
takes it: `mlship init --sample --labels` writes the project (hand-written only for two
matrix inputs, which a header cannot split), then `check --sample --labels`, `predict` on
CSV and Parquet, `serve` (/predict objects with named columns, /v2 JSON, /v2 binary through
tritonclient), `build --edge`, and `drift` on the served logs. Answers are compared with
onnxruntime run directly on the same rows.

One model at a time: the project, its served process and its logs are module fixtures, so
each model is made once and served once.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest

from tests.harness.fixtures import _unavailable
from tests.models_corpus import CORPUS, CorpusModel
from tests.serve.server_process import ServerProcess, start_server
from tests.support import run

NAME = "corpus"


@dataclass
class Project:
    root: Path
    made: CorpusModel
    rows: list[dict[str, str]]  # the sample as read, labels included
    feeds: dict[str, np.ndarray]  # the model's inputs made from the sample, by hand
    expected: dict[str, Any]  # onnxruntime's outputs on those feeds

    @property
    def config(self) -> str:
        return str(self.root / "mlship.yaml")

    def features(self) -> list[str]:
        return [c for c in self.rows[0] if c != self.made.labels]

    def objects(self) -> list[dict[str, Any]]:
        """The sample's rows as /predict objects: numbers as numbers, text as text."""
        text = {n for n, v in self.feeds.items() if v.dtype == object}
        return [{c: (row[c] if c in text else float(row[c])) for c in self.features()} for row in self.rows]


def _feeds(made: CorpusModel, rows: list[dict[str, str]], session: ort.InferenceSession) -> dict[str, np.ndarray]:
    """What the sample means to the model, built without mlship: the declared columns per input,
    or (no `features:`) one [N, 1] column per input, named as the input."""
    columns = made.features if isinstance(made.features, dict) else None
    feeds = {}
    for spec in session.get_inputs():
        names = columns[spec.name] if columns else made.features if made.features else [spec.name]
        values = [[row[n] for n in names] for row in rows]
        feeds[spec.name] = np.array(values, dtype=object if spec.type == "tensor(string)" else _numpy(spec.type))
    return feeds


def _numpy(onnx_type: str) -> type:
    return {"tensor(float)": np.float32, "tensor(double)": np.float64, "tensor(int64)": np.int64}[onnx_type]


@pytest.fixture(scope="module", params=CORPUS, ids=[e.name for e in CORPUS])
def project(request, tmp_path_factory) -> Project:
    entry = request.param
    absent = [m for m in entry.needs if importlib.util.find_spec(m) is None]
    if absent:  # in CI (MLSHIP_REQUIRE_SERVICES=1) a missing converter fails: the dev extra installs them
        _unavailable(f"{entry.name} needs {', '.join(absent)} (the dev extra installs it)")
    root = tmp_path_factory.mktemp(entry.name)
    made: CorpusModel = entry.make(root)
    if isinstance(made.features, dict):
        (root / "mlship.yaml").write_text(f"name: {NAME}\nmodel: model.onnx\nsample: sample.csv\n"
                                          f"check: {{labels: {made.labels}}}\nfeatures: {json.dumps(made.features)}\n")
    else:
        init = run("init", "--model", str(made.model), "--sample", str(made.sample), "--labels", made.labels,
                   "--output", str(root / "mlship.yaml"))
        assert init.code == 0, init.stderr
    with made.sample.open(newline="") as f:
        rows = list(csv.DictReader(f))
    session = ort.InferenceSession(str(made.model))
    feeds = _feeds(made, rows, session)
    expected = dict(zip([o.name for o in session.get_outputs()], session.run(None, feeds)))
    return Project(root, made, rows, feeds, expected)


def assert_outputs_match(got: dict[str, Any], expected: dict[str, Any], rows: slice = slice(None)) -> None:
    """Each output as onnxruntime gives it (float32 to 1e-6); a ZipMap's maps by class."""
    assert set(got) == set(expected), (sorted(got), sorted(expected))
    for name, want in expected.items():
        if isinstance(want, list):  # a ZipMap: one {class: probability} per row
            want = [[m[k] for k in sorted(m)] for m in want[rows]]
            have = [[float(m[k]) for k in sorted(m, key=lambda k: type(next(iter(m)))(k))] for m in got[name]]
            np.testing.assert_allclose(np.array(have), np.array(want), rtol=1e-5, atol=1e-6, err_msg=name)
            continue
        want = np.asarray(want)[rows]
        have = np.asarray(got[name]).reshape(want.shape)
        if want.dtype.kind in "iuO":
            assert have.tolist() == want.tolist(), name
        else:
            np.testing.assert_allclose(have.astype(np.float64), want, rtol=1e-5, atol=1e-6, err_msg=name)


# -- init, check, predict -----------------------------------------------------------


def test_a_float64_classifier_export_that_onnx_refuses_exits_3(tmp_path):
    """skl2onnx exports a classifier fitted on float64 data with a ZipMap over doubles, which
    ZipMap does not take: not a model onnxruntime can open. check says so in one line."""
    from sklearn.linear_model import LogisticRegression

    from tests.models_corpus import _data, _skl

    X, y, _ = _data()
    _skl(LogisticRegression().fit(X.astype(np.float64), y), X.astype(np.float64), tmp_path / "m.onnx")
    result = run("check", str(tmp_path / "m.onnx"))
    assert result.code == 3 and result.stderr.count("\n") == 1
    assert "fails the ONNX checker" in result.stderr and "ZipMap" in result.stderr


def test_init_writes_the_features_from_the_header(project):
    from mlship.config import load_config

    cfg = load_config(Path(project.config), environ={})
    want = project.made.features
    assert cfg.features == want and cfg.check.labels == project.made.labels


def test_check_with_sample_and_labels(project):
    made = project.made
    result = run("--config", project.config, "check", "--sample", str(made.sample), "--labels", made.labels, "--json")
    assert result.code == 0, result.stderr
    doc = result.json()
    assert doc["smoke"]["source"].endswith("sample.csv") and doc["smoke"]["rows"] == len(project.rows)
    assert doc["quality"]["task"] == made.task and doc["quality"]["rows"] == len(project.rows)
    if made.task == "classification":
        assert doc["quality"]["metrics"]["accuracy"] > 0.7
    else:
        assert doc["quality"]["metrics"]["r2"] > 0.5


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_predict_on_csv_and_parquet_gives_onnxruntime_answers(project, fmt, tmp_path):
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    source = project.made.sample
    if fmt == "parquet":
        source = tmp_path / "sample.parquet"
        pq.write_table(pcsv.read_csv(project.made.sample), source)
    out = tmp_path / "out.jsonl"
    result = run("--config", project.config, "predict", "-i", str(source), "-o", str(out), "--json")
    assert result.code == 0, result.stderr
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert result.json()["rows"] == len(records) == len(project.rows)
    expected = written_columns(project.expected)
    assert list(records[0]) == list(expected)
    for name, want in expected.items():
        assert_outputs_match({name: [r[name] for r in records]}, {name: want})


def written_columns(expected: dict[str, Any]) -> dict[str, np.ndarray]:
    """The outputs as predict writes them: [N, k] as NAME_0 … NAME_{k-1}, a ZipMap's maps as NAME_CLASS."""
    columns = {}
    for name, value in expected.items():
        if isinstance(value, list):
            columns.update({f"{name}_{c}": np.array([m[c] for m in value]) for c in value[0]})
        elif value.ndim == 2 and value.shape[1] > 1:
            columns.update({f"{name}_{j}": value[:, j] for j in range(value.shape[1])})
        else:
            columns[name] = value.reshape(len(value))
    return columns


# -- serve: one process per model ----------------------------------------------------


@pytest.fixture(scope="module")
def served(project, tmp_path_factory) -> ServerProcess:
    server = start_server(project.root, tmp_path_factory.mktemp("serve"), "--name", NAME)
    yield server
    server.terminate()


def test_serve_predict_takes_objects_with_named_columns(project, served):
    response = served.post("/predict", {"instances": project.objects()}, **{"X-Request-ID": "objects"})
    assert response.status == 200, response.body
    predictions = json.loads(response.body)["predictions"]
    assert len(predictions) == len(project.rows)
    assert_outputs_match({n: [p[n] for p in predictions] for n in project.expected}, project.expected)


def _datatype(value: np.ndarray) -> str:
    """The Open Inference Protocol's name for a feed's dtype."""
    return "BYTES" if value.dtype == object else {"float32": "FP32", "float64": "FP64", "int64": "INT64"}[value.dtype.name]


def test_serve_v2_json(project, served):
    inputs = [{"name": name, "shape": list(value.shape), "datatype": _datatype(value), "data": value.ravel().tolist()}
              for name, value in project.feeds.items()]
    response = served.post(f"/v2/models/{NAME}/infer", {"id": "v2-json", "inputs": inputs})
    assert response.status == 200, response.body
    outputs = {o["name"]: o for o in json.loads(response.body)["outputs"]}
    tensors = {n: v for n, v in project.expected.items() if not isinstance(v, list)}
    assert set(tensors) <= set(outputs)
    for name, want in tensors.items():
        assert outputs[name]["shape"] == list(np.asarray(want).shape)
        assert_outputs_match({name: outputs[name]["data"]}, {name: want})


def test_serve_v2_binary_through_tritonclient(project, served):
    httpclient = pytest.importorskip("tritonclient.http")
    client = httpclient.InferenceServerClient(url=f"127.0.0.1:{served.port}")
    try:
        metadata = client.get_model_metadata(NAME)
        assert [i["name"] for i in metadata["inputs"]] == list(project.feeds)
        inputs = []
        for name, value in project.feeds.items():
            inputs.append(httpclient.InferInput(name, list(value.shape), _datatype(value)))
            inputs[-1].set_data_from_numpy(value)  # binary, the client's default
        result = client.infer(NAME, inputs, request_id="triton")
        tensors = {n: v for n, v in project.expected.items() if not isinstance(v, list)}
        assert_outputs_match({n: result.as_numpy(n) for n in tensors}, tensors)
    finally:
        client.close()


# -- build --edge, drift on the served logs ------------------------------------------


def test_build_edge_bundles_a_model_that_gives_the_same_answers(project, tmp_path):
    from mlship.bundles.read import unpack_bundle

    result = run("--config", project.config, "--json", "build", "--edge", "--name", NAME, "--model-version", "1.0.0",
                 "--output-dir", str(tmp_path / "dist"))
    assert result.code == 0, result.stderr
    manifest = result.json()["manifest"]
    assert [i["name"] for i in manifest["signature"]["inputs"]] == list(project.feeds)
    declared = project.made.features  # the project's column names travel with the bundle
    assert manifest["features"] == ({next(iter(project.feeds)): declared} if isinstance(declared, list) else declared)
    unpacked = unpack_bundle(tmp_path / "dist" / f"{NAME}-1.0.0.mlbundle", tmp_path / "unpacked")
    # External data inline; the sample's first rows (named by the project's features) for the device's health check.
    assert sorted(p.name for p in unpacked.directory.iterdir()) == ["manifest.json", "model.onnx", "smoke.json"]
    session = ort.InferenceSession(str(unpacked.model_path))
    assert_outputs_match(dict(zip([o.name for o in session.get_outputs()], session.run(None, project.feeds))),
                         project.expected)


def test_drift_on_the_serve_logs_names_the_columns(project, served, tmp_path):
    # The requests of the serve tests above (file order) and this one are the current data.
    assert served.post("/predict", {"instances": project.objects()}, **{"X-Request-ID": "drift"}).status == 200
    assert served.terminate() == 0
    records = served.log_records()
    assert "drift" in {r["request_id"] for r in records}
    assert all(r["status"] == 200 for r in records)
    assert set(records[0]["inputs"]) == set(project.features())  # named columns, not X_0 or lists
    report = tmp_path / "drift.json"
    result = run("--config", project.config, "drift", "--reference", str(project.made.sample),
                 "--current", str(served.log_dir), "--min-rows", "10", "--json-out", str(report))
    doc = json.loads(report.read_text())
    assert result.code == 0 and doc["drifted_columns"] == [], (result.stderr, doc["drifted_columns"])
    assert doc["reference"]["scored_with"]  # the sample scored with the project's features, for output drift
    judged = {c["name"] for c in doc["columns"]}
    assert set(project.features()) <= judged
    assert {f"outputs.{name}" for name in written_columns(project.expected)} <= judged  # logs and predict agree
