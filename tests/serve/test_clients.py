"""Standard clients against a real `mlship serve`, with their defaults.

tritonclient's HTTP client sends inputs as binary tensors and asks for
binary outputs unless told otherwise; KServe v1 and MLflow's scoring
formats come as their documentation writes them.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests import models
from tests.adversarial.test_serve import typed_model
from tests.serve.server_process import start_server
from tests.support import MODEL

httpclient = pytest.importorskip("tritonclient.http")


@pytest.fixture(scope="module")
def reference():
    X, _, names = models.sample_matrix()
    label, probs = models.serving_session(MODEL).run(None, {"X": X[:20]})
    return X[:20], names, label, probs


@pytest.fixture(scope="module")
def triton(example_server):
    client = httpclient.InferenceServerClient(url=f"127.0.0.1:{example_server.port}")
    yield client
    client.close()


def x_input(X: np.ndarray, **options) -> httpclient.InferInput:
    tensor = httpclient.InferInput("X", list(X.shape), "FP32")
    tensor.set_data_from_numpy(X, **options)
    return tensor


# -- tritonclient -------------------------------------------------------------------


def test_tritonclient_defaults_binary_in_and_out(triton, reference):
    X, _, label, probs = reference
    for version in ("", "2.0.0"):
        result = triton.infer("bc", [x_input(X)], model_version=version)
        assert np.array_equal(result.as_numpy("label"), label)
        assert result.as_numpy("probabilities").dtype == np.float32
        assert np.array_equal(result.as_numpy("probabilities"), probs)
        assert result.get_response()["model_name"] == "bc"


def test_tritonclient_requested_outputs_binary_or_json(triton, reference):
    X, _, label, probs = reference
    outputs = [httpclient.InferRequestedOutput("probabilities", binary_data=True),
               httpclient.InferRequestedOutput("label", binary_data=False)]
    result = triton.infer("bc", [x_input(X, binary_data=False)], outputs=outputs, request_id="client-7")
    response = result.get_response()
    by_name = {o["name"]: o for o in response["outputs"]}
    assert by_name["probabilities"]["parameters"] == {"binary_data_size": probs.nbytes}
    assert "data" not in by_name["probabilities"] and "parameters" not in by_name["label"]
    assert by_name["label"]["data"] == label.tolist() and response["id"] == "client-7"
    assert np.array_equal(result.as_numpy("probabilities"), probs)
    assert np.array_equal(result.as_numpy("label"), label)


def test_tritonclient_server_metadata_lists_the_extension(triton):
    assert "binary_tensor_data" in triton.get_server_metadata()["extensions"]
    assert triton.is_model_ready("bc")


def test_tritonclient_every_datatype_round_trips(tmp_path):
    """FP32, INT64, BOOL and BYTES (with non-ASCII and empty strings) in binary and back."""
    server = start_server(typed_model(tmp_path / "typed.onnx"), tmp_path, "--name", "typed")
    client = httpclient.InferenceServerClient(url=f"127.0.0.1:{server.port}")
    try:
        values = {"f": np.array([[1.5], [-2.25], [np.inf]], dtype=np.float32),
                  "i": np.array([[3], [-(2**40)], [0]], dtype=np.int64),
                  "b": np.array([[True], [False], [True]]),
                  "s": np.array([["Oslo"], ["Zürich"], [""]], dtype=object)}
        datatypes = {"f": "FP32", "i": "INT64", "b": "BOOL", "s": "BYTES"}
        inputs = []
        for name, value in values.items():
            inputs.append(httpclient.InferInput(name, list(value.shape), datatypes[name]))
            inputs[-1].set_data_from_numpy(value)
        result = client.infer("typed", inputs, request_id="typed-1")
        for name, value in values.items():
            got = result.as_numpy(f"{name}_out")
            if name == "s":
                got = np.vectorize(lambda b: b.decode())(got).astype(object)
            assert got.dtype == value.dtype and np.array_equal(got, value), name
    finally:
        client.close()
        assert server.terminate() == 0
    records = server.log_records()
    assert len(records) == 3 and {r["request_id"] for r in records} == {"typed-1"}
    assert records[1]["inputs"] == {"f": -2.25, "i": -(2**40), "b": False, "s": "Zürich"}


# -- KServe v1 ----------------------------------------------------------------------


def test_kserve_v1_instances_as_lists_and_objects(example_server, reference):
    X, names, label, probs = reference
    assert json.loads(example_server.get("/v1/models/bc").body) == {"name": "bc", "ready": True}
    assert json.loads(example_server.get("/v1/models").body) == {"models": ["bc"]}
    as_lists = {"instances": X.tolist()}
    as_objects = {"instances": [dict(zip(names, map(float, row))) for row in X]}
    for body in (as_lists, as_objects):
        response = example_server.post("/v1/models/bc:predict", body)
        assert response.status == 200, response.body
        predictions = json.loads(response.body)["predictions"]
        assert [p["label"] for p in predictions] == label.tolist()
        assert np.array_equal(np.array([p["probabilities"] for p in predictions], dtype=np.float32), probs)


def test_kserve_v1_one_output_gives_bare_values(tmp_path):
    path, X, _ = models.linear_regressor(tmp_path / "reg.onnx")
    expected = models.serving_session(path).run(None, {"X": X[:4]})[0]
    server = start_server(path, tmp_path, "--name", "reg", log=False)
    try:
        response = server.post("/v1/models/reg:predict", {"instances": X[:4].tolist()})
        assert response.status == 200, response.body
        predictions = json.loads(response.body)["predictions"]  # one value per row, as /predict gives it
        assert np.array_equal(np.array(predictions, dtype=np.float32), expected.ravel())
        assert server.post("/v1/models/other:predict", {"instances": [[1, 2]]}).status == 404
        assert server.post("/v1/models/reg:explain", {"instances": [[1, 2]]}).status == 404
        assert server.get("/v1/models/reg:predict").status == 405
    finally:
        server.terminate()


# -- MLflow's scoring formats -------------------------------------------------------


def mlflow_bodies(X: np.ndarray, names: list[str]) -> dict[str, dict]:
    """The request bodies MLflow's "Deploy MLflow Model as a Local Inference Server" page shows."""
    rows = X.tolist()
    return {
        "dataframe_split": {"dataframe_split": {"columns": names, "data": rows}},
        "dataframe_split with index": {"dataframe_split": {"index": list(range(len(rows))), "columns": names,
                                                           "data": rows}},
        "dataframe_records": {"dataframe_records": [dict(zip(names, row)) for row in rows]},
        "instances as lists": {"instances": rows},
        "inputs as lists": {"inputs": rows},
        "inputs as columns": {"inputs": {n: X[:, j].tolist() for j, n in enumerate(names)}},
        "inputs by input name": {"inputs": {"X": rows}},
        "with params": {"dataframe_split": {"columns": names, "data": rows}, "params": {}},
    }


