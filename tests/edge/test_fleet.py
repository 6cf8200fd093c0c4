"""Devices report their true state to the target (NAME/devices/ID/status.json) after every sync, and
`mlship edge fleet` shows the fleet from those reports: versions with counts, stale devices, failures."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from mlship.targets.base import open_target
from tests import models
from tests.adversarial.test_bundles_edge import refused
from tests.edge.test_device import release
from tests.support import run


def sync(target, device, *args, channel="stable"):
    return run("--json", "edge", "sync", "--from", target, "--name", "bc", "--channel", channel, "--dir", str(device),
               *args)


def fleet(target, *args):
    return run("--json", "edge", "fleet", "bc", "--from", target, *args)


@pytest.fixture
def fleet_of_four(tmp_path, artifact_target, monkeypatch):
    """alpha on 2.0.0; beta on 1.0.0 and silent for three days; gamma held back from a NaN 3.0.0 on
    `canary`; and a device (generated id) whose last sync failed."""
    monkeypatch.chdir(tmp_path)
    target = artifact_target
    release(tmp_path, target, "1.0.0")
    devices = {d: tmp_path / d for d in ("alpha", "beta", "gamma", "delta")}
    for name in ("alpha", "beta", "gamma"):
        assert sync(target, devices[name], "--device", name).code == 0
    assert sync(target, devices["delta"]).code == 0
    release(tmp_path, target, "2.0.0", model=models.logistic_classifier(tmp_path / "v2.onnx"))
    assert sync(target, devices["alpha"]).code == 0  # the id stays the one it was first given
    store = open_target(target, {})
    old = json.loads(store.read("bc/devices/beta/status.json"))
    old["last_sync"] = (datetime.now(timezone.utc) - timedelta(days=3)).strftime("%Y-%m-%dT%H:%M:%SZ")
    store.write("bc/devices/beta/status.json", json.dumps(old).encode())  # as if beta had not synced since
    nan = models.nan_outputs(tmp_path / "nan.onnx")
    assert run("build", "--edge", str(nan), "--name", "bc", "--model-version", "3.0.0",
               "--output-dir", str(tmp_path / "dist")).code == 0
    assert run("push", str(tmp_path / "dist" / "bc-3.0.0.mlbundle"), "--name", "bc", "--artifact-version", "3.0.0",
               "--to", target).code == 0
    assert run("promote", "bc", "3.0.0", "--channel", "canary", "--to", target).code == 0
    assert sync(target, devices["gamma"], channel="canary").code == 4
    assert sync(target, devices["delta"], channel="nightly").code == 2  # no such channel: reported too
    delta = json.loads((devices["delta"] / "state.json").read_text())["device"]
    return target, store, delta


def test_the_fleet_shows_versions_stale_devices_and_failures(fleet_of_four):
    target, store, delta = fleet_of_four
    assert store.list_keys("bc/devices/") == sorted(f"bc/devices/{d}/status.json"
                                                     for d in ("alpha", "beta", "gamma", delta))
    result = fleet(target, "--stale-after", "1d")
    assert result.code == 0, result.stderr
    report = result.json()
    rows = {d["device"]: d for d in report["devices"]}
    assert report["versions"] == {"1.0.0": 3, "2.0.0": 1}
    assert report["stale"] == ["beta"] and rows["beta"]["age_s"] > 2 * 86400
    assert sorted(report["failures"]) == sorted(["gamma", delta])
    assert rows["alpha"]["version"] == "2.0.0" and rows["alpha"]["previous"] == "1.0.0"
    assert rows["alpha"]["health"] == "ok" and not rows["alpha"]["failed"]
    assert rows["gamma"]["held_back"] == "3.0.0" and rows["gamma"]["version"] == "1.0.0"
    assert rows["gamma"]["channel"] == "canary"
    assert "no channel nightly" in rows[delta]["last_error"] and rows[delta]["version"] == "1.0.0"
    assert report["unreadable"] == []
    wide = fleet(target, "--stale-after", "4d").json()
    assert wide["stale"] == [] and wide["versions"] == report["versions"]


def test_the_fleet_table_for_people(fleet_of_four, monkeypatch):
    target, _, delta = fleet_of_four
    monkeypatch.setenv("COLUMNS", "220")  # a wide terminal: the problem column is not folded
    result = run("edge", "fleet", "bc", "--from", target)
    assert result.code == 0, result.stderr
    assert "4 devices (1.0.0: 3, 2.0.0: 1); 1 stale (no sync for 1.0d), 2 failing" in result.stdout
    for text in ("alpha", "beta", "gamma", delta, "held back 3.0.0", "(stale)"):
        assert text in result.stdout, text


def test_status_documents_are_not_trusted(fleet_of_four, monkeypatch):
    """A writer of the target plants garbage, a status naming another device, and markup."""
    target, store, _ = fleet_of_four
    monkeypatch.setenv("COLUMNS", "220")
    store.write("bc/devices/junk/status.json", b"\x00not json")
    alpha = json.loads(store.read("bc/devices/alpha/status.json"))
    store.write("bc/devices/mallory/status.json", json.dumps(alpha).encode())  # claims to be alpha
    store.write("bc/devices/eve/status.json", json.dumps({**alpha, "device": "eve", "version": "../../x"}).encode())
    store.write("bc/devices/ann/status.json", json.dumps({**alpha, "device": "ann", "last_error": "[red]x[/red]",
                                                          "last_sync": "yesterday"}).encode())
    report = fleet(target).json()
    unreadable = {u["key"]: u["reason"] for u in report["unreadable"]}
    assert set(unreadable) == {f"bc/devices/{d}/status.json" for d in ("junk", "mallory", "eve")}
    assert "not its folder 'mallory'" in unreadable["bc/devices/mallory/status.json"]
    ann = next(d for d in report["devices"] if d["device"] == "ann")
    assert ann["stale"] and ann["age_s"] is None  # a time that does not parse is never fresh
    shown = run("edge", "fleet", "bc", "--from", target)
    assert "[red]x[/red]" in shown.stdout  # printed verbatim, not read as markup


def test_an_empty_fleet_and_bad_options(tmp_path):
    target = f"file://{tmp_path / 'store'}"
    empty = fleet(target)
    assert empty.code == 0 and empty.json()["devices"] == [] and empty.json()["versions"] == {}
    refused(run("edge", "fleet", "bc", "--from", target, "--stale-after", "soon"), 2, "--stale-after", "'soon'")
    refused(run("edge", "fleet", "../bc", "--from", target), 2, "name '../bc'")


def test_no_report_writes_nothing_to_the_target(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    target = f"file://{tmp_path / 'store'}"
    release(tmp_path, target, "1.0.0")
    assert sync(target, tmp_path / "device", "--no-report").code == 0
    assert not (tmp_path / "store" / "bc" / "devices").exists()
