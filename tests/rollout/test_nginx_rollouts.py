"""Rollouts through a real nginx in front of two real `mlship serve` processes, under steady load."""

from __future__ import annotations

import json
import time
from collections import Counter

import numpy as np
import onnxruntime as ort

from tests.rollout.conftest import MLP, Load, broken_model, sample_rows, slow_model
from tests.rollout.overlap import file_lock_held, run_overlapping
from tests.support import MODEL


def share(replies, slot: str) -> float:
    return 100.0 * sum(r.slot == slot for r in replies) / len(replies)


def test_canary_steps_keep_every_request_and_the_split(stage_factory):
    stage = stage_factory()
    load = Load(stage.port).start()
    try:
        result = stage.rollout("--json", "start", "bc", "--strategy", "canary", "--candidate", "2.0.0",
                               "--stable", "1.0.0")
        assert result.code == 0, result.stderr
        assert result.json()["rollout"]["route"] == {"stable": "blue", "candidate": "green", "weight": 10.0,
                                                     "mirror": False}
        assert stage.route()["weight"] == 10.0
        sticky = None
        for weight in (10, 50, 100):
            mark = time.monotonic()
            replies = load.wait_for(mark, 1000)
            assert abs(share(replies, "green") - weight) <= 5, (weight, share(replies, "green"))
            assert all(r.variant == {"blue": "blue", "green": "green"}[r.slot] for r in replies)
            if weight == 10:
                sticky = {r.client for r in replies if r.slot == "green"}
            elif weight == 50:  # clients on the canary at 10% stay on it at 50%
                seen = Counter((r.client, r.slot) for r in replies if r.client in sticky)
                assert seen and all(slot == "green" for _, slot in seen)
            result = stage.rollout("--json", "step", "bc")
            assert result.code == 0, result.stdout + result.stderr
            gate = result.json()["gate"]
            assert gate["result"] == "pass" and gate["counts"]["candidate"] >= 50
        doc = result.json()["rollout"]
        assert doc["phase"] == "Healthy" and doc["stable"] == {"version": "2.0.0", "slot": "green"}
        assert doc["candidate"] is None and doc["previous_stable"]["version"] == "1.0.0"
        mark = time.monotonic()
        assert share(load.wait_for(mark, 200), "green") == 100
    finally:
        load.stop()
    failed = [r for r in load.replies if r.status != 200]
    assert not load.errors and not failed, (load.errors[:3], failed[:3])
    assert len(load.replies) > 3000
    history = stage.rollout("--json", "history", "bc").json()["history"]
    assert [e["verb"] for e in history] == ["start", "step", "step", "step"]
    assert history[1]["before"]["route"]["weight"] == 10 and history[1]["after"]["route"]["weight"] == 50
    assert all(e["user"] and e["time"].endswith("Z") for e in history)


def test_blue_green_switch_and_abort_drop_nothing(stage_factory):
    stage = stage_factory(analysis="{min_requests: 20, max_error_rate: 0.01}")
    load = Load(stage.port).start()
    try:
        assert stage.rollout("start", "bc", "--strategy", "bluegreen", "--candidate", "2.0.0",
                             "--stable", "1.0.0").code == 0
        assert share(load.wait_for(time.monotonic(), 200), "blue") == 100  # green is only a preview
        result = stage.rollout("--json", "step", "bc")
        assert result.code == 0, result.stderr
        assert result.json()["rollout"]["route"]["weight"] == 100
        assert share(load.wait_for(time.monotonic(), 400), "green") == 100
        result = stage.rollout("--json", "abort", "bc")
        assert result.code == 6 and result.json()["rollout"]["aborted"] is True
        assert share(load.wait_for(time.monotonic(), 400), "blue") == 100
        assert stage.rollout("abort", "bc").code == 6  # idempotent
        assert stage.rollout("step", "bc").code == 6  # an aborted rollout does not move
    finally:
        load.stop()
    assert not load.errors and all(r.status == 200 for r in load.replies)
    verbs = [e["verb"] for e in stage.state()["history"]]
    assert verbs == ["start", "step", "abort"]


