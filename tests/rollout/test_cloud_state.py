"""Rollout state on gs:// and az:// (the GCS and Azure emulators), with the S3 store's lock semantics."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator

import pytest

from mlship.targets.base import open_target
from tests.conftest import empty_target
from tests.rollout.overlap import run_overlapping
from tests.support import run


@pytest.fixture(params=[pytest.param(k, marks=pytest.mark.integration) for k in ("gs", "az")])
def project(request, tmp_path, monkeypatch):
    """mlship.yaml with the file router and `rollout.state` in an empty bucket or container; its target."""
    url = empty_target(request.param, request, tmp_path, monkeypatch) + "/rollouts"
    (tmp_path / "logs").mkdir()
    (tmp_path / "mlship.yaml").write_text(f"""name: bc
rollout:
  router: {{type: file, path: route.json, upstreams: {{blue: "http://127.0.0.1:1", green: "http://127.0.0.1:2"}}}}
  state: "{url}"
  steps: [10, 50, 100]
  logs: [logs]
  analysis: {{min_requests: 0}}
""")
    return tmp_path, open_target(url, {})


def ro(project, *args):
    return run("-c", str(project / "mlship.yaml"), "--json", "rollout", *args)


def state(target) -> dict:
    return json.loads(target.read("bc.json"))


@contextlib.contextmanager
def lock_held(target, expires_in: float = 3600) -> Iterator[None]:
    """Hold the rollout's lock object (created only if absent) as another mlship would."""
    version = target.put_if("bc.lock", json.dumps({"owner": "test", "expires": time.time() + expires_in}).encode(),
                            None)
    try:
        yield
    finally:
        target.delete_if("bc.lock", version)


def test_verbs_keep_the_state_and_its_audit_log_in_the_bucket(project):
    folder, target = project
    assert ro(folder, "start", "bc", "--candidate", "2", "--stable", "1").code == 0
    assert ro(folder, "step", "bc").code == 0
    assert ro(folder, "abort", "bc").code == 6
    doc = state(target)
    assert [e["verb"] for e in doc["history"]] == ["start", "step", "abort"] and doc["aborted"]
    assert target.read("bc.lock") is None  # each verb removed its own lock


def test_concurrent_steps_take_one_step(project):
    folder, target = project
    assert ro(folder, "start", "bc", "--candidate", "2", "--stable", "1").code == 0
    args = ["-c", str(folder / "mlship.yaml"), "--json", "rollout", "step", "bc"]
    results = run_overlapping(lock_held(target), args, args)
    assert all(r.code == 0 for r in results), [r.stderr for r in results]
    assert sum("already taken by a concurrent call" in json.loads(r.stdout)["message"] for r in results) == 1
    assert [e["verb"] for e in state(target)["history"]] == ["start", "step"]


def test_a_lock_whose_lease_ran_out_is_broken(project):
    folder, target = project
    target.put_if("bc.lock", json.dumps({"owner": "dead", "expires": time.time() - 1}).encode(), None)
    assert ro(folder, "start", "bc", "--candidate", "2", "--stable", "1").code == 0
    assert target.read("bc.lock") is None


def test_a_state_changed_under_a_verb_is_not_overwritten(project):
    from mlship.rollout.cloud_state import ConditionalStateStore

    folder, target = project
    assert ro(folder, "start", "bc", "--candidate", "2", "--stable", "1").code == 0
    store = ConditionalStateStore(target)
    loaded = store.load("bc")
    assert ro(folder, "step", "bc").code == 0  # another mlship writes in between
    from mlship.errors import ServiceError

    with pytest.raises(ServiceError, match="changed under this verb"):
        store.save(loaded)
    assert [e["verb"] for e in state(target)["history"]] == ["start", "step"]
