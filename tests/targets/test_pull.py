"""Idempotent reads: `pull` into a directory that already holds the version is a no-op,
other content is refused (or replaced with --force, only once the new copy is verified),
and --json of pull, promote and push says what was resolved."""

from __future__ import annotations

import hashlib
import json

import pytest

from tests.support import run


@pytest.fixture
def target(tmp_path):
    """A file target with bc 1.0.0 and 2.0.0 pushed, stable -> 1.0.0."""
    url = f"file://{tmp_path / 'store'}"
    for version in ("1.0.0", "2.0.0"):
        art = tmp_path / f"art-{version}"
        (art / "sub").mkdir(parents=True)
        (art / "model.onnx").write_bytes(f"model {version}".encode())
        (art / "sub" / "notes.txt").write_text(version)
        assert run("push", str(art), "--name", "bc", "--artifact-version", version, "--to", url).code == 0
    assert run("promote", "bc", "1.0.0", "--channel", "stable", "--to", url).code == 0
    return url


def pull(*args):
    return run("--json", "pull", *args)


def test_pulling_twice_is_exit_0_and_changes_nothing(tmp_path, target):
    out = tmp_path / "out"
    first = pull("bc@stable", "--from", target, "-o", str(out))
    assert first.code == 0, first.stderr
    stamp = (out / "model.onnx").stat().st_mtime_ns
    again = pull("bc@stable", "--from", target, "-o", str(out))
    assert again.code == 0, again.stderr
    assert again.json()["unchanged"] is True and first.json()["unchanged"] is False
    assert (out / "model.onnx").stat().st_mtime_ns == stamp
    text = run("pull", "bc@stable", "--from", target, "-o", str(out))
    assert text.code == 0 and "already holds bc@stable (bc 1.0.0" in text.stdout


def test_json_says_what_the_channel_resolved_to(tmp_path, target):
    doc = pull("bc@stable", "--from", target, "-o", str(tmp_path / "o")).json()
    listing = "".join(f"{p}\0{hashlib.sha256(d).hexdigest()}\n"
                      for p, d in sorted([("model.onnx", b"model 1.0.0"), ("sub/notes.txt", b"1.0.0")]))
    assert doc == {"ref": "bc@stable", "name": "bc", "version": "1.0.0", "channel": "stable", "target": target,
                   "output": str(tmp_path / "o"), "files": 2, "unchanged": False,
                   "digest": "sha256:" + hashlib.sha256(listing.encode()).hexdigest()}
    latest = pull("bc", "--from", target, "-o", str(tmp_path / "l")).json()
    assert (latest["version"], latest["channel"]) == ("2.0.0", None)


@pytest.mark.parametrize("change", ["edit", "extra", "missing"])
def test_other_content_is_refused_without_force_and_replaced_with_it(tmp_path, target, change):
    out = tmp_path / "out"
    assert pull("bc:1.0.0", "--from", target, "-o", str(out)).code == 0
    {"edit": lambda: (out / "model.onnx").write_text("tampered"),
     "extra": lambda: (out / "stray.txt").write_text("x"),
     "missing": lambda: (out / "sub" / "notes.txt").unlink()}[change]()
    before = sorted(p.relative_to(out).as_posix() for p in out.rglob("*"))
    refused = run("pull", "bc:1.0.0", "--from", target, "-o", str(out))
    assert refused.code == 2 and f"{out} exists with other content than bc 1.0.0" in refused.stderr
    assert "--force" in refused.stderr and refused.stderr.count("\n") == 1
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == before
    forced = pull("bc:1.0.0", "--from", target, "-o", str(out), "--force")
    assert forced.code == 0, forced.stderr
    assert (out / "model.onnx").read_text() == "model 1.0.0" and (out / "sub" / "notes.txt").read_text() == "1.0.0"
    assert not (out / "stray.txt").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out.")] == []


def test_a_forced_pull_that_fails_verification_keeps_the_old_directory(tmp_path, target):
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")
    (tmp_path / "store" / "bc" / "1.0.0" / "model.onnx").write_bytes(b"corrupted in the store")
    failed = run("pull", "bc:1.0.0", "--from", target, "-o", str(out), "--force")
    assert failed.code == 3 and "corrupt or tampered" in failed.stderr
    assert [p.name for p in out.iterdir()] == ["mine.txt"] and (out / "mine.txt").read_text() == "keep me"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out.")] == []


def test_promote_and_push_json_say_the_target_and_digest(tmp_path, target):
    promoted = run("--json", "promote", "bc", "2.0.0", "--channel", "stable", "--to", target).json()
    assert (promoted["version"], promoted["previous"], promoted["target"]) == ("2.0.0", "1.0.0", target)
    (tmp_path / "one.bin").write_bytes(b"one")
    pushed = run("--json", "push", str(tmp_path / "one.bin"), "--name", "x", "--artifact-version", "1", "--to", target)
    assert pushed.json()["artifact"] == "sha256:" + hashlib.sha256(b"one").hexdigest()
    assert pushed.json()["results"][0]["target"] == target
    again = pull("x:1", "--from", target, "-o", str(tmp_path / "x")).json()
    assert again["digest"] == pushed.json()["artifact"]  # one digest for the same content, pushed or pulled
    assert json.loads(run("--json", "versions", "list", "x").stdout)["versions"][0]["artifact"] == again["digest"]
