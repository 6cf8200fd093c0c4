"""`mlship edge sync`'s health-checked commit: a new version is kept only once its smoke check (the
bundle's sample rows, or --health-cmd) passes; a failure switches back, is reported and is not retried
until the channel moves."""

from __future__ import annotations

import json
import os
import sys
import tarfile

import pytest

from tests import models
from tests.adversarial.test_bundles_edge import refused, snapshot
from tests.edge.test_device import release
from tests.support import MODEL, SAMPLE, run


def sync(store, device, *args):
    return run("--json", "edge", "sync", "--from", f"file://{store}", "--name", "bc", "--dir", str(device), *args)


def status(store, device):
    state = json.loads((device / "state.json").read_text())
    return json.loads((store / "bc" / "devices" / state["device"] / "status.json").read_text())


@pytest.fixture
def on_one(tmp_path, monkeypatch):
    """A file target with 1.0.0 released, and a device synced to it (its health checked)."""
    monkeypatch.chdir(tmp_path)
    store, device = tmp_path / "store", tmp_path / "device"
    release(tmp_path, f"file://{store}", "1.0.0")
    first = sync(store, device)
    assert first.code == 0, first.stderr
    return store, device


def test_a_healthy_switch_is_checked_and_recorded(on_one):
    store, device = on_one
    state = json.loads((device / "state.json").read_text())
    assert state["health"]["version"] == "1.0.0" and state["health"]["ok"] is True
    assert state["health"]["check"] == "generated input (1 row)"  # built without a sample
    reported = status(store, device)
    assert reported["version"] == "1.0.0" and reported["health"]["ok"] and reported["last_error"] is None


