"""Attacks on `mlship deploy`: hostile container logs, a squatter on a slot's port, hostile names."""

from __future__ import annotations

import json
from contextlib import closing

from mlship.deploy.probe import served_versions
from tests.deploy.stubs import project, stub_image  # noqa: F401
from tests.harness.services import start_http_upstream
from tests.support import run


def deploy(project, *args):
    return run("-c", str(project.config), "deploy", *args)


def test_a_containers_log_lines_reach_the_terminal_escaped(project, stub_image):
    project.record("1.0.0", stub_image(project.name, "1.0.0", "hostile"))
    failed = deploy(project, f"{project.name}:1.0.0", "--slot", "blue")
    assert failed.code == 7
    assert "\x1b" not in failed.stderr and "\x07" not in failed.stderr  # no escape reaches the terminal
    assert "\\x1b]0;pwned\\x07[bold red]owned[/]" in failed.stderr  # shown, not interpreted


def test_a_server_squatting_on_the_slots_port_is_not_taken_for_the_new_version(project, stub_image):
    # An old `docker run` by hand, or any process, answering on the slot's port with the expected
    # version would pass the checks while mlship's container cannot bind: refuse before starting.
    metadata = json.dumps({"name": project.name, "versions": ["1.0.0"]})
    squatter = start_http_upstream(metadata, content_type="application/json")
    try:
        project.ports["blue"] = squatter.port
        project.write()
        project.record("1.0.0", stub_image(project.name, "1.0.0"))
        result = deploy(project, f"{project.name}:1.0.0", "--slot", "blue")
        assert result.code == 7 and f"something other than mlship's container answers at {squatter.address}" \
            in result.stderr
        with closing(project.engine.client()) as client:
            assert project.containers(client) == {}
        assert served_versions(squatter.address, project.name) == ["1.0.0"]  # left alone
    finally:
        squatter.stop()


def test_hostile_names_are_refused_before_the_engine_is_asked(project):
    text = project.config.read_text().replace(project.engine.host, "unix:///nonexistent/engine.sock")
    project.config.write_text(text)  # reaching the engine would be exit 7: these stop earlier
    for ref in ("../../etc:1.0.0", "m;rm -rf /:1.0.0", "m:1.0.0 --privileged", "m:$(id)"):
        result = deploy(project, ref, "--slot", "blue")
        assert result.code == 2 and "is not a valid name" in result.stderr, (ref, result.stderr)
    assert deploy(project, "-x:1.0.0", "--slot", "blue").code == 2  # an option, not a name
    assert deploy(project, "status", "m/../../x").code == 2
    assert deploy(project, "gc", "a b", "--keep", "0").code == 2


def test_a_damaged_access_log_is_read_for_what_it_holds(tmp_path):
    from mlship.rollout.access_log import unanswered

    log = tmp_path / "bc.access.jsonl"
    good = {"ts": 100.5, "slot": "green", "status": 502, "upstream_status": "502", "request_time": 0.001}
    lines = [json.dumps(good), json.dumps({**good, "status": 504}), json.dumps({**good, "slot": "blue"}),
             json.dumps({**good, "status": 200}), json.dumps({**good, "ts": 99.0}), json.dumps({**good, "ts": "x"}),
             "[1, 2]", "{not json", json.dumps({**good, "ts": None}), "\x00\xff", "[" * 100_000,
             json.dumps(good)[:20]]  # a line nginx is still writing
    log.write_bytes("\n".join(lines).encode("utf-8", "surrogateescape"))
    assert unanswered(log, "green", 100.0, 101.0) == 2
    assert unanswered(tmp_path / "missing.jsonl", "green", 0, 1) is None


def test_hostile_deploy_records_are_shown_escaped_and_damaged_ones_do_not_crash_versions_show(tmp_path):
    # The versions store is a shared file (CI jobs append to it): its deploy events are untrusted text.
    (tmp_path / "mlship.yaml").write_text("name: bc\n")
    store = tmp_path / ".mlship" / "versions.jsonl"
    store.parent.mkdir()
    hostile = {"event": "deploy", "name": "bc", "version": "1.0.0", "slot": "green", "runtime": "docker",
               "where": "[bold red]owned[/] \x1b]0;pwned\x07", "id": "x", "digest": "sha256:1", "user": "[link]u",
               "created": "2026-11-30T00:00:00Z"}
    damaged = {"event": "deploy", "name": "bc", "version": "1.0.0", "slot": ["not", "a", "slot"], "where": {"a": 1}}
    store.write_text(json.dumps(hostile) + "\n" + json.dumps(damaged) + "\n" +
                     json.dumps({"event": "stop", "name": "bc"}) + "\n")
    shown = run("-c", str(tmp_path / "mlship.yaml"), "versions", "show", "bc:1.0.0")
    assert shown.code == 0, shown.stderr
    assert "\x1b" not in shown.stdout and "\x07" not in shown.stdout
    assert "[bold" in shown.stdout and "owned" in shown.stdout  # shown (wrapped in the table), not interpreted
    doc = run("-c", str(tmp_path / "mlship.yaml"), "--json", "versions", "show", "bc:1.0.0").json()
    assert len(doc["runs"]) == 2 and len(doc["deploys"]) == 2
