"""Attacks on `mlship rollout`: overlapping verbs, stale CI retries, and markup in
versions, names, users, slots and output names.

The file router (a JSON route file) stands in for nginx: what is under test is
the state machine, its lock and the rendering, and the route file shows exactly
what traffic would do.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlship.rollout.state import now_iso
from tests.rollout.overlap import file_lock_held, run_overlapping
from tests.support import run, run_process

CONFIG = """name: bc
rollout:
  router: {{type: file, path: route.json, upstreams: {{{upstreams}}}}}
  steps: [10, 50, 100]
  logs: [logs]
  analysis: {analysis}
"""


def make_project(root: Path, *, upstreams: str = '"blue": "http://127.0.0.1:1", "green": "http://127.0.0.1:2"',
                 analysis: str = "{min_requests: 0}") -> Path:
    (root / "logs").mkdir(parents=True)
    (root / "mlship.yaml").write_text(CONFIG.format(upstreams=upstreams, analysis=analysis))
    return root


@pytest.fixture
def project(tmp_path):
    return make_project(tmp_path / "p")


def ro(project: Path, *args: str):
    return run("-c", str(project / "mlship.yaml"), *args)


def cli(project: Path, *args: str) -> list[str]:
    return ["-c", str(project / "mlship.yaml"), *args]


def files(project: Path) -> dict[str, bytes]:
    """Every file mlship may write: route, state, lock; compared before and after a refusal."""
    found = {}
    for path in sorted(project.rglob("*")):
        if path.is_file() and path.name != "mlship.yaml":
            found[str(path.relative_to(project))] = path.read_bytes()
    return found


def state(project: Path) -> dict:
    return json.loads((project / ".mlship" / "rollouts" / "bc.json").read_text())


def route(project: Path) -> dict:
    return json.loads((project / "route.json").read_text())


def lock(project: Path) -> Path:
    return project / ".mlship" / "rollouts" / "bc.lock"


def started(project: Path) -> None:
    result = ro(project, "rollout", "start", "bc", "--candidate", "2", "--stable", "1")
    assert result.code == 0, result.stderr
    assert route(project)["weight"] == 10 and state(project)["step"] == 0


def one_line(text: str) -> bool:
    return len(text.strip().splitlines()) == 1


# -- item 5: overlapping steps and stale CI retries ---------------------------------


def test_overlapping_steps_take_one_step(project):
    started(project)
    results = run_overlapping(file_lock_held(lock(project)), cli(project, "--json", "rollout", "step", "bc"),
                              cli(project, "--json", "rollout", "step", "bc"))
    assert [r.code for r in results] == [0, 0], [r.stderr for r in results]
    messages = sorted(r.json()["message"] for r in results)
    assert sum("already taken by a concurrent call" in m for m in messages) == 1, messages
    assert state(project)["step"] == 1 and route(project)["weight"] == 50
    assert [e["verb"] for e in state(project)["history"]] == ["start", "step"]


def test_an_overlapping_step_and_promote_take_one_step(project):
    # Both ask for "one more step" from the same view: a person's promote and a CI job's step.
    started(project)
    results = run_overlapping(file_lock_held(lock(project)), cli(project, "--json", "rollout", "promote", "bc"),
                              cli(project, "--json", "rollout", "step", "bc"))
    assert [r.code for r in results] == [0, 0], [r.stderr for r in results]
    assert sum("already taken by a concurrent call" in r.json()["message"] for r in results) == 1
    assert state(project)["step"] == 1 and route(project)["weight"] == 50
    assert len(state(project)["history"]) == 2


def test_overlapping_steps_with_expect_step_take_one_step_and_refuse_the_other(project):
    started(project)
    results = run_overlapping(file_lock_held(lock(project)),
                              cli(project, "--json", "rollout", "step", "bc", "--expect-step", "0"),
                              cli(project, "--json", "rollout", "step", "bc", "--expect-step", "0"))
    codes = sorted(r.code for r in results)
    assert codes == [0, 2], [r.stderr for r in results]
    refused = next(r for r in results if r.code == 2)
    errors = [line for line in refused.stderr.splitlines() if "is locked by another mlship" not in line]
    assert len(errors) == 1 and "step index 1" in errors[0] and "--expect-step 0" in errors[0]
    assert refused.json()["error"]["exit_code"] == 2
    assert state(project)["step"] == 1 and route(project)["weight"] == 50
    assert [e["verb"] for e in state(project)["history"]] == ["start", "step"]


def test_a_stale_ci_retry_with_expect_step_changes_nothing(project):
    # No overlap at all: the first job finished before the retry started. Only --expect-step can tell.
    started(project)
    first = run_process(*cli(project, "rollout", "step", "bc", "--expect-step", "0"))
    assert first.code == 0 and route(project)["weight"] == 50, first.stderr
    before = files(project)
    retry = run_process(*cli(project, "rollout", "step", "bc", "--expect-step", "0"))
    assert retry.code == 2 and one_line(retry.stderr), retry.stderr
    assert "rollout bc is at step index 1" in retry.stderr and "not 0" in retry.stderr
    assert "Traceback" not in retry.stderr and retry.stdout == ""
    assert files(project) == before  # route, state and audit log untouched


@pytest.mark.parametrize("expect", ["1", "2", "-1", "7"])
def test_expect_step_other_than_the_current_index_is_refused(project, expect):
    started(project)
    before = files(project)
    result = ro(project, "--json", "rollout", "step", "bc", "--expect-step", expect)
    assert result.code == 2 and one_line(result.stderr), result.stderr
    assert f"--expect-step {expect}" in result.stderr and "step index 0" in result.stderr
    assert result.json()["error"]["exit_code"] == 2
    assert files(project) == before


@pytest.mark.parametrize("expect", ["x", "1.5", "-2", ""])
def test_expect_step_that_is_not_an_index_is_a_usage_error(project, expect):
    started(project)
    before = files(project)
    result = ro(project, "rollout", "step", "bc", "--expect-step", expect)
    assert result.code == 2 and "--expect-step" in result.stderr and "Traceback" not in result.stderr
    assert files(project) == before


def test_expect_step_matching_the_index_steps_once(project):
    started(project)
    result = ro(project, "--json", "rollout", "step", "bc", "--expect-step", "0")
    assert result.code == 0 and result.json()["rollout"]["step"] == 1
    assert route(project)["weight"] == 50
    result = ro(project, "--json", "rollout", "step", "bc", "--expect-step", "1")
    assert result.code == 0 and route(project)["weight"] == 100


def test_expect_step_is_checked_before_an_interrupted_change_is_completed(project):
    # A step killed between router change and record left `pending`; a retry that expects the old
    # index completes it (that is the one step it asked for), a retry expecting another index does not.
    started(project)
    doc = state(project)
    doc["pending"] = {"verb": "step", "state": {**{k: v for k, v in doc.items() if k not in ("history", "pending")},
                                                  "route": {**doc["route"], "weight": 50.0}, "step": 1}}
    (project / ".mlship" / "rollouts" / "bc.json").write_text(json.dumps(doc))
    before = files(project)
    wrong = ro(project, "rollout", "step", "bc", "--expect-step", "1")
    assert wrong.code == 2 and files(project) == before
    right = ro(project, "--json", "rollout", "step", "bc", "--expect-step", "0")
    assert right.code == 0 and "completed the interrupted step" in right.json()["message"]
    assert state(project)["step"] == 1 and route(project)["weight"] == 50 and state(project)["pending"] is None


# -- item 7: markup and bad identifiers --------------------------------------------

BAD_VERSIONS = ["[/x]", "[bold]2", "[red]2[/red]", "../x", ".", "..", "", "a b", "1\n2", "x" * 129, ":smile:",
                "-1", "2/3", "2\x1b[31m"]


@pytest.mark.parametrize("flag", ["--candidate", "--stable"])
@pytest.mark.parametrize("bad", BAD_VERSIONS)
def test_bad_versions_are_refused_before_any_change(project, flag, bad):
    args = {"--candidate": "2", "--stable": "1", flag: bad}
    result = ro(project, "rollout", "start", "bc", *(f"{k}={v}" for k, v in args.items()))
    assert result.code == 2, result.stderr
    assert one_line(result.stderr) and "is not a valid name" in result.stderr and "Traceback" not in result.stderr
    assert "version" in result.stderr
    assert files(project) == {}  # no route file, no state, nothing moved


def test_bad_candidate_during_a_rollout_leaves_it_alone(project):
    started(project)
    before = files(project)
    result = ro(project, "rollout", "start", "bc", "--candidate=[/x]")
    assert result.code == 2 and one_line(result.stderr) and "[/x]" in result.stderr
    assert files(project) == before


@pytest.mark.parametrize("bad", ["[/x]", "../evil", ".", "a b", "x" * 129, "", "a\nb"])
def test_bad_rollout_names_are_refused(project, bad):
    result = ro(project, "rollout", "start", bad, "--candidate", "2", "--stable", "1")
    assert result.code == 2 and one_line(result.stderr) and "rollout name" in result.stderr
    assert files(project) == {}


def test_the_json_document_and_error_carry_the_raw_value(project):
    result = ro(project, "--json", "rollout", "start", "bc", "--candidate=[/x]", "--stable", "1")
    assert result.code == 2 and "'[/x]'" in result.json()["error"]["message"]
    assert "'[/x]'" in result.stderr  # printed verbatim, not eaten as a closing tag


def test_markup_in_users_and_slots_is_printed_verbatim(tmp_path, monkeypatch):
    # Valid, but not markup: a slot named "[b]lue" (the file router takes any upstream key) and a user
    # name from the CI environment with a closing tag and an emoji code.
    monkeypatch.setenv("COLUMNS", "400")
    monkeypatch.setenv("MLSHIP_USER", "[/x]:smile:[bold]ci")
    project = make_project(tmp_path / "p", upstreams='"[b]lue": "http://127.0.0.1:1", "green": "http://127.0.0.1:2"')
    start = ro(project, "rollout", "start", "bc", "--candidate", "2", "--stable", "1")
    assert start.code == 0 and start.stdout == "canary of 2 started: 90% [b]lue / 10% green\n", start
    assert ro(project, "rollout", "pause", "bc").stdout == "paused at 90% [b]lue / 10% green\n"
    step = ro(project, "rollout", "step", "bc")
    assert step.code == 5
    assert step.stdout == "paused: paused by [/x]:smile:[bold]ci; run `mlship rollout resume bc`\n"
    status = ro(project, "rollout", "status", "bc")
    assert status.code == 5 and status.stdout == "canary Paused: 90% [b]lue / 10% green\n"
    history = ro(project, "rollout", "history", "bc")
    assert history.code == 0 and history.stdout.count("[/x]:smile:[bold]ci") == 2, history.stdout
    assert "90% [b]lue / 10% green" in history.stdout
    abort = ro(project, "rollout", "abort", "bc")
    assert abort.code == 6 and abort.stdout == "aborted: all traffic back on 1 ([b]lue)\n"
    assert route(project)["stable"] == "[b]lue" and route(project)["weight"] == 0


def _log(project: Path, version: str, rid: str, outputs: dict) -> dict:
    return {"ts": now_iso(), "request_id": rid, "model": "bc", "version": version, "variant": version,
            "inputs": {"a": 1}, "outputs": outputs, "latency_ms": 1.0, "status": 200}


def _write_logs(project: Path, records: list[dict]) -> None:
    with open(project / "logs" / "pred.jsonl", "a") as fh:
        for rec in records:
            fh.write(json.dumps(rec) + "\n")


def test_output_names_with_markup_in_a_failed_gate_are_printed_verbatim(tmp_path, monkeypatch):
    # A candidate model whose output is called "[/x]" drifts: the gate fails and traffic goes back to
    # stable. The message naming the output must not crash after traffic moved (exit 6, not 1).
    monkeypatch.setenv("COLUMNS", "400")
    project = make_project(tmp_path / "p", analysis="{min_requests: 0, max_prediction_drift: 0.1}")
    started(project)
    _write_logs(project, [_log(project, "1", f"s{i}", {"[/x]": 0.0}) for i in range(30)]
                + [_log(project, "2", f"c{i}", {"[/x]": 100.0 + i}) for i in range(30)])
    result = ro(project, "rollout", "step", "bc")
    assert result.code == 6, result
    assert "on outputs.[/x] (limit 0.1)" in result.stdout and "traffic back on 1" in result.stdout
    assert "Traceback" not in result.stderr and result.stderr == ""
    assert route(project)["weight"] == 0 and state(project)["aborted"]


def test_output_names_with_markup_in_a_shadow_report_are_printed_verbatim(tmp_path, monkeypatch):
    monkeypatch.setenv("COLUMNS", "400")
    project = make_project(tmp_path / "p", analysis="{min_requests: 0}")
    start = ro(project, "rollout", "start", "bc", "--strategy", "shadow", "--candidate", "2", "--stable", "1")
    assert start.code == 0, start
    _write_logs(project, [_log(project, "1", f"r{i}", {"[/x]": 0.5, "[red]y": 1}) for i in range(5)]
                + [_log(project, "2", f"r{i}", {"[/x]": 0.25, "[red]y": 1}) for i in range(5)])
    result = ro(project, "rollout", "step", "bc")
    assert result.code == 0, result
    assert "outputs.[/x]: mean |delta| 0.25, max 0.25" in result.stdout
    assert result.stderr == ""
