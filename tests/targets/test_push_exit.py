"""`mlship push` ends its process without the interpreter's teardown (mlship.cli.run: after a
push to S3 that teardown frees botocore's parsed models one object at a time, ~0.1 s), with
its exit code, its whole output and its exit handlers; other commands exit as usual."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading

import pytest

import mlship.cli as cli


class Exited(Exception):
    def __init__(self, how: str, code: int) -> None:
        super().__init__(how, code)
        self.how, self.code = how, code


@pytest.fixture()
def exits(monkeypatch):
    """os._exit and sys.exit raise Exited(how, code); the exit handlers are counted, not run."""
    handlers = []

    def quick(code):
        raise Exited("quick", code)

    def usual(code=0):
        raise Exited("usual", code)

    monkeypatch.setattr(os, "_exit", quick)
    monkeypatch.setattr(sys, "exit", usual)
    monkeypatch.setattr("atexit._run_exitfuncs", lambda: handlers.append("ran"))
    return handlers


def _artifact(tmp_path):
    art = tmp_path / "model.bin"
    art.write_bytes(os.urandom(3 << 20))
    return art


def test_a_push_exits_quickly_with_its_code_after_the_exit_handlers(tmp_path, monkeypatch, exits):
    art = _artifact(tmp_path)
    monkeypatch.setattr(sys, "argv", ["mlship", "push", str(art), "--artifact-version", "1",
                                      "--to", f"file://{tmp_path / 'store'}"])
    with pytest.raises(Exited) as got:
        cli.run()
    assert (got.value.how, got.value.code) == ("quick", 0) and exits == ["ran"]
    copy = tmp_path / "store" / "model" / "1" / "model.bin"
    assert hashlib.sha256(copy.read_bytes()).hexdigest() == hashlib.sha256(art.read_bytes()).hexdigest()


def test_a_failed_push_exits_quickly_with_its_failure_code(tmp_path, monkeypatch, exits):
    monkeypatch.setattr(sys, "argv", ["mlship", "push", str(tmp_path / "missing.bin"), "--artifact-version", "1",
                                      "--to", f"file://{tmp_path / 'store'}"])
    with pytest.raises(Exited) as got:
        cli.run()
    assert (got.value.how, got.value.code) == ("quick", 3)  # an unreadable artifact: invalid input


def test_a_push_with_a_thread_still_running_exits_the_usual_way(tmp_path, monkeypatch, exits):
    art = _artifact(tmp_path)
    stop = threading.Event()
    worker = threading.Thread(target=stop.wait, daemon=False)  # e.g. a plugin's upload still going
    worker.start()
    try:
        monkeypatch.setattr(sys, "argv", ["mlship", "push", str(art), "--artifact-version", "1",
                                          "--to", f"file://{tmp_path / 'store'}"])
        with pytest.raises(Exited) as got:
            cli.run()
    finally:
        stop.set()
        worker.join(30)
    assert (got.value.how, got.value.code) == ("usual", 0) and exits == []


def test_other_commands_exit_the_usual_way(monkeypatch, exits):
    monkeypatch.setattr(sys, "argv", ["mlship", "--version"])
    with pytest.raises(Exited) as got:
        cli.run()
    assert (got.value.how, got.value.code) == ("usual", 0) and exits == []


def test_a_real_push_process_writes_its_whole_json_document_and_exit_code(tmp_path):
    art = tmp_path / "m"
    art.mkdir()
    for i in range(300):  # a long document: all of it must be flushed before the process ends
        (art / f"f{i:03}.txt").write_text(str(i))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run([sys.executable, "-m", "mlship", "--json", "push", str(art), "--artifact-version", "1",
                           "--to", f"file://{tmp_path / 'store'}", "--dry-run"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert document["results"][0]["status"] == "would push" and document["results"][0]["files"] == 300
    (tmp_path / "store").write_text("a file where the target's directory should be")
    failed = subprocess.run([sys.executable, "-m", "mlship", "push", str(art), "--artifact-version", "1",
                             "--to", f"file://{tmp_path / 'store'}"], capture_output=True, text=True, env=env,
                            timeout=120)
    assert failed.returncode == 7, failed.stderr
    assert failed.stderr.startswith("error: ") and failed.stderr.count("\n") == 1, failed.stderr
