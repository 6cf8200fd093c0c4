"""State-machine rules of the rollout verbs, through the file router (no servers needed)."""

from __future__ import annotations

import json

import pytest

from mlship.config import AnalysisConfig
from mlship.errors import ServiceError
from mlship.rollout import engine
from mlship.rollout.gates import Window, compare_shadow, evaluate
from mlship.rollout.routers.file import FileRouter
from mlship.rollout.state import FileStateStore
from tests.support import run


@pytest.fixture
def project(tmp_path):
    (tmp_path / "logs").mkdir()
    (tmp_path / "mlship.yaml").write_text("""name: bc
rollout:
  router: {type: file, path: route.json, upstreams: {blue: "http://127.0.0.1:1", green: "http://127.0.0.1:2"}}
  steps: [10, 50, 100]
  logs: [logs]
  analysis: {min_requests: 0}
""")
    return tmp_path


def ro(project, *args):
    return run("-c", str(project / "mlship.yaml"), "--json", "rollout", *args)


def route(project):
    return json.loads((project / "route.json").read_text())


def state(project):
    return json.loads((project / ".mlship" / "rollouts" / "bc.json").read_text())


def test_undo_is_idempotent_and_never_routes_to_a_failed_candidate(project):
    assert ro(project, "start", "bc", "--candidate", "2", "--stable", "1").code == 0
    assert ro(project, "promote", "bc", "--full").code == 0
    assert route(project)["stable"] == "green"  # 2 on green, 1 kept on blue for undo
    assert ro(project, "start", "bc", "--candidate", "3").code == 0  # 3 goes to blue: 1 is gone from there
    assert state(project)["previous_stable"] is None
    assert ro(project, "abort", "bc").code == 6
    result = ro(project, "undo", "bc")
    assert result.code == 6 and "already rolled back" in result.json()["message"]
    assert route(project)["stable"] == "green" and route(project)["weight"] == 0  # 2 keeps serving
    # After a clean promotion, undo goes back once; running it again does not flip back.
    assert ro(project, "start", "bc", "--candidate", "4").code == 0
    assert ro(project, "promote", "bc", "--full").code == 0
    assert ro(project, "undo", "bc").code == 6
    assert route(project)["stable"] == "green" and state(project)["stable"]["version"] == "2"
    again = ro(project, "undo", "bc")
    assert again.code == 6 and route(project)["stable"] == "green"
    assert [e["verb"] for e in state(project)["history"]].count("undo") == 1


def test_starting_the_stable_version_again_is_complete(project):
    assert ro(project, "start", "bc", "--candidate", "2", "--stable", "1").code == 0
    assert ro(project, "promote", "bc", "--full").code == 0
    result = ro(project, "start", "bc", "--candidate", "2")  # a CI retry after the promotion
    assert result.code == 0 and "stable version already" in result.json()["message"]


def test_abort_drops_an_interrupted_change_instead_of_finishing_it(project):
    assert ro(project, "start", "bc", "--candidate", "2", "--stable", "1").code == 0
    doc = state(project)
    doc["pending"] = {"verb": "step", "state": {**{k: v for k, v in doc.items() if k not in ("history", "pending")},
                                                  "route": {**doc["route"], "weight": 50.0}, "step": 1}}
    (project / ".mlship" / "rollouts" / "bc.json").write_text(json.dumps(doc))
    writes = []
    original = FileRouter.apply
    FileRouter.apply = lambda self, r: (writes.append(r.weight), original(self, r))[1]
    try:
        assert ro(project, "abort", "bc").code == 6
    finally:
        FileRouter.apply = original
    assert writes == [0]  # straight to stable, never through 50%
    assert [e["verb"] for e in state(project)["history"]][-2:] == ["discard", "abort"]


def test_a_router_failure_after_a_change_keeps_it_pending(project, tmp_path):
    class Unverified(FileRouter):
        def apply(self, r):  # the change lands, then its verification fails (a reload not confirmed)
            super().apply(r)
            raise ServiceError("route not confirmed")

    store = FileStateStore(project / ".mlship" / "rollouts")
    settings = {"path": str(project / "route.json"), "upstreams": {"blue": "a", "green": "b"}}
    good = engine.Rollout(name="bc", store=store, router_factory=lambda: FileRouter(name="bc", **settings),
                          analysis=AnalysisConfig(min_requests=0), logs=[str(project / "logs")])
    assert engine.start(good, strategy="canary", candidate="2", stable="1").code == 0
    bad = engine.Rollout(name="bc", store=store, router_factory=lambda: Unverified(name="bc", **settings),
                         analysis=AnalysisConfig(min_requests=0), logs=[str(project / "logs")])
    with pytest.raises(ServiceError):
        engine.step(bad)
    assert state(project)["pending"]["verb"] == "step"  # not rolled back: the router may have changed
    outcome = engine.step(good)
    assert "completed the interrupted step" in outcome.message and route(project)["weight"] == 25  # 5 -> 25
    assert state(project)["pending"] is None and state(project)["route"]["weight"] == 25