def test_the_bundle_ships_its_sample_rows_and_the_device_checks_with_them(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mlship.yaml").write_text(f"name: bc\nsample: {SAMPLE}\n")
    built = run("build", "--edge", str(MODEL), "--model-version", "1.0.0", "--output-dir", str(tmp_path / "dist"))
    assert built.code == 0, built.stderr
    bundle = tmp_path / "dist" / "bc-1.0.0.mlbundle"
    with tarfile.open(bundle) as tar:
        smoke = json.loads(tar.extractfile("smoke.json").read())
    assert smoke["rows"] == 8 and smoke["inputs"]["X"]["shape"] == [8, 30]
    assert run("push", str(bundle), "--artifact-version", "1.0.0", "--to", f"file://{tmp_path / 'store'}").code == 0
    assert run("promote", "bc", "1.0.0", "--channel", "stable", "--to", f"file://{tmp_path / 'store'}").code == 0
    result = sync(tmp_path / "store", tmp_path / "device")
    assert result.code == 0, result.stderr
    assert result.json()["health"]["check"] == "bundle sample (8 rows)" and result.json()["health"]["ok"]


def test_a_failing_version_is_rolled_back_reported_and_held_until_the_channel_moves(on_one, tmp_path):
    store, device = on_one
    release(tmp_path, f"file://{store}", "1.1.0")
    assert sync(store, device).code == 0  # now on 1.1.0, previous 1.0.0
    release(tmp_path, f"file://{store}", "2.0.0", model=models.nan_outputs(tmp_path / "nan.onnx"))
    failed = sync(store, device)
    refused(failed, 4, "2.0.0 failed its health check", "NaN or infinite", "rolled back to 1.1.0")
    doc = failed.json()
    assert doc["rolled_back"] and doc["version"] == "1.1.0" and doc["held_back"]["version"] == "2.0.0"
    assert os.readlink(device / "current") == "versions/1.1.0"
    assert os.readlink(device / "previous") == "versions/1.0.0"  # as before the failed switch
    reported = status(store, device)
    assert reported["version"] == "1.1.0" and reported["held_back"]["version"] == "2.0.0"
    assert not reported["held_back"]["ok"] and "NaN" in reported["held_back"]["detail"]

    before = snapshot(device)
    again = sync(store, device)  # the channel still names 2.0.0: not downloaded, switched or checked again
    refused(again, 4, "2.0.0 failed its health check", "not installed again; still on 1.1.0")
    assert again.json()["downloaded"] == 0 and snapshot(device) == before

    release(tmp_path, f"file://{store}", "3.0.0")  # the channel moves on: installed, the failure forgotten
    moved = sync(store, device)
    assert moved.code == 0, moved.stderr
    assert moved.json()["version"] == "3.0.0" and os.readlink(device / "previous") == "versions/1.1.0"
    assert json.loads((device / "state.json").read_text())["failed"] is None
    assert status(store, device)["held_back"] is None and status(store, device)["version"] == "3.0.0"


def test_a_first_install_that_fails_leaves_no_current(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    store, device = tmp_path / "store", tmp_path / "device"
    release(tmp_path, f"file://{store}", "1.0.0", model=models.nan_outputs(tmp_path / "nan.onnx"))
    refused(sync(store, device), 4, "1.0.0 failed its health check", "rolled back to no version")
    assert not os.path.lexists(device / "current")
    assert status(store, device)["version"] is None and status(store, device)["held_back"]["version"] == "1.0.0"
    assert run("edge", "run", "--dir", str(device)).code == 2  # nothing to serve


def test_health_cmd_runs_without_a_shell_in_the_version_and_decides(on_one, tmp_path):
    store, device = on_one
    release(tmp_path, f"file://{store}", "2.0.0")
    probe = tmp_path / "probe.py"
    probe.write_text("import os, sys, pathlib\n"
                     "pathlib.Path(sys.argv[1]).write_text(' '.join([os.environ['MLSHIP_EDGE_VERSION'], "
                     "os.path.basename(os.environ['MLSHIP_EDGE_MODEL']), os.getcwd(), sys.argv[2]]))\n"
                     "print('probe says no'); sys.exit(3)\n")
    seen = tmp_path / "seen.txt"
    result = sync(store, device, "--health-cmd", f"{sys.executable} {probe} {seen} '$HOME;x'")
    refused(result, 4, "command: python", "exit 3: probe says no", "rolled back to 1.0.0")
    version, model, cwd, literal = seen.read_text().split(" ")
    assert (version, model, literal) == ("2.0.0", "model.onnx", "$HOME;x")  # no shell expanded it
    assert cwd == str((device / "versions" / "2.0.0").resolve())
    retried = sync(store, device, "--retry", "--health-cmd", f"{sys.executable} -c pass")
    assert retried.code == 0, retried.stderr
    assert retried.json()["version"] == "2.0.0" and retried.json()["downloaded"] == 0  # kept on disk


def test_a_health_cmd_that_hangs_is_ended_at_its_timeout(on_one, tmp_path):
    store, device = on_one
    release(tmp_path, f"file://{store}", "2.0.0")
    result = sync(store, device, "--health-timeout", "1", "--health-cmd",
                  f"{sys.executable} -c 'import time; time.sleep(600)'")
    refused(result, 4, "no answer within 1 s", "rolled back to 1.0.0")
    assert os.readlink(device / "current") == "versions/1.0.0"


@pytest.mark.parametrize("args,needle", [
    (["--health-cmd", "no-such-program-here --x"], "'no-such-program-here' is not an executable program"),
    (["--health-cmd", "  "], "--health-cmd is empty"),
    (["--health-cmd", "check 'unclosed"], "No closing quotation"),
    (["--health-timeout", "0"], "--health-timeout 0: must be more than 0 seconds"),
])
def test_bad_health_options_exit_2_before_anything_changes(on_one, tmp_path, args, needle):
    store, device = on_one
    release(tmp_path, f"file://{store}", "2.0.0")
    before_store, before_device = snapshot(store), snapshot(device)
    refused(sync(store, device, *args), 2, needle)
    assert snapshot(store) == before_store and snapshot(device) == before_device


def test_a_switch_whose_check_never_finished_is_checked_on_the_next_sync(on_one, tmp_path):
    """Killed between the switch and the end of the check: `current` names an unchecked version, so the
    next sync checks it (nothing to download) and, when it fails, goes back to `previous`."""
    store, device = on_one
    release(tmp_path, f"file://{store}", "2.0.0")
    assert sync(store, device).code == 0
    state = json.loads((device / "state.json").read_text())
    (device / "state.json").write_text(json.dumps({**state, "health": None}))  # as a kill mid-check leaves it
    result = sync(store, device, "--health-cmd", f"{sys.executable} -c 'raise SystemExit(1)'")
    refused(result, 4, "2.0.0 failed its health check", "rolled back to 1.0.0")
    assert os.readlink(device / "current") == "versions/1.0.0" and result.json()["downloaded"] == 0
    assert status(store, device)["held_back"]["version"] == "2.0.0"
    checked = sync(store, device, "--health-cmd", f"{sys.executable} -c pass")  # 2.0.0 stays held back
    refused(checked, 4, "not installed again; still on 1.0.0")
