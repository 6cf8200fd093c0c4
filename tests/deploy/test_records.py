"""What runs where is recorded in the versions store, a slot carrying a rollout's traffic is not
replaced or stopped by accident, and gc removes the images only removed containers used."""

from __future__ import annotations

import json
from contextlib import closing

import pytest

from mlship.deploy.probe import served_versions
from mlship.rollout.state import FileStateStore, Route, RolloutState, Side
from tests.support import run


def cli(project, *args):
    return run("-c", str(project.config), "--json", *args)


def events(project) -> list[dict]:
    path = project.root / ".mlship" / "versions.jsonl"
    return [r for r in map(json.loads, path.read_text().splitlines()) if r["event"] in ("deploy", "stop", "gc")]


def test_deploys_stops_and_gc_are_events_and_versions_show_lists_where_a_version_runs(project, stub_image,
                                                                                        monkeypatch):
    for version in ("1.0.0", "2.0.0"):
        project.record(version, stub_image(project.name, version))
    monkeypatch.setenv("MLSHIP_USER", "ci-bot")
    assert cli(project, "deploy", f"{project.name}:1.0.0", "--slot", "blue").code == 0
    assert cli(project, "deploy", f"{project.name}:1.0.0", "--slot", "green").code == 0
    assert cli(project, "deploy", f"{project.name}:2.0.0", "--slot", "green").code == 0
    assert cli(project, "deploy", "stop", project.name, "--slot", "blue").code == 0
    gc = cli(project, "deploy", "gc", project.name, "--keep", "0")
    assert gc.code == 0, gc.stderr

    recorded = events(project)
    assert [(e["event"], e["version"], e["slot"]) for e in recorded] == [
        ("deploy", "1.0.0", "blue"), ("deploy", "1.0.0", "green"), ("deploy", "2.0.0", "green"),
        ("stop", "1.0.0", "blue"), ("gc", "1.0.0", "green")]
    assert {e["user"] for e in recorded} == {"ci-bot"}
    assert {e["where"] for e in recorded} == {project.engine.host} and {e["runtime"] for e in recorded} == {"docker"}
    with closing(project.engine.client()) as client:
        image_2 = client.containers.get(f"mlship-{project.name}-green").attrs["Image"]
    assert recorded[2]["digest"] == image_2 and recorded[2]["id"] == f"mlship-{project.name}-green"
    assert all(e["created"].endswith("Z") for e in recorded)

    shown = cli(project, "versions", "show", f"{project.name}:2.0.0")
    assert shown.code == 0, shown.stderr
    doc = shown.json()
    assert doc["version"] == "2.0.0" and doc["kind"] == "image"
    assert [(r["slot"], r["state"], r["where"], r["digest"]) for r in doc["runs"]] == \
        [("green", "running", project.engine.host, image_2)]
    assert [e["event"] for e in doc["deploys"]] == ["deploy"]
    old = cli(project, "versions", "show", f"{project.name}:1.0.0").json()
    assert [(r["slot"], r["state"], r["user"]) for r in old["runs"]] == [("blue", "stopped", "ci-bot")]
    assert [e["event"] for e in old["deploys"]] == ["deploy", "deploy", "stop", "gc"]

    people = run("-c", str(project.config), "versions", "show", f"{project.name}:2.0.0")
    assert people.code == 0 and "runs in" in people.stdout and "green" in people.stdout


def test_versions_show_of_a_version_deployed_from_another_image_and_of_nothing(project, stub_image):
    image = stub_image(project.name, "3.0.0")
    assert cli(project, "deploy", f"{project.name}:3.0.0", "--slot", "blue", "--image", image).code == 0
    doc = cli(project, "versions", "show", f"{project.name}:3.0.0").json()
    assert doc["kind"] is None and [r["slot"] for r in doc["runs"]] == ["blue"]
    missing = cli(project, "versions", "show", f"{project.name}:4.0.0")
    assert missing.code == 2 and f"no recorded build or deploy of {project.name}:4.0.0" in missing.stderr


