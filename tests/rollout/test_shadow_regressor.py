"""A shadow rollout of a regressor through a real nginx and two real `mlship serve`
processes: agreement is judged with rollout.analysis.rtol and atol (numpy.isclose)."""

from __future__ import annotations

import json
import time

import numpy as np
import onnxruntime as ort
import pytest

from tests.rollout.conftest import Load, sample_rows


def linear_regressor(path, scale: float = 1.0):
    """y = X @ w + b on the example's 30 named columns; `scale` multiplies w and b, so every
    output of the scaled model differs from the unscaled one by the same relative amount."""
    from onnx import TensorProto, helper, numpy_helper

    names, rows = sample_rows()
    rng = np.random.default_rng(5)
    w = (rng.standard_normal((30, 1)) / rows.std(axis=0)[:, None]).astype(np.float32) * scale
    b = np.array([3.0], dtype=np.float32) * scale
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["X", "w"], ["m"]), helper.make_node("Add", ["m", "b"], ["variable"])],
        "linear", [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["N", 30])],
        [helper.make_tensor_value_info("variable", TensorProto.FLOAT, ["N", 1])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    helper.set_model_props(model, {"mlship.feature_names": json.dumps(names)})
    path.write_bytes(model.SerializeToString())
    return path


def test_shadow_agreement_of_a_regressor_uses_rtol_and_atol(stage_factory, tmp_path):
    stable = linear_regressor(tmp_path / "stable.onnx")
    candidate = linear_regressor(tmp_path / "candidate.onnx", scale=1.0002)  # 2e-4 relative, everywhere
    stage = stage_factory(candidate, stable_model=stable,
                          analysis="{min_requests: 20, max_error_rate: 0.01, max_disagreement: 0.05, "
                                   "rtol: 0.001, atol: 0.0}")
    assert stage.rollout("start", "bc", "--strategy", "shadow", "--candidate", "2.0.0", "--stable", "1.0.0").code == 0
    names, rows = sample_rows()
    rows = rows[:60]
    load = Load(stage.port)
    load.start(workers=0)
    replies = [load.send(f"c{i}", i) for i in range(len(rows))]
    assert all(r.status == 200 and r.slot == "blue" for r in replies)
    deadline = time.monotonic() + 30
    # Both logs are written off the request path (every 50 ms): wait for every record of each.
    while min(len(stage.green.log_records()), len(stage.blue.log_records())) < len(rows):
        assert time.monotonic() < deadline, "the candidate did not get every mirrored request"
        time.sleep(0.2)
    y_stable = ort.InferenceSession(str(stable)).run(None, {"X": rows})[0][:, 0].astype(np.float64)
    y_cand = ort.InferenceSession(str(candidate)).run(None, {"X": rows})[0][:, 0].astype(np.float64)
    assert [r.body["predictions"][0]["variable"] for r in replies] == pytest.approx(y_stable, rel=1e-6)

    result = stage.rollout("--json", "status", "bc")  # rtol 1e-3: a 2e-4 relative change agrees
    assert result.code == 0, result.stderr
    shadow = result.json()["gate"]["shadow"]
    assert shadow["joined"] == len(rows) and shadow["agreement"] == 1.0
    assert (shadow["rtol"], shadow["atol"]) == (0.001, 0.0)
    assert shadow["output_deltas"]["variable"]["max"] == np.round(np.max(np.abs(y_cand - y_stable)), 6) > 0

    # The defaults (rtol 1e-5, atol 1e-6) judge the same change a disagreement, except where the
    # difference is within them (outputs near 0).
    config = stage.project / "mlship.yaml"
    config.write_text(config.read_text().replace(", rtol: 0.001, atol: 0.0", ""))
    result = stage.rollout("--json", "status", "bc")
    shadow = result.json()["gate"]["shadow"]
    logged = {side: {r["request_id"]: r["outputs"]["variable"] for r in server.log_records()}
              for side, server in (("stable", stage.blue), ("candidate", stage.green))}
    pairs = np.array([(logged["candidate"][k], logged["stable"][k]) for k in logged["stable"]])
    expected = np.isclose(pairs[:, 0], pairs[:, 1], rtol=1e-5, atol=1e-6)  # what was logged, as numpy judges it
    assert shadow["disagreements"] == int(np.sum(~expected)) > len(rows) // 2
    disagreement = next(m for m in result.json()["gate"]["metrics"] if m["name"] == "disagreement")
    assert disagreement["result"] == "fail"