def test_shadow_mirrors_to_the_candidate_and_reports_agreement(stage_factory):
    stage = stage_factory()
    assert stage.rollout("start", "bc", "--strategy", "shadow", "--candidate", "2.0.0", "--stable", "1.0.0").code == 0
    assert stage.route()["mirror"] is True
    load = Load(stage.port)
    load.start(workers=0)
    names, rows = sample_rows()
    replies = [load.send(f"c{i}", i) for i in range(len(rows))]
    assert all(r.status == 200 and r.slot == "blue" and r.variant == "blue" for r in replies)
    # The two models' known differences, computed in process.
    gbt = ort.InferenceSession(str(MODEL)).run(None, {"X": rows})[0]
    mlp = ort.InferenceSession(str(MLP)).run(None, {"X": rows})[0]
    expected = float(np.mean(gbt == mlp))
    assert 0.8 < expected < 1.0
    assert [r.body["predictions"][0]["label"] for r in replies] == gbt.tolist()  # users only see stable
    deadline = time.monotonic() + 20
    # Both logs are written off the request path (every 50 ms): wait for every record of each.
    while min(len(stage.green.log_records()), len(stage.blue.log_records())) < len(rows):
        assert time.monotonic() < deadline, "the stable and candidate logs did not get every (mirrored) request"
        time.sleep(0.2)
    green_ids = {r["request_id"] for r in stage.green.log_records()}
    assert {r.request_id for r in replies} == green_ids
    result = stage.rollout("--json", "status", "bc")
    assert result.code == 0, result.stderr
    shadow = result.json()["gate"]["shadow"]
    assert shadow["joined"] == len(rows) and shadow["agreement"] == round(expected, 6)
    assert shadow["disagreements"] == int(np.sum(gbt != mlp))
    assert shadow["latency_ms"]["candidate"]["p99"] is not None
    text = stage.rollout("status", "bc").stdout
    assert f"agreement {expected:.2%}" in text
    # shadow -> canary at the first step
    result = stage.rollout("--json", "promote", "bc")
    assert result.code == 0 and result.json()["rollout"]["strategy"] == "canary"
    assert stage.route() | {} and stage.route()["weight"] == 10.0 and stage.route()["mirror"] is False


def test_a_failing_candidate_is_rolled_back_by_the_gate(stage_factory, tmp_path):
    stage = stage_factory(broken_model(tmp_path / "broken.onnx"), analysis="{min_requests: 30, max_error_rate: 0.05}")
    load = Load(stage.port).start()
    try:
        assert stage.rollout("start", "bc", "--strategy", "canary", "--candidate", "2.0.0", "--stable", "1.0.0").code == 0
        replies = load.wait_for(time.monotonic(), 600)
        assert any(r.status >= 500 and r.slot == "green" for r in replies)
        result = stage.rollout("--json", "step", "bc")
        assert result.code == 6, result.stdout + result.stderr
        doc = result.json()
        assert doc["gate"]["result"] == "fail" and doc["rollout"]["aborted"] is True
        error_metric = next(m for m in doc["gate"]["metrics"] if m["name"] == "error_rate")
        assert error_metric["result"] == "fail" and error_metric["value"] > 0.5
        assert stage.route()["weight"] == 0
        after = load.wait_for(time.monotonic(), 300)
        assert all(r.status == 200 and r.slot == "blue" for r in after)
    finally:
        load.stop()
    assert "gate failed" in stage.state()["message"]


def test_a_slow_candidate_is_rolled_back_by_the_latency_gate(stage_factory, tmp_path):
    stage = stage_factory(slow_model(tmp_path / "slow.onnx"),
                          analysis="{min_requests: 30, max_error_rate: 0.01, max_p99_latency_ms: 2.5}")
    load = Load(stage.port, rate=100).start()
    try:
        assert stage.rollout("start", "bc", "--candidate", "2.0.0", "--stable", "1.0.0").code == 0
        load.wait_for(time.monotonic(), 500)
        result = stage.rollout("--json", "step", "bc")
        assert result.code == 6, result.stdout + result.stderr
        metrics = {m["name"]: m for m in result.json()["gate"]["metrics"]}
        assert metrics["p99_latency_ms"]["result"] == "fail" and metrics["p99_latency_ms"]["value"] > 2.5
        assert metrics["error_rate"]["result"] == "pass"
        assert stage.route()["weight"] == 0
        after = load.wait_for(time.monotonic(), 200)
        assert all(r.status == 200 and r.slot == "blue" for r in after)
    finally:
        load.stop()
    assert all(r.status == 200 for r in load.replies)  # slow is not broken: nobody got an error


def test_dry_run_judges_without_acting(stage_factory, tmp_path):
    stage = stage_factory(broken_model(tmp_path / "broken.onnx"), analysis="{min_requests: 20, max_error_rate: 0.05}")
    assert stage.rollout("start", "bc", "--candidate", "2.0.0", "--stable", "1.0.0").code == 0
    result = stage.rollout("step", "bc", "--dry-run")
    assert result.code == 5 and "inconclusive" in result.stdout  # no traffic yet
    load = Load(stage.port).start()
    try:
        load.wait_for(time.monotonic(), 500)
    finally:
        load.stop()
    result = stage.rollout("step", "bc", "--dry-run")
    assert result.code == 4 and "would fail" in result.stdout and "error_rate" in result.stdout
    assert stage.route()["weight"] == 10 and stage.state()["aborted"] is False


