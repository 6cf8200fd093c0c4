"""`mlship deploy` with the docker runtime against the harness's private engine (host network only)."""

from __future__ import annotations

import json
import time
from contextlib import closing

from mlship.deploy.probe import served_versions
from tests.support import run


def deploy(project, *args):
    return run("-c", str(project.config), "--json", "deploy", *args)


def status(project):
    result = deploy(project, "status", project.name)
    assert result.code == 0, result.stderr
    return result.json()["placements"]


def test_deploy_runs_one_container_per_slot_with_labels_limits_env_and_mounts(project, stub_image, tmp_path):
    (tmp_path / "shared").mkdir()
    project.write(docker=f"restart: on-failure, memory: 256m, cpus: 0.5, env: {{TEAM: risk}}, "
                         f"mounts: ['{tmp_path / 'shared'}:/data:ro']")
    project.record("1.0.0", stub_image(project.name, "1.0.0"))
    result = deploy(project, f"{project.name}:1.0.0", "--slot", "blue")
    assert result.code == 0, result.stderr
    doc = result.json()
    assert doc["placement"]["id"] == f"mlship-{project.name}-blue" and doc["replaced"] is None
    assert served_versions(project.address("blue"), project.name) == ["1.0.0"]
    assert served_versions(project.address("green"), project.name) is None  # nothing placed there
    with closing(project.engine.client()) as client:
        container = client.containers.get(f"mlship-{project.name}-blue")
        host = container.attrs["HostConfig"]
        assert host["NetworkMode"] == "host"
        assert host["RestartPolicy"]["Name"] == "on-failure"
        assert host["Memory"] == 256 * 1024 * 1024 and host["NanoCpus"] == 500_000_000
        assert host["Binds"] == [f"{tmp_path / 'shared'}:/data:ro"]
        assert "TEAM=risk" in container.attrs["Config"]["Env"]
        assert f"MLSHIP_SERVE_PORT={project.ports['blue']}" in container.attrs["Config"]["Env"]
        labels = container.labels
        assert (labels["io.mlship.deploy.name"], labels["io.mlship.deploy.version"],
                labels["io.mlship.deploy.slot"]) == (project.name, "1.0.0", "blue")
    [placement] = status(project)
    assert (placement["slot"], placement["version"], placement["state"], placement["current"]) == \
        ("blue", "1.0.0", "running", True)
    assert placement["address"] == project.address("blue")


def test_a_replacement_keeps_the_previous_container_stopped_until_gc(project, stub_image):
    for version in ("1.0.0", "1.1.0", "1.2.0"):
        project.record(version, stub_image(project.name, version))
    for version in ("1.0.0", "1.1.0"):
        assert deploy(project, f"{project.name}:{version}", "--slot", "green").code == 0
    again = deploy(project, f"{project.name}:1.1.0", "--slot", "green")  # the same again: nothing changes
    assert again.code == 0 and again.json()["replaced"] is None
    assert served_versions(project.address("green"), project.name) == ["1.1.0"]
    placements = status(project)
    assert [(p["version"], p["state"], p["current"]) for p in placements] == \
        [("1.1.0", "running", True), ("1.0.0", "exited", False)]
    assert deploy(project, f"{project.name}:1.2.0", "--slot", "green").json()["replaced"] == "1.1.0"
    assert len(status(project)) == 3

    kept = deploy(project, "gc", project.name, "--keep", "1")
    assert kept.code == 0, kept.stderr
    assert [p["version"] for p in kept.json()["removed"]] == ["1.0.0"]  # the newest kept one stays
    assert [(p["version"], p["current"]) for p in status(project)] == [("1.2.0", True), ("1.1.0", False)]
    assert [p["version"] for p in deploy(project, "gc", project.name, "--keep", "0").json()["removed"]] == ["1.1.0"]
    assert served_versions(project.address("green"), project.name) == ["1.2.0"]  # gc never touches a slot's own


def test_stop_keeps_the_container(project, stub_image):
    project.record("1.0.0", stub_image(project.name, "1.0.0"))
    assert deploy(project, f"{project.name}:1.0.0", "--slot", "blue").code == 0
    stopped = deploy(project, "stop", project.name, "--slot", "blue")
    assert stopped.code == 0 and stopped.json()["stopped"]["state"] == "exited"
    assert served_versions(project.address("blue"), project.name) is None
    assert deploy(project, "gc", project.name, "--keep", "0").json()["removed"] == []  # the slot's own stays
    empty = deploy(project, "stop", project.name, "--slot", "green")
    assert empty.code == 0 and empty.json()["stopped"] is None


def _assert_slot_unchanged(project, serving: str, container_id: str) -> None:
    assert served_versions(project.address("blue"), project.name) == [serving]
    with closing(project.engine.client()) as client:
        containers = project.containers(client)
    assert list(containers) == [f"mlship-{project.name}-blue"]  # the failed one is gone, nothing renamed
    assert containers[f"mlship-{project.name}-blue"].id == container_id


