"""Versions are immutable: identical rebuilds and re-pushes are no-ops, other content under a
recorded version is refused before any work (exit 2, never 7), pushes are recorded, and
`mlship version bump` moves mlship.yaml on."""

from __future__ import annotations

import json
import shutil

import pytest

from tests import models
from tests.support import MODEL, run


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A project whose versions store is ./.mlship (as without the test fixture's override)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLSHIP_STORE", raising=False)
    shutil.copyfile(MODEL, tmp_path / "model.onnx")
    (tmp_path / "mlship.yaml").write_text("name: bc\nversion: 1.0.0   # bumped by CI\nmodel: model.onnx\n")
    return tmp_path


def build_edge(*args):
    return run("--json", "build", "--edge", "--output-dir", "dist", *args)


def store_lines(project):
    return (project / ".mlship" / "versions.jsonl").read_text().splitlines()


def retrain(project):
    models.logistic_classifier(project / "model.onnx")


def test_an_identical_rebuild_is_a_no_op_with_the_same_record(project):
    first = build_edge()
    assert first.code == 0, first.stderr
    bundle = project / "dist" / "bc-1.0.0.mlbundle"
    stamp = bundle.stat().st_mtime_ns
    again = build_edge()
    assert again.code == 0, again.stderr
    assert again.json()["unchanged"] is True and first.json()["unchanged"] is False
    assert again.json()["sha256"] == first.json()["sha256"] and bundle.stat().st_mtime_ns == stamp
    assert len(store_lines(project)) == 1
    text = run("build", "--edge", "--output-dir", "dist")
    assert text.code == 0 and "unchanged (already built from these inputs)" in text.stdout


def test_other_content_under_a_built_version_is_refused_before_any_work(project):
    assert build_edge().code == 0
    bundle = project / "dist" / "bc-1.0.0.mlbundle"
    before, records = bundle.read_bytes(), store_lines(project)
    retrain(project)
    refused = run("build", "--edge", "--output-dir", "dist")
    assert refused.code == 2, refused.stderr  # not 7: nothing outside failed, CI must not retry
    assert "bc 1.0.0 (bundle) is already built from other inputs" in refused.stderr
    assert "mlship version bump patch" in refused.stderr and "--force" in refused.stderr
    assert refused.stderr.count("\n") == 1
    assert bundle.read_bytes() == before and store_lines(project) == records
    assert [p.name for p in (project / "dist").iterdir()] == ["bc-1.0.0.mlbundle"]  # no staging left behind


def test_force_replaces_a_local_build_and_leaves_one_record(project):
    first = build_edge().json()
    retrain(project)
    forced = build_edge("--force")
    assert forced.code == 0, forced.stderr
    assert forced.json()["sha256"] != first["sha256"]
    records = [json.loads(line) for line in store_lines(project)]
    assert len(records) == 1 and records[0]["artifact"] == f"sha256:{forced.json()['sha256']}"


def test_a_pushed_version_cannot_be_forced(project):
    assert build_edge().code == 0
    target = f"file://{project / 'target'}"
    assert run("push", "dist/bc-1.0.0.mlbundle", "--to", target).code == 0
    retrain(project)
    refused = run("build", "--edge", "--output-dir", "dist", "--force")
    assert refused.code == 2 and "was pushed" in refused.stderr and "is immutable" in refused.stderr
    assert "--force" not in refused.stderr.split("is immutable")[1]


def test_a_bundle_file_with_other_bytes_is_never_overwritten(project):
    (project / "dist").mkdir()
    foreign = project / "dist" / "bc-1.0.0.mlbundle"
    foreign.write_bytes(b"built elsewhere")
    refused = run("build", "--edge", "--output-dir", "dist")
    assert refused.code == 2 and "exists with other content; not overwritten" in refused.stderr
    assert foreign.read_bytes() == b"built elsewhere"
    assert sorted(p.name for p in (project / "dist").iterdir()) == ["bc-1.0.0.mlbundle"]
    assert not (project / ".mlship" / "versions.jsonl").exists()
    assert run("build", "--edge", "--output-dir", "dist", "--force").code == 0
    assert foreign.read_bytes() != b"built elsewhere"


def test_pushes_are_recorded_once_and_listed(project):
    built = build_edge().json()
    target = f"file://{project / 'target'}"
    for _ in range(2):
        assert run("push", "dist/bc-1.0.0.mlbundle", "--to", target).code == 0
    listed = json.loads(run("--json", "versions", "list").stdout)["versions"]
    assert len(listed) == 1 and listed[0]["artifact"] == f"sha256:{built['sha256']}"
    assert [p["reference"] for p in listed[0]["pushed"]] == [f"{target}/bc/1.0.0"]
    assert len(store_lines(project)) == 2  # the build and one push, however often it is pushed


def test_a_pushed_directory_is_listed_as_an_artifact(project):
    (project / "art").mkdir()
    (project / "art" / "weights.bin").write_bytes(b"w" * 10)
    target = f"file://{project / 'target'}"
    assert run("push", "art", "--to", target, "--name", "raw", "--artifact-version", "3").code == 0
    (row,) = json.loads(run("--json", "versions", "list", "raw").stdout)["versions"]
    assert (row["kind"], row["version"], row["pushed"][0]["reference"]) == ("artifact", "3", f"{target}/raw/3")


def test_a_push_conflicting_with_any_target_uploads_to_none(project):
    (project / "a.bin").write_bytes(b"first")
    first, second = f"file://{project / 't1'}", f"file://{project / 't2'}"
    assert run("push", "a.bin", "--to", second, "--name", "m", "--artifact-version", "1").code == 0
    (project / "a.bin").write_bytes(b"retrained")
    refused = run("push", "a.bin", "--to", first, "--to", second, "--name", "m", "--artifact-version", "1")
    assert refused.code == 2, refused.stderr
    assert "already exists with other content" in refused.stderr and "version bump" in refused.stderr
    assert not (project / "t1").exists()  # refused before the first target got a byte


@pytest.mark.parametrize("part,expected", [("patch", "1.0.1"), ("minor", "1.1.0"), ("major", "2.0.0")])
def test_version_bump_keeps_comments_and_layout(project, part, expected):
    result = run("version", "bump", part)
    assert result.code == 0 and result.stdout.strip() == expected
    assert (project / "mlship.yaml").read_text() == f"name: bc\nversion: {expected}   # bumped by CI\nmodel: model.onnx\n"


def test_version_bump_then_build_makes_a_new_version(project):
    assert build_edge().code == 0
    retrain(project)
    assert run("version", "bump").code == 0
    assert build_edge().code == 0 and (project / "dist" / "bc-1.0.1.mlbundle").is_file()


@pytest.mark.parametrize("text,part,message", [
    ("name: bc\n", "patch", "no top-level `version:`"),
    ("version: latest\n", "patch", "is not MAJOR.MINOR.PATCH"),
    ("version: 1.0.0\n", "huge", "cannot bump 'huge'"),
])
def test_version_bump_refuses_what_it_cannot_bump(project, text, part, message):
    (project / "mlship.yaml").write_text(text)
    result = run("version", "bump", part)
    assert result.code == 2 and message in result.stderr and result.stderr.count("\n") == 1
    assert (project / "mlship.yaml").read_text() == text


def test_version_bump_without_a_config_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run("version", "bump")
    assert result.code == 2 and "config file not found: mlship.yaml" in result.stderr
