"""Concurrency, micro-batching, the prediction log, shutdown, cache, bad input."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import onnxruntime as ort
import pytest
from prometheus_client.parser import text_string_to_metric_families

from mlship.predlog.reader import read_records
from tests import models
from tests.harness.ports import free_port, wait_until
from tests.serve.server_process import start_server
from tests.support import MODEL, run


def row_body(x: np.ndarray) -> dict:
    return {"inputs": [{"name": "X", "shape": [1, 30], "datatype": "FP32", "data": x.tolist()}]}


def burst(server, X, n, workers=32):
    def call(i):
        response = server.post("/v2/models/breast-cancer/infer", row_body(X[i % len(X)]), **{"X-Request-ID": f"req-{i}"})
        return i, response
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(call, range(n)))


def test_concurrent_requests_are_batched_and_each_caller_gets_its_own_rows(tmp_path):
    X, _, _ = models.sample_matrix()
    server = start_server(MODEL, tmp_path, "--max-wait-ms", "5", "--max-batch", "32")
    try:
        results = burst(server, X, 300, workers=48)
        session = ort.InferenceSession(str(MODEL))
        for i, response in results:
            assert response.status == 200
            doc = json.loads(response.body)
            got = {o["name"]: o["data"] for o in doc["outputs"]}
            label, probs = session.run(None, {"X": X[i % len(X)][None, :]})
            assert got["label"] == label.tolist()
            # float32 sums in a tree ensemble do not depend on batch neighbours beyond rounding
            assert np.allclose(got["probabilities"], probs.ravel(), atol=1e-6)
            assert response.headers["x-request-id"] == f"req-{i}"
        families = {f.name: f for f in text_string_to_metric_families(server.metrics())}
        samples = {s.name: s for s in families["mlship_batch_size"].samples if "le" not in s.labels}
        runs, rows = samples["mlship_batch_size_count"].value, samples["mlship_batch_size_sum"].value
        assert rows == 300 and runs < 300, "no request shared a run"
        over_one = [s for s in families["mlship_batch_size"].samples if s.labels.get("le") in ("1", "1.0")]
        assert over_one[0].value < runs  # some runs held more than one row
    finally:
        assert server.terminate() == 0


def test_sigterm_flushes_exactly_the_accepted_records(tmp_path):
    X, _, _ = models.sample_matrix()
    server = start_server(MODEL, tmp_path)
    results = burst(server, X, 250)
    ids = {json.loads(r.body)["id"] for _, r in results}
    assert len(ids) == 250
    assert server.terminate() == 0
    records = list(read_records(server.log_dir))
    assert len(records) == 250
    assert {r.request_id for r in records} == ids
    first = next(r for r in records if r.request_id == "req-0")
    assert first.inputs["mean_radius"] == pytest.approx(float(X[0, 0]))
    assert first.outputs["label"] in (0, 1) and len(first.outputs["probabilities"]) == 2
    assert first.model == "breast-cancer" and first.variant == "stable" and first.status == 200
    assert first.ts.endswith("Z") and first.latency_ms > 0


def test_in_flight_request_finishes_during_shutdown(tmp_path):
    X, _, _ = models.sample_matrix()
    # A 5 s batch window keeps the request in flight while SIGTERM arrives.
    server = start_server(MODEL, tmp_path, "--max-wait-ms", "5000", "--max-batch", "64")
    result = {}
    thread = threading.Thread(target=lambda: result.update(r=server.post("/v2/models/breast-cancer/infer", row_body(X[0]))))
    thread.start()
    wait_until(lambda: _metric(server, "mlship_inflight_requests") >= 2, 60,
               "the infer request in flight")  # it and this /metrics call
    server.process.send_signal(signal.SIGTERM)
    thread.join(10)
    assert result["r"].status == 200
    assert server.process.wait(30) == 0
    assert len(server.log_records()) == 1


@pytest.mark.parametrize("path,body,status,message", [
    ("/predict", {"instances": [{"mean_radius": 1.0, "nonsense": 2}]}, 400, "unknown feature 'nonsense'"),
    ("/predict", {"instances": [{"mean_radius": 1.0}]}, 400, "missing features 'mean_texture'"),
    ("/predict", {"rows": []}, 400, "non-empty 'instances' list"),
    ("/v2/models/breast-cancer/infer", {"inputs": [{"name": "X", "shape": [1, 30], "datatype": "FP32",
                                            "data": ["a"] * 30}]}, 400, "cannot be read as FP32"),
    ("/v2/models/breast-cancer/infer", {"inputs": [{"name": "X", "shape": [1, 29], "datatype": "FP32",
                                            "data": [0.0] * 29}]}, 400, "does not fit the model's [?, 30]"),
    ("/v2/models/breast-cancer/infer", {"inputs": [{"name": "X", "shape": [1, 30], "datatype": "FP32",
                                            "data": [0.0] * 12}]}, 400, "needs 30 values, data has 12"),
    ("/v2/models/breast-cancer/infer", {"inputs": [{"name": "X", "shape": [1, 30], "datatype": "INT64",
                                            "data": [0] * 30}]}, 400, "does not match the model's FP32"),
    ("/v2/models/breast-cancer/infer", {"inputs": [{"name": "Y", "shape": [1], "datatype": "FP32", "data": [1]}]}, 400,
     "unknown input 'Y'"),
    ("/v2/models/breast-cancer/infer", {"inputs": []}, 400, "missing input 'X'"),
    ("/v2/models/breast-cancer/infer", b"{not json", 400, "not valid JSON"),
    ("/v2/models/breast-cancer/infer", b"", 400, "body is empty"),
    ("/v2/models/breast-cancer/infer", b"x" * 5000, 413, "over the limit of 4096 bytes"),
])
def test_bad_input_gets_a_4xx_naming_the_problem_and_serving_goes_on(bad_input_server, path, body, status, message):
    response = bad_input_server.post(path, body)
    assert response.status == status
    assert message in json.loads(response.body)["error"]
    X, _, _ = models.sample_matrix()
    assert bad_input_server.post("/v2/models/breast-cancer/infer", row_body(X[0])).status == 200


def test_predict_with_a_wrong_type_names_the_feature(bad_input_server):
    _, _, names = models.sample_matrix()
    instance = {n: 1.0 for n in names}
    instance["mean_area"] = "big"
    response = bad_input_server.post("/predict", {"instances": [instance]})
    assert response.status == 400
    assert "column 'mean_area' row 1: cannot convert 'big' to float32" in json.loads(response.body)["error"]


@pytest.fixture(scope="module")
def bad_input_server(tmp_path_factory):
    server = start_server(MODEL, tmp_path_factory.mktemp("bad"), "--max-body-bytes", "4096")
    yield server
    server.terminate()


def test_a_model_that_fails_to_load_exits_before_binding(tmp_path):
    bad = tmp_path / "model.onnx"
    bad.write_bytes(MODEL.read_bytes()[:9000])
    port = free_port()
    proc = subprocess.run([sys.executable, "-m", "mlship", "serve", str(bad), "--port", str(port)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 3
    assert proc.stderr.count("\n") == 1 and "truncated or corrupted" in proc.stderr
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", port)) != 0  # never bound


def test_cache_hits_are_logged_as_cached(tmp_path):
    X, _, _ = models.sample_matrix()
    server = start_server(MODEL, tmp_path, "--cache-size", "8")
    first = json.loads(server.post("/v2/models/breast-cancer/infer", row_body(X[3])).body)["outputs"]
    second = json.loads(server.post("/v2/models/breast-cancer/infer", row_body(X[3])).body)["outputs"]
    assert first == second
    assert 'mlship_predictions_total{model="breast-cancer",version="1",variant="stable",cached="true"} 1' in server.metrics()
    assert server.terminate() == 0
    records = server.log_records()
    assert [r.get("cached") for r in records] == [None, True]


def test_sample_rate_zero_logs_nothing_and_rotation_splits_files(tmp_path):
    X, _, _ = models.sample_matrix()
    quiet = start_server(MODEL, tmp_path / "a", "--log-sample-rate", "0")
    burst(quiet, X, 20)
    assert quiet.terminate() == 0
    assert quiet.log_records() == []
    half = start_server(MODEL, tmp_path / "h", "--log-sample-rate", "0.5")
    burst(half, X, 400)
    assert half.terminate() == 0
    logged = [r["request_id"] for r in half.log_records()]
    # Binomial(400, 0.5) outside 100-300: under 1e-20; each logged request once, as sent.
    assert 100 <= len(logged) <= 300 and len(set(logged)) == len(logged)
    assert set(logged) <= {f"req-{i}" for i in range(400)}
    rotating = start_server(MODEL, tmp_path / "b", "--log-max-mb", "0.002")
    burst(rotating, X, 40)
    assert rotating.terminate() == 0
    assert len(list(rotating.log_dir.glob("*.jsonl"))) >= 3
    assert len(rotating.log_records()) == 40


def test_log_overflow_drops_and_counts_but_never_fails_requests(tmp_path):
    X, _, _ = models.sample_matrix()
    server = start_server(MODEL, tmp_path, "--log-queue-size", "1")
    results = burst(server, X, 300, workers=64)
    assert all(r.status == 200 for _, r in results)
    dropped = _metric(server, "mlship_log_records_dropped_total")
    assert server.terminate() == 0
    assert len(server.log_records()) + dropped == 300


def test_two_workers_serve_and_stop(tmp_path):
    X, _, _ = models.sample_matrix()
    server = start_server(MODEL, tmp_path, "--workers", "2")
    assert all(r.status == 200 for _, r in burst(server, X, 40))
    assert server.terminate() == 0
    assert len(server.log_records()) == 40


def test_an_empty_request_does_not_stop_the_log_or_the_shutdown(tmp_path):
    X, _, _ = models.sample_matrix()
    server = start_server(MODEL, tmp_path, "--log-queue-size", "5")
    server.post("/v2/models/breast-cancer/infer",
                {"inputs": [{"name": "X", "shape": [0, 30], "datatype": "FP32", "data": []}]})
    for i in range(10):
        assert server.post("/v2/models/breast-cancer/infer", {"inputs": [
            {"name": "X", "shape": [1, 30], "datatype": "FP32", "data": X[i].tolist()}]}).status == 200
        # Each record reaches the writer before the next request: a writer stopped by the
        # empty request never counts it (a slow one on a busy machine would only drop it).
        wait_until(lambda: _metric(server, "mlship_log_records_total", outcome="written") == i + 1, 20,
                   f"record {i + 1} written")
    assert _metric(server, "mlship_log_records_total", outcome="dropped") == 0
    assert server.terminate(timeout=20) == 0
    assert len(server.log_records()) == 10


def test_a_taken_or_impossible_port_is_a_usage_error():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        taken = subprocess.run([sys.executable, "-m", "mlship", "serve", str(MODEL), "--port", str(port)],
                               capture_output=True, text=True, timeout=60)
    assert taken.returncode == 2 and "cannot listen on 127.0.0.1" in taken.stderr and "serving" not in taken.stdout
    impossible = run("serve", str(MODEL), "--port", "99999")
    assert impossible.code == 2 and "port" in impossible.stderr


def test_one_request_id_for_header_body_and_log(tmp_path):
    X, _, _ = models.sample_matrix()
    server = start_server(MODEL, tmp_path)
    body = {"id": 0, "inputs": [{"name": "X", "shape": [1, 30], "datatype": "FP32", "data": X[0].tolist()}]}
    response = server.post("/v2/models/breast-cancer/infer", body)
    assert json.loads(response.body)["id"] == "0" and response.headers["x-request-id"] == "0"
    assert server.terminate() == 0
    assert [r["request_id"] for r in server.log_records()] == ["0"]


def _metric(server, name: str, **labels: str) -> float:
    """The value of the server's one sample of this metric with these labels (its /metrics,
    which counts itself as in flight); an error when it has none or several."""
    values = [s.value for family in text_string_to_metric_families(server.metrics()) for s in family.samples
              if s.name == name and labels.items() <= s.labels.items()]
    assert len(values) == 1, f"{name} {labels}: {len(values)} samples in /metrics"
    return values[0]