def test_two_concurrent_steps_take_one_step(stage_factory):
    stage = stage_factory(analysis="{min_requests: 0, max_error_rate: 0.01}")
    assert stage.rollout("start", "bc", "--candidate", "2.0.0", "--stable", "1.0.0").code == 0
    # Both steps have started and wait for the lock (the test holds it) before either acts.
    args = ["-c", str(stage.project / "mlship.yaml"), "--json", "rollout", "step", "bc"]
    results = run_overlapping(file_lock_held(stage.project / ".mlship" / "rollouts" / "bc.lock"), args, args)
    assert all(r.code == 0 for r in results), [r.stderr for r in results]
    messages = sorted(json.loads(r.stdout)["message"] for r in results)
    assert any("already taken by a concurrent call" in m for m in messages), messages
    state = stage.state()
    assert state["step"] == 1 and state["route"]["weight"] == 50 and stage.route()["weight"] == 50
    assert [e["verb"] for e in state["history"]] == ["start", "step"]


def test_a_refused_config_keeps_the_old_one_serving(stage_factory):
    stage = stage_factory(green_addr="127.0.0.1:99999")
    before = stage.conf.read_bytes()
    generation = stage.route()["generation"]
    result = stage.rollout("start", "bc", "--candidate", "2.0.0", "--stable", "1.0.0")
    assert result.code == 7 and "nginx -t refused" in result.stderr and "invalid port" in result.stderr
    assert len(result.stderr.strip().splitlines()) <= 2
    assert stage.conf.read_bytes() == before and stage.route()["generation"] == generation
    load = Load(stage.port)
    load.start(workers=0)
    assert all(load.send(f"u{i}", i).status == 200 for i in range(20))
    assert not (stage.project / ".mlship" / "rollouts" / "bc.json").exists()


def test_a_step_killed_mid_way_is_completed_by_running_it_again(stage_factory):
    # The reload command kills mlship after the new config passed `nginx -t` and before nginx reloads it.
    stage = stage_factory(analysis="{min_requests: 0, max_error_rate: 0.01}")
    assert stage.rollout("start", "bc", "--candidate", "2.0.0", "--stable", "1.0.0").code == 0
    config = stage.project / "mlship.yaml"
    good = config.read_text()
    config.write_text(good.replace("    prefix:", "    reload: sh -c 'kill -9 $PPID'\n    prefix:"))
    killed = stage.rollout_process("step", "bc")
    assert killed.code == -9
    state = stage.state()
    assert state["pending"]["verb"] == "step" and state["route"]["weight"] == 10
    assert stage.route()["weight"] == 10  # nginx still serves the old split
    config.write_text(good)
    result = stage.rollout("--json", "step", "bc")
    assert result.code == 0 and "completed the interrupted step" in result.json()["message"]
    state = stage.state()
    assert state["pending"] is None and state["route"]["weight"] == 50 and stage.route()["weight"] == 50
    assert [e["verb"] for e in state["history"]] == ["start", "step (completed after an interruption)"]


def test_pause_resume_and_undo(stage_factory):
    stage = stage_factory(analysis="{min_requests: 0, max_error_rate: 0.01}")
    assert stage.rollout("start", "bc", "--candidate", "2.0.0", "--stable", "1.0.0").code == 0
    assert stage.rollout("pause", "bc").code == 5
    result = stage.rollout("step", "bc")
    assert result.code == 5 and "resume" in result.stdout
    assert stage.rollout("resume", "bc").code == 0
    assert stage.rollout("promote", "bc", "--full").code == 0
    assert stage.route()["weight"] == 0 and stage.route()["stable"] == "green"
    status = stage.rollout("--json", "status", "bc").json()
    assert status["rollout"]["phase"] == "Healthy" and status["live"]["stable"] == "green"
    result = stage.rollout("--json", "undo", "bc")
    assert result.code == 6 and result.json()["rollout"]["stable"]["version"] == "1.0.0"
    assert stage.route()["stable"] == "blue"
    # The next rollout starts from the restored stable version.
    result = stage.rollout("--json", "start", "bc", "--candidate", "2.0.0")
    assert result.code == 0, result.stderr
    assert result.json()["rollout"]["stable"] == {"version": "1.0.0", "slot": "blue"}
