"""Every endpoint through a real HTTP client against `mlship serve` in a subprocess."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests import models
from tests.serve.server_process import start_server
from tests.support import MODEL


@pytest.fixture(scope="module")
def reference():
    X, y, names = models.sample_matrix()
    label, probs = models.serving_session(MODEL).run(None, {"X": X})
    return X, names, label, probs


def infer_body(X: np.ndarray) -> dict:
    return {"inputs": [{"name": "X", "shape": list(X.shape), "datatype": "FP32", "data": X.ravel().tolist()}]}


def outputs_of(response) -> dict[str, np.ndarray]:
    doc = json.loads(response.body)
    return {o["name"]: np.array(o["data"]).reshape(o["shape"]) for o in doc["outputs"]}


def test_health_and_server_metadata(example_server):
    assert json.loads(example_server.get("/v2/health/live").body) == {"live": True}
    assert json.loads(example_server.get("/v2/health/ready").body) == {"ready": True}
    assert json.loads(example_server.get("/v2/models/bc/ready").body) == {"ready": True}
    meta = json.loads(example_server.get("/v2").body)
    assert meta["name"] == "mlship" and "version" in meta


def test_model_metadata_follows_the_protocol(example_server):
    for path in ("/v2/models/bc", "/v2/models/bc/versions/2.0.0"):
        meta = json.loads(example_server.get(path).body)
        assert meta["name"] == "bc" and meta["versions"] == ["2.0.0"] and meta["platform"] == "onnxruntime_onnx"
        assert meta["inputs"] == [{"name": "X", "datatype": "FP32", "shape": [-1, 30]}]
        assert meta["outputs"] == [{"name": "label", "datatype": "INT64", "shape": [-1]},
                                   {"name": "probabilities", "datatype": "FP32", "shape": [-1, 2]}]
        assert meta["parameters"]["feature_names"][0] == "mean_radius"


def test_infer_equals_onnxruntime_exactly(example_server, reference):
    X, _, label, probs = reference
    for path in ("/v2/models/bc/infer", "/v2/models/bc/versions/2.0.0/infer"):
        response = example_server.post(path, infer_body(X))
        assert response.status == 200, response.body
        got = outputs_of(response)
        assert np.array_equal(got["label"], label)
        assert np.array_equal(got["probabilities"].astype(np.float32), probs)


def test_infer_row_by_row_and_nested_data(example_server, reference):
    X = reference[0]
    session = models.serving_session(MODEL)
    for i in (0, 7, 170):
        label, probs = session.run(None, {"X": X[i:i + 1]})
        body = {"id": f"row-{i}", "inputs": [{"name": "X", "shape": [1, 30], "datatype": "FP32",
                                              "data": [X[i].tolist()]}]}
        response = example_server.post("/v2/models/bc/infer", body)
        doc = json.loads(response.body)
        assert doc["id"] == f"row-{i}" and doc["model_name"] == "bc" and doc["model_version"] == "2.0.0"
        got = outputs_of(response)
        assert got["label"][0] == label[0] and np.float32(got["probabilities"][0, 1]) == probs[0, 1]


def test_infer_returns_only_requested_outputs(example_server, reference):
    X = reference[0][:3]
    body = {**infer_body(X), "outputs": [{"name": "probabilities"}]}
    assert [o["name"] for o in json.loads(example_server.post("/v2/models/bc/infer", body).body)["outputs"]] == [
        "probabilities"]


def test_predict_maps_named_features(example_server, reference):
    X, names, _, _ = reference
    # The same rows in one run: tree ensembles may sum in another order for another batch size.
    label, probs = models.serving_session(MODEL).run(None, {"X": X[:20]})
    instances = [dict(zip(names, map(float, row))) for row in X[:20]]
    response = example_server.post("/predict", {"instances": instances})
    assert response.status == 200, response.body
    doc = json.loads(response.body)
    assert doc["model"] == "bc" and doc["version"] == "2.0.0"
    assert [p["label"] for p in doc["predictions"]] == label[:20].tolist()
    assert np.array_equal(np.array([p["probabilities"] for p in doc["predictions"]], dtype=np.float32), probs[:20])


def test_request_id_and_variant_headers(example_server, reference):
    response = example_server.post("/v2/models/bc/infer", infer_body(reference[0][:1]), **{"X-Request-ID": "abc-123"})
    assert response.headers["x-request-id"] == "abc-123"
    assert response.headers["x-mlship-variant"] == "canary"
    generated = example_server.get("/v2/health/live")
    assert len(generated.headers["x-request-id"]) == 32


def test_unknown_model_version_path_and_method(example_server):
    assert example_server.get("/v2/models/other").status == 404
    assert example_server.get("/v2/models/bc/versions/9.9").status == 404
    assert example_server.get("/nope").status == 404
    wrong = example_server.get("/v2/models/bc/infer")
    assert wrong.status == 405 and "use POST" in json.loads(wrong.body)["error"]


def test_metrics_are_prometheus_text_with_labels(example_server, reference):
    from prometheus_client.parser import text_string_to_metric_families

    example_server.post("/v2/models/bc/infer", infer_body(reference[0][:2]))
    example_server.post("/predict", {"instances": [{"bad": 1}]})
    response = example_server.get("/metrics")
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    families = {f.name: f for f in text_string_to_metric_families(response.body.decode())}
    requests = {(s.labels["endpoint"], s.labels["status"]): s.value for s in families["mlship_requests"].samples}
    assert requests[("infer", "200")] >= 1 and requests[("predict", "400")] >= 1
    sample = families["mlship_requests"].samples[0]
    assert (sample.labels["model"], sample.labels["version"], sample.labels["variant"]) == ("bc", "2.0.0", "canary")
    assert families["mlship_request_duration_seconds"].type == "histogram"
    assert families["mlship_batch_size"].type == "histogram"
    assert "mlship_log_records_dropped" in families


def test_multi_input_model_through_both_endpoints(mixed_model, tmp_path):
    server = start_server(mixed_model, tmp_path)
    try:
        age = np.array([[30], [41], [7]], dtype=np.int64)
        city = np.array([["Oslo"], ["Rome"], ["Lima"]], dtype=object)
        score = np.array([[0.5], [1.25], [-2.0]], dtype=np.float32)
        expected = models.serving_session(mixed_model).run(None, {"age": age, "city": city, "score": score})
        body = {"inputs": [
            {"name": "age", "shape": [3, 1], "datatype": "INT64", "data": age.ravel().tolist()},
            {"name": "city", "shape": [3, 1], "datatype": "BYTES", "data": city.ravel().tolist()},
            {"name": "score", "shape": [3, 1], "datatype": "FP32", "data": score.ravel().tolist()},
        ]}
        got = outputs_of(server.post("/v2/models/mixed/infer", body))
        assert np.array_equal(got["out"].astype(np.float32), expected[0])
        assert got["city_seen"].ravel().tolist() == ["Oslo", "Rome", "Lima"]
        instances = [{"age": 30, "city": "Oslo", "score": 0.5}, {"age": 41, "city": "Rome", "score": 1.25}]
        preds = json.loads(server.post("/predict", {"instances": instances}).body)["predictions"]
        assert preds == [{"out": 30.5, "city_seen": "Oslo"}, {"out": 42.25, "city_seen": "Rome"}]
    finally:
        assert server.terminate() == 0
    records = server.log_records()
    assert len(records) == 5
    assert records[0]["inputs"] == {"age": 30, "city": "Oslo", "score": 0.5} and records[0]["row"] == 0