@pytest.mark.parametrize("path", ["/predict", "/invocations"])
@pytest.mark.parametrize("form", list(mlflow_bodies(np.zeros((1, 2)), ["a", "b"])))
def test_mlflow_scoring_formats_predict_like_onnxruntime(example_server, reference, path, form):
    X, names, label, probs = reference
    response = example_server.post(path, mlflow_bodies(X, names)[form])
    assert response.status == 200, response.body
    predictions = json.loads(response.body)["predictions"]
    assert [p["label"] for p in predictions] == label.tolist()
    assert np.array_equal(np.array([p["probabilities"] for p in predictions], dtype=np.float32), probs)


def test_mlflow_ping_and_one_format_per_body(example_server, reference):
    X, names, _, _ = reference
    assert example_server.get("/ping").status == 200
    both = {"instances": X[:1].tolist(), "inputs": X[:1].tolist()}
    response = example_server.post("/predict", both)
    assert response.status == 400 and "it has instances, inputs" in json.loads(response.body)["error"]


def test_rows_as_lists_are_logged_with_feature_names(tmp_path, reference):
    X, names, label, _ = reference
    server = start_server(MODEL, tmp_path, "--name", "bc")
    try:
        assert server.post("/predict", {"inputs": X[:2].tolist()}, **{"X-Request-ID": "rows-1"}).status == 200
        assert server.post("/v1/models/bc:predict", {"instances": X[2:3].tolist()}).status == 200
    finally:
        assert server.terminate() == 0
    records = server.log_records()
    assert [r["outputs"]["label"] for r in records] == label[:3].tolist()
    assert records[0]["request_id"] == "rows-1" and records[1]["row"] == 1
    assert list(records[2]["inputs"]) == names and records[2]["inputs"][names[0]] == pytest.approx(float(X[2, 0]))
