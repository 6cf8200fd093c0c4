"""Publishing: `mlship push` and `mlship promote` with `signing:` keep NAME/tuf/ in the target (file:// and S3)."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta, timezone

import pytest

from mlship.targets.base import open_target
from tests.support import run
from tests.edge.tuf_release import NAME, bundles, keys, release, write_config  # noqa: F401 (fixtures)


def signed(target, key):
    from tuf.api.metadata import Metadata

    return Metadata.from_bytes(target.read(f"{NAME}/tuf/{key}"))


def test_push_and_promote_sign_the_bundle_and_the_channel(tmp_path, keys, bundles, artifact_target):
    config = write_config(tmp_path, keys, expires={"timestamp": "2h", "snapshot": "3d"})
    bundle = bundles["1.0.0"]
    release(config, artifact_target, bundle, "1.0.0")
    target = open_target(artifact_target, {})
    root = signed(target, "1.root.json")
    assert root.signed.roles["root"].threshold == 2 and len(root.signatures) == 2 and root.signed.consistent_snapshot
    timestamp = signed(target, "timestamp.json")
    snapshot = signed(target, f"{timestamp.signed.snapshot_meta.version}.snapshot.json")
    targets = signed(target, f"{snapshot.signed.meta['targets.json'].version}.targets.json")
    for md, role in ((timestamp, "timestamp"), (snapshot, "snapshot"), (targets, "targets"), (root, "root")):
        root.signed.verify_delegate(role, md.signed_bytes, md.signatures)
    data = bundle.read_bytes()
    entry = targets.signed.targets["1.0.0/bc-1.0.0.mlbundle"]
    assert entry.length == len(data) and entry.hashes == {"sha256": hashlib.sha256(data).hexdigest()}
    channel = targets.signed.targets["channels/stable.json"]
    assert channel.custom == {"mlship": {"version": "1.0.0", "bundle": "1.0.0/bc-1.0.0.mlbundle"}}
    copy = target.read(f"{NAME}/tuf/targets/channels/{channel.hashes['sha256']}.stable.json")
    assert hashlib.sha256(copy).hexdigest() == channel.hashes["sha256"] and json.loads(copy)["version"] == "1.0.0"
    now = datetime.now(timezone.utc)
    assert timedelta(hours=1) < timestamp.signed.expires - now <= timedelta(hours=2)
    assert timedelta(days=2) < snapshot.signed.expires - now <= timedelta(days=3)
    assert timedelta(days=89) < targets.signed.expires - now <= timedelta(days=90)


def test_an_unchanged_push_publishes_nothing_and_refresh_resigns_timestamp_and_snapshot(tmp_path, keys, bundles,
                                                                                         artifact_target):
    config = write_config(tmp_path, keys)
    bundle = bundles["1.0.0"]
    release(config, artifact_target, bundle, "1.0.0")
    target = open_target(artifact_target, {})
    before = target.read(f"{NAME}/tuf/timestamp.json")
    again = run("--config", str(config), "push", str(bundle), "--artifact-version", "1.0.0", "--to", artifact_target)
    assert again.code == 0 and target.read(f"{NAME}/tuf/timestamp.json") == before
    result = run("--json", "--config", str(config), "edge", "refresh", NAME, "--to", artifact_target)
    assert result.code == 0, result.stderr
    old, new = json.loads(before)["signed"], json.loads(target.read(f"{NAME}/tuf/timestamp.json"))["signed"]
    assert new["version"] == old["version"] + 1 and result.json()["timestamp"] == new["version"]
    assert result.json()["targets"] == signed(target, f"{result.json()['snapshot']}.snapshot.json"
                                              ).signed.meta["targets.json"].version


def test_promoting_a_version_pushed_without_signing_moves_nothing(tmp_path, keys, bundles, artifact_target):
    config = write_config(tmp_path, keys)
    bundle = bundles["1.0.0"]
    assert run("push", str(bundle), "--name", NAME, "--artifact-version", "1.0.0", "--to", artifact_target).code == 0
    result = run("--config", str(config), "promote", NAME, "1.0.0", "--channel", "stable", "--to", artifact_target)
    assert result.code == 2 and "not signed" in result.stderr, result.stderr
    assert open_target(artifact_target, {}).read(f"{NAME}/channels/stable.json") is None


def test_a_forged_targets_file_is_refused_not_resigned(tmp_path, keys, bundles, artifact_target):
    config = write_config(tmp_path, keys)
    release(config, artifact_target, bundles["1.0.0"], "1.0.0")
    target = open_target(artifact_target, {})
    doc = json.loads(target.read(f"{NAME}/tuf/2.targets.json"))
    doc["signed"]["targets"]["evil/x.mlbundle"] = {"length": 1, "hashes": {"sha256": "0" * 64}}
    target.write(f"{NAME}/tuf/2.targets.json", json.dumps(doc).encode())
    result = run("--config", str(config), "edge", "refresh", NAME, "--to", artifact_target)
    assert result.code == 3 and "2.targets.json: bad signature" in result.stderr, result.stderr


def test_publishing_without_enough_private_keys_names_the_role(tmp_path, keys, bundles, artifact_target):
    config = write_config(tmp_path, keys, keys={"root": [str(keys / "root1.key")], "targets": [str(keys / "targets.key")],
                                                "snapshot": [str(keys / "snapshot.key")],
                                                "timestamp": [str(keys / "timestamp.pub")]}, threshold={})
    bundle = bundles["1.0.0"]
    result = run("--config", str(config), "push", str(bundle), "--artifact-version", "1.0.0", "--to", artifact_target)
    assert result.code == 2 and "signing.keys.timestamp gives 0" in result.stderr, result.stderr + result.stdout


def test_a_role_key_from_an_environment_variable_signs(tmp_path, keys, bundles, monkeypatch):
    monkeypatch.setenv("CI_TIMESTAMP_KEY", (keys / "timestamp.key").read_text())
    config = write_config(tmp_path, keys)
    doc = __import__("yaml").safe_load(config.read_text())
    doc["signing"]["keys"]["timestamp"] = ["env:CI_TIMESTAMP_KEY"]
    config.write_text(__import__("yaml").safe_dump(doc))
    target = f"file://{tmp_path / 'store'}"
    release(config, target, bundles["1.0.0"], "1.0.0")
    monkeypatch.delenv("CI_TIMESTAMP_KEY")
    result = run("--config", str(config), "edge", "refresh", NAME, "--to", target)
    assert result.code == 2 and "CI_TIMESTAMP_KEY is not set" in result.stderr, result.stderr


def test_edge_init_keeps_the_device_id_its_status_and_logs_use(tmp_path, keys, bundles):
    from tests.adversarial.test_bundles_edge import refused

    url = f"file://{tmp_path / 'store'}"
    config = write_config(tmp_path, keys)
    release(config, url, bundles["1.0.0"], "1.0.0")
    root = tmp_path / "1.root.json"
    root.write_bytes(open_target(url, {}).read(f"{NAME}/tuf/1.root.json"))
    refused(run("edge", "init", "--dir", str(tmp_path / "bad"), "--root", str(root), "--device-id", "../x"), 2,
            "device id '../x'")
    assert not (tmp_path / "bad").exists()
    init = run("--json", "edge", "init", "--dir", str(tmp_path / "dev"), "--root", str(root), "--device-id", "kiosk-7")
    assert init.code == 0 and init.json()["device"] == "kiosk-7"
    assert run("edge", "sync", "--from", url, "--name", NAME, "--dir", str(tmp_path / "dev")).code == 0
    status = json.loads((tmp_path / "store" / NAME / "devices" / "kiosk-7" / "status.json").read_text())
    assert status["device"] == "kiosk-7" and status["version"] == "1.0.0" and status["health"]["ok"]
