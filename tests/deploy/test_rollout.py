"""Rollouts that place and verify their candidate: deployed by the docker runtime, or checked when
placed by hand, before any traffic moves; `undo` brings a stopped previous version back."""

from __future__ import annotations

import http.client
import json
from contextlib import closing

from mlship.deploy.probe import served_versions
from mlship.rollout.routers.nginx import NginxRouter
from mlship.rollout.state import Route
from tests.harness.ports import free_port
from tests.harness.services import start_http_upstream
from tests.support import run


def cli(project, *args):
    return run("-c", str(project.config), "--json", *args)


def behind_nginx(project, nginx_factory) -> int:
    """nginx including the router's config (what an operator sets up once, stable on blue); its port."""
    port = free_port()
    conf = project.root / "nginx" / f"{project.name}.conf"
    conf.parent.mkdir(exist_ok=True)
    upstreams = {slot: project.address(slot) for slot in project.ports}
    conf.write_text(NginxRouter(name=project.name, config=str(conf), listen=f"127.0.0.1:{port}",
                                upstreams=upstreams).render(Route(stable="blue"))[0])
    nginx = nginx_factory(f"    include {conf};\n")
    return port, nginx


def through_nginx(port: int, model: str, clients: int = 40) -> dict[str, set[str]]:
    """slot -> the versions it answered with, over `clients` clients asking /v2/models/MODEL."""
    seen: dict[str, set[str]] = {}
    for i in range(clients):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("GET", f"/v2/models/{model}", headers={"X-Client-ID": f"user-{i}", "Connection": "close"})
        reply = conn.getresponse()
        body = reply.read()
        assert reply.status == 200, (reply.status, body[:200])
        seen.setdefault(reply.getheader("X-Mlship-Slot"), set()).update(json.loads(body)["versions"])
        conn.close()
    return seen


def test_start_deploys_the_candidate_and_undo_restarts_the_stopped_previous_version(project, stub_image,
                                                                                     nginx_factory):
    for version in ("1.0.0", "2.0.0"):
        project.record(version, stub_image(project.name, version))
    port, nginx = behind_nginx(project, nginx_factory)
    project.write(router=f", listen: '127.0.0.1:{port}', main_config: {nginx.conf_path}, prefix: {nginx.prefix}")
    assert cli(project, "deploy", f"{project.name}:1.0.0", "--slot", "blue").code == 0
    assert served_versions(project.address("green"), project.name) is None

    started = cli(project, "rollout", "start", project.name, "--candidate", "2.0.0", "--stable", "1.0.0")
    assert started.code == 0, started.stderr
    assert started.json()["message"].startswith("deployed 2.0.0 to green")
    assert served_versions(project.address("green"), project.name) == ["2.0.0"]
    assert through_nginx(port, project.name) == {"blue": {"1.0.0"}, "green": {"2.0.0"}}  # 10% of 40 clients

    assert cli(project, "rollout", "promote", project.name, "--full").code == 0
    assert through_nginx(port, project.name) == {"green": {"2.0.0"}}
    assert cli(project, "deploy", "stop", project.name, "--slot", "blue").code == 0  # the old stable, stopped
    assert served_versions(project.address("blue"), project.name) is None

    undone = cli(project, "rollout", "undo", project.name)
    assert undone.code == 6, undone.stderr  # rolled back
    assert through_nginx(port, project.name) == {"blue": {"1.0.0"}}
    with closing(project.engine.client()) as client:
        assert client.containers.get(f"mlship-{project.name}-blue").status == "running"


def test_a_candidate_that_does_not_serve_stops_the_start_before_traffic_moves(project, stub_image, nginx_factory):
    project.record("1.0.0", stub_image(project.name, "1.0.0"))
    project.record("2.0.0", stub_image(project.name, "2.0.0", "crash"))
    port, nginx = behind_nginx(project, nginx_factory)
    project.write(router=f", listen: '127.0.0.1:{port}', main_config: {nginx.conf_path}, prefix: {nginx.prefix}")
    assert cli(project, "deploy", f"{project.name}:1.0.0", "--slot", "blue").code == 0
    route = (project.root / "nginx" / f"{project.name}.conf").read_bytes()
    failed = cli(project, "rollout", "start", project.name, "--candidate", "2.0.0", "--stable", "1.0.0")
    assert failed.code == 7 and "weights truncated" in failed.stderr
    assert not (project.root / ".mlship" / "rollouts" / f"{project.name}.json").exists()  # no rollout recorded
    assert (project.root / "nginx" / f"{project.name}.conf").read_bytes() == route
    assert through_nginx(port, project.name, clients=10) == {"blue": {"1.0.0"}}


def test_without_a_runtime_a_slot_serving_another_version_is_refused(project):
    # The new user's case: green still serves 1.1.0 and the candidate named is 7.7.7.
    green = start_http_upstream(json.dumps({"name": project.name, "versions": ["1.1.0"]}),
                                content_type="application/json")
    try:
        project.ports["green"] = green.port
        project.write(runtime="null")
        refused = cli(project, "rollout", "start", project.name, "--candidate", "7.7.7", "--stable", "1.0.0")
        assert refused.code == 2
        assert f"slot green ({green.address}) serves 1.1.0 of {project.name}, not the candidate 7.7.7" \
            in refused.stderr
        assert not (project.root / ".mlship" / "rollouts" / f"{project.name}.json").exists()  # nothing recorded
        assert not (project.root / "nginx").exists()  # nor routed
        assert green.requests == [f"/v2/models/{project.name}"]  # asked, nothing else
    finally:
        green.stop()


def test_a_candidate_killed_mid_canary_fails_the_next_step_and_traffic_goes_back_to_stable(project, stub_image,
                                                                                             nginx_factory):
    for version in ("1.0.0", "2.0.0"):
        project.record(version, stub_image(project.name, version))
    port, nginx = behind_nginx(project, nginx_factory)
    (project.root / "logs").mkdir()  # the stubs write no prediction logs: only what nginx saw can fail the gate
    project.write(docker="restart: 'no'",
                  router=f", listen: '127.0.0.1:{port}', main_config: {nginx.conf_path}, prefix: {nginx.prefix}",
                  rollout=f"  logs: [{project.root / 'logs'}]\n  analysis: {{min_requests: 20, max_error_rate: 0.01}}\n")
    assert cli(project, "deploy", f"{project.name}:1.0.0", "--slot", "blue").code == 0
    assert cli(project, "rollout", "start", project.name, "--candidate", "2.0.0", "--stable", "1.0.0").code == 0
    assert through_nginx(port, project.name) == {"blue": {"1.0.0"}, "green": {"2.0.0"}}
    with closing(project.engine.client()) as client:
        client.containers.get(f"mlship-{project.name}-green").kill()

    failed = []
    for i in range(40):  # the same clients: the ones on green now get nginx's 502
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("GET", f"/v2/models/{project.name}", headers={"X-Client-ID": f"user-{i}"})
        reply = conn.getresponse()
        reply.read()
        conn.close()
        failed += [reply.getheader("X-Mlship-Slot")] if reply.status == 502 else []
    assert failed and set(failed) == {"green"}

    step = cli(project, "rollout", "step", project.name)
    assert step.code == 6, step.stdout + step.stderr  # aborted, not paused waiting for candidate requests
    metrics = {m["name"]: m for m in step.json()["gate"]["metrics"]}
    assert metrics["error_rate"]["result"] == "fail" and f"{len(failed)} of {len(failed)} failed" \
        in metrics["error_rate"]["detail"]
    assert through_nginx(port, project.name) == {"blue": {"1.0.0"}}  # no failed request after the abort