def test_a_version_that_never_becomes_ready_exits_7_with_its_logs_and_the_slot_unchanged(project, stub_image):
    project.write(docker="ready_timeout_s: 3, log_lines: 5")
    project.record("1.0.0", stub_image(project.name, "1.0.0"))
    project.record("2.0.0", stub_image(project.name, "2.0.0", "never"))
    first = deploy(project, f"{project.name}:1.0.0", "--slot", "blue")
    container_id = _container_id(project, "blue")
    failed = deploy(project, f"{project.name}:2.0.0", "--slot", "blue")
    assert failed.code == 7, failed.stderr
    assert f"slot blue of {project.name}" in failed.stderr and "not ready" in failed.stderr
    assert "still loading the model" in failed.stderr  # the container's log lines
    assert json.loads(failed.stdout)["error"]["exit_code"] == 7
    assert first.code == 0
    _assert_slot_unchanged(project, "1.0.0", container_id)


def test_a_crashing_version_fails_at_once(project, stub_image):
    project.write(docker="ready_timeout_s: 60, restart: 'no'")
    project.record("1.0.0", stub_image(project.name, "1.0.0"))
    project.record("2.0.0", stub_image(project.name, "2.0.0", "crash"))
    assert deploy(project, f"{project.name}:1.0.0", "--slot", "blue").code == 0
    container_id = _container_id(project, "blue")
    started = time.monotonic()
    failed = deploy(project, f"{project.name}:2.0.0", "--slot", "blue")
    assert failed.code == 7 and "exit code 3" in failed.stderr and "weights truncated" in failed.stderr
    assert time.monotonic() - started < 30  # not the 60 s readiness timeout
    _assert_slot_unchanged(project, "1.0.0", container_id)


def test_a_crash_looping_version_fails_under_a_restart_policy(project, stub_image):
    project.record("2.0.0", stub_image(project.name, "2.0.0", "crash"))
    failed = deploy(project, f"{project.name}:2.0.0", "--slot", "blue")  # restart: unless-stopped
    assert failed.code == 7 and "restart policy restarts it" in failed.stderr and "weights truncated" in failed.stderr
    with closing(project.engine.client()) as client:
        assert project.containers(client) == {}


def test_an_image_serving_another_version_is_refused(project, stub_image):
    project.record("1.0.0", stub_image(project.name, "1.0.0"))
    assert deploy(project, f"{project.name}:1.0.0", "--slot", "blue").code == 0
    container_id = _container_id(project, "blue")
    wrong = deploy(project, f"{project.name}:3.0.0", "--slot", "blue", "--image", stub_image(project.name, "2.0.0"))
    assert wrong.code == 7 and "reports 2.0.0, not 3.0.0" in wrong.stderr
    _assert_slot_unchanged(project, "1.0.0", container_id)


def test_the_engine_comes_from_docker_host_by_default(project, stub_image, engine_env):
    project.write(host=False)
    project.record("1.0.0", stub_image(project.name, "1.0.0"))
    result = deploy(project, f"{project.name}:1.0.0", "--slot", "green")
    assert result.code == 0, result.stderr
    assert result.json()["where"] == project.engine.host


def test_bad_requests_exit_2_and_touch_nothing(project, stub_image, tmp_path):
    project.record("1.0.0", stub_image(project.name, "1.0.0"))
    cases = {
        (f"{project.name}",): "expected NAME:VERSION",
        (f"{project.name}:1.0.0", "--slot", "purple"): "slot 'purple' is not in rollout.router.upstreams",
        (f"{project.name}:9.9.9", "--slot", "blue"): f"no image build of {project.name}:9.9.9",
        (f"{project.name}:../x", "--slot", "blue"): "is not a valid name",
        ("status", "../etc"): "is not a valid name",
    }
    for args, message in cases.items():
        result = deploy(project, *args, *(() if "--slot" in args or args[0] == "status" else ("--slot", "blue")))
        assert result.code == 2 and message in result.stderr, (args, result.stderr)
    project.write(runtime="null")
    unset = deploy(project, f"{project.name}:1.0.0", "--slot", "blue")
    assert unset.code == 2 and "no deploy runtime configured" in unset.stderr
    with closing(project.engine.client()) as client:
        assert project.containers(client) == {}


def test_an_engine_that_does_not_answer_exits_7(project, tmp_path):
    project.record("1.0.0", "sha256:" + "0" * 64)
    text = project.config.read_text().replace(project.engine.host, f"unix://{tmp_path}/no-engine.sock")
    project.config.write_text(text)
    result = deploy(project, f"{project.name}:1.0.0", "--slot", "blue")
    assert result.code == 7 and "no Docker engine answers at unix://" in result.stderr


def _container_id(project, slot: str) -> str:
    with closing(project.engine.client()) as client:
        return client.containers.get(f"mlship-{project.name}-{slot}").id