def test_refused_names_and_steps(project):
    assert ro(project, "start", "../evil", "--candidate", "2", "--stable", "1").code == 2
    r = ro(project, "start", "bc", "--candidate", "2", "--stable", "1", "--steps", "33.333,100")
    assert r.code == 2 and "two decimals" in r.stderr
    assert ro(project, "start", "bc", "--candidate", "2", "--stable", "1", "--steps", "12.5,100").code == 0
    assert route(project)["weight"] == 12.5


def _rec(version, rid, outputs, status=200):
    return {"request_id": rid, "version": version, "outputs": outputs, "status": status, "latency_ms": 1.0}


def test_shadow_counts_renamed_outputs_as_disagreement():
    stable = [_rec("1", f"r{i}", {"label": 1}) for i in range(4)]
    cand = [_rec("2", f"r{i}", {"label": 1} if i < 2 else {"class": 1}) for i in range(4)]
    report = compare_shadow(stable, cand)
    assert report.joined == 4 and report.agreement == 0.5


def test_prediction_drift_rules():
    cfg = AnalysisConfig(min_requests=1, max_error_rate=None, max_prediction_drift=0.1)
    failing = Window([_rec("1", "a", {"label": 1})], [_rec("2", "b", {}, status=500)])
    report = evaluate(failing, cfg, shadow=False, since="a", until="b")
    drift = next(m for m in report.metrics if m.name == "prediction_drift")
    assert drift.result == "inconclusive"  # nothing to compare is not a pass
    full = Window([], [_rec("2", "b", {"label": 1})])
    report = evaluate(full, cfg, shadow=False, since="a", until="b", stable_serves=False)
    assert report.result == "pass" and "not applicable" in report.metrics[-1].detail


def _log(project, version, n):
    """`n` successful predictions of VERSION, stamped now (inside the current step's window)."""
    from mlship.rollout.state import now_iso

    lines = [json.dumps({"ts": now_iso(), "request_id": f"{version}-{i}", "model": "bc", "version": version,
                         "inputs": {"x": i}, "outputs": {"label": 1}, "latency_ms": 1.0, "status": 200})
             for i in range(n)]
    with open(project / "logs" / "p.jsonl", "a") as fh:
        fh.write("\n".join(lines) + "\n")


def test_pause_reasons_are_kept_in_the_state_not_read_from_the_message(project):
    cfg = project / "mlship.yaml"
    cfg.write_text(cfg.read_text().replace("min_requests: 0", "min_requests: 3"))
    assert ro(project, "start", "bc", "--candidate", "2", "--stable", "1").code == 0
    waiting = ro(project, "step", "bc")  # no data yet: the gate cannot tell
    assert waiting.code == 5 and waiting.json()["pause_reason"] == "GateInconclusive"
    assert state(project)["phase"] == "Paused" and state(project)["pause_reason"] == "GateInconclusive"
    assert state(project)["gates"][-1]["step"] == 0 and state(project)["gates"][-1]["result"] == "inconclusive"
    _log(project, "1", 3)
    _log(project, "2", 3)
    moved = ro(project, "step", "bc")  # a gate's pause needs no resume: the next step judges again
    assert moved.code == 0 and route(project)["weight"] == 50 and "pause_reason" not in moved.json()
    assert state(project)["pause_reason"] is None and state(project)["phase"] == "Progressing"
    assert ro(project, "pause", "bc").code == 5
    held = ro(project, "step", "bc")  # a person's pause holds whatever the gate would say
    assert held.code == 5 and held.json()["pause_reason"] == "UserPaused" and route(project)["weight"] == 50
    assert ro(project, "resume", "bc").code == 0 and state(project)["pause_reason"] is None


def test_a_state_written_before_pause_reasons_still_loads_and_steps_as_before(project):
    assert ro(project, "start", "bc", "--candidate", "2", "--stable", "1").code == 0
    path = project / ".mlship" / "rollouts" / "bc.json"
    for message, reason, code in (("gate inconclusive: requests 0 candidate requests (need 1)", "GateInconclusive", 0),
                                  ("paused by someone@host", "UserPaused", 5)):
        doc = {k: v for k, v in state(project).items() if k != "pause_reason"}
        doc.update(phase="Paused", message=message)
        path.write_text(json.dumps(doc))
        result = ro(project, "step", "bc")
        assert result.code == code, (message, result.stdout)
        if code == 5:
            assert result.json()["pause_reason"] == reason and result.json()["rollout"]["pause_reason"] == reason


def test_a_pause_not_over_says_so(project):
    assert ro(project, "start", "bc", "--candidate", "2", "--stable", "1", "--pause", "1h").code == 0
    result = ro(project, "step", "bc")
    assert result.code == 5 and result.json()["pause_reason"] == "PauseDuration"
    assert result.json()["rollout"]["phase"] == "Progressing" and result.json()["rollout"]["pause_reason"] is None