def _rollout_on(project, route: Route, **state) -> None:
    """The state `rollout start` records for a canary of 2.0.0 (stable 1.0.0 on blue, candidate on green)."""
    FileStateStore(project.root / ".mlship" / "rollouts").save(RolloutState(
        name=project.name, strategy="canary", stable=Side(version="1.0.0", slot="blue"),
        candidate=Side(version="2.0.0", slot="green"), steps=[10, 50, 100], step=0, route=route, **state))


@pytest.mark.parametrize("verb", ["deploy", "stop"])
def test_a_slot_carrying_a_rollouts_traffic_is_refused_without_force(project, stub_image, verb):
    for version in ("1.0.0", "2.0.0", "2.0.1"):
        project.record(version, stub_image(project.name, version))
    assert cli(project, "deploy", f"{project.name}:1.0.0", "--slot", "blue").code == 0
    assert cli(project, "deploy", f"{project.name}:2.0.0", "--slot", "green").code == 0
    _rollout_on(project, Route(stable="blue", candidate="green", weight=10))
    before = events(project)
    args = {"deploy": ["deploy", f"{project.name}:2.0.1", "--slot", "green"],
            "stop": ["deploy", "stop", project.name, "--slot", "green"]}[verb]

    refused = cli(project, *args)
    assert refused.code == 2, refused.stderr
    assert f"rollout {project.name} (canary of 2.0.0, Progressing) routes 90% blue / 10% green" in refused.stderr
    assert "--force" in refused.stderr
    assert served_versions(project.address("green"), project.name) == ["2.0.0"]  # untouched
    assert events(project) == before  # nothing recorded
    refused_stable = cli(project, "deploy", "stop", project.name, "--slot", "blue")
    assert refused_stable.code == 2 and "blue gets 90% of users' requests" in refused_stable.stderr

    forced = cli(project, *args, "--force")
    assert forced.code == 0, forced.stderr
    expected = ["2.0.1"] if verb == "deploy" else None
    assert served_versions(project.address("green"), project.name) == expected


def test_a_slot_without_traffic_is_free(project, stub_image):
    for version in ("1.0.0", "2.0.0"):
        project.record(version, stub_image(project.name, version))
    # Aborted: traffic is back on blue; green, the failed candidate's slot, can be replaced.
    _rollout_on(project, Route(stable="blue"), phase="Degraded", aborted=True)
    assert cli(project, "deploy", f"{project.name}:2.0.0", "--slot", "green").code == 0
    assert cli(project, "deploy", "stop", project.name, "--slot", "green").code == 0
    refused = cli(project, "deploy", f"{project.name}:1.0.0", "--slot", "blue")
    assert refused.code == 2 and "(canary of 2.0.0, aborted) routes 100% blue" in refused.stderr


def test_gc_removes_the_images_only_removed_containers_used(project, stub_image):
    images = {version: stub_image(project.name, version) for version in ("1.0.0", "2.0.0", "3.0.0")}
    for version in ("1.0.0", "2.0.0", "3.0.0"):
        project.record(version, images[version])
        assert cli(project, "deploy", f"{project.name}:{version}", "--slot", "green").code == 0
    assert cli(project, "deploy", f"{project.name}:1.0.0", "--slot", "blue").code == 0  # 1.0.0 still runs there

    gc = cli(project, "deploy", "gc", project.name, "--keep", "0")
    assert gc.code == 0, gc.stderr
    doc = gc.json()
    assert sorted(p["version"] for p in doc["removed"]) == ["1.0.0", "2.0.0"]
    assert doc["images"] == [images["2.0.0"]]  # 1.0.0's image is used by blue's container
    with closing(project.engine.client()) as client:
        present = {image.id for image in client.images.list()}
    assert images["1.0.0"] in present and images["3.0.0"] in present and images["2.0.0"] not in present
    people = run("-c", str(project.config), "deploy", "gc", project.name, "--keep", "0")
    assert people.code == 0 and "removed 0 kept" in people.stdout