def test_shadow_regressors_agree_within_relative_and_absolute_tolerance():
    """numpy.isclose: |candidate - stable| <= atol + rtol * |stable|, per output element."""
    values = [(1000.0, 1000.009), (1000.0, 1000.02), (0.0, 5e-7), (0.0, 2e-6), ([1.0, 2.0], [1.0, 2.5]),
              (float("nan"), float("nan")), (1.0, float("nan"))]
    stable = [_rec("1", f"r{i}", {"variable": s}) for i, (s, _) in enumerate(values)]
    cand = [_rec("2", f"r{i}", {"variable": c}) for i, (_, c) in enumerate(values)]
    report = compare_shadow(stable, cand, rtol=1e-5, atol=1e-6)
    # agree: 1000 vs 1000.009 (within 1e-6 + 0.01), 0 vs 5e-7, NaN vs NaN
    assert report.joined == 7 and report.disagreements == 4 and report.agreement == round(3 / 7, 6)
    assert (report.rtol, report.atol) == (1e-5, 1e-6)
    assert compare_shadow(stable, cand, rtol=0, atol=1e-6).disagreements == 5  # only absolute: 1000.009 differs
    assert compare_shadow(stable, cand, rtol=1e-3, atol=1e-5).disagreements == 2  # [1, 2.5] and 1 vs NaN
    labels = [_rec("1", "a", {"label": 1, "p": 0.5})], [_rec("2", "a", {"label": 1, "p": 0.9})]
    assert compare_shadow(*labels, rtol=0, atol=0).agreement == 1.0  # classifiers: the labels decide


def test_shadow_tolerance_comes_from_rollout_analysis(tmp_path):
    from mlship.config import load_config

    (tmp_path / "mlship.yaml").write_text("rollout: {analysis: {rtol: 0.001, atol: 0.5}}\n")
    analysis = load_config(tmp_path / "mlship.yaml").rollout.analysis
    assert (analysis.rtol, analysis.atol) == (0.001, 0.5)
    (tmp_path / "mlship.yaml").write_text("rollout: {analysis: {tolerance: 0.25}}\n")  # the older name of atol
    assert load_config(tmp_path / "mlship.yaml").rollout.analysis.atol == 0.25
    stable = [_rec("1", f"r{i}", {"y": 100.0}) for i in range(4)]
    cand = [_rec("2", f"r{i}", {"y": 100.0 + 0.04 * i}) for i in range(4)]
    cfg = AnalysisConfig(min_requests=1, max_error_rate=None, max_disagreement=0.3, rtol=1e-4, atol=0.0)
    report = evaluate(Window(stable, cand), cfg, shadow=True, since="a", until="b")
    # rtol 1e-4 of 100 is 0.01: only r0 (diff 0) agrees; 1e-3 (0.1) lets 0.04 and 0.08 through, not 0.12
    assert report.shadow.disagreements == 3 and report.result == "fail"
    loose = AnalysisConfig(min_requests=1, max_error_rate=None, max_disagreement=0.3, rtol=1e-3, atol=0.0)
    assert evaluate(Window(stable, cand), loose, shadow=True, since="a", until="b").result == "pass"


def test_start_dry_run_says_what_start_would_do_and_changes_nothing(project):
    dry = ro(project, "start", "bc", "--candidate", "2", "--stable", "1", "--dry-run")
    assert dry.code == 0, dry.stderr
    doc = dry.json()
    assert doc["changed"] is False and doc["message"].startswith("dry run, nothing changed: canary of 2 started")
    assert doc["rollout"]["candidate"] == {"version": "2", "slot": "green"} and doc["rollout"]["route"]["weight"] == 10
    assert not (project / ".mlship").exists() and not (project / "route.json").exists()
    # What start would refuse, the dry run refuses the same way (exit 2), still writing nothing.
    for args, words in ((["--candidate", "2"], "no stable version known"),
                        (["--candidate", "1", "--stable", "1"], "is the stable version already"),
                        (["--candidate", "2", "--stable", "1", "--slot", "red"], "no free slot")):
        refused = ro(project, "start", "bc", *args, "--dry-run")
        assert refused.code == 2 and words in refused.stderr, refused.stderr
    assert not (project / ".mlship").exists() and not (project / "route.json").exists()
    # Against a rollout in progress: the same verdict as start, and the rollout is untouched.
    assert ro(project, "start", "bc", "--candidate", "2", "--stable", "1").code == 0
    before = state(project)
    busy = ro(project, "start", "bc", "--candidate", "3", "--dry-run")
    assert busy.code == 2 and "already rolling out 2" in busy.stderr
    again = ro(project, "start", "bc", "--candidate", "2", "--dry-run")
    assert again.code == 0 and again.json()["message"] == "dry run: canary of 2 already started"
    assert state(project) == before
