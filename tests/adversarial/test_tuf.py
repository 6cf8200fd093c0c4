"""Attacks on TUF-verified edge updates (issue 19): a writer of the target replays, freezes, mixes,
forges with one leaked key, or tampers. Each try ends in exit 3 naming the attack, with `current`
(and everything else on the device) untouched; on file:// and S3 (moto) targets."""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from mlship.targets.base import open_target
from tests.adversarial.test_bundles_edge import refused, snapshot
from tests.edge.tuf_release import NAME, bundles, keys, release, write_config  # noqa: F401 (fixtures)
from tests.support import run


class Fleet:
    """A target with 1.0.0 released (signed), and a device provisioned with root 1 and synced to it."""

    def __init__(self, tmp_path: Path, keys: Path, bundles: dict[str, Path], url: str) -> None:
        self.config = write_config(tmp_path, keys)
        self.keys, self.bundles, self.url = keys, bundles, url
        self.target = open_target(url, {})
        self.device = tmp_path / "device"
        release(self.config, url, bundles["1.0.0"], "1.0.0")
        root = tmp_path / "1.root.json"
        root.write_bytes(self.target.read(f"{NAME}/tuf/1.root.json"))
        assert run("edge", "init", "--dir", str(self.device), "--root", str(root)).code == 0
        synced = self.sync()
        assert synced.code == 0, synced.stderr
        assert os.readlink(self.device / "current") == "versions/1.0.0"

    def sync(self):
        return run("edge", "sync", "--from", self.url, "--name", NAME, "--dir", str(self.device))

    def key(self, file: str) -> bytes | None:
        return self.target.read(f"{NAME}/tuf/{file}")

    def put(self, file: str, data: bytes) -> None:
        self.target.write(f"{NAME}/tuf/{file}", data)

    def installed(self) -> dict[str, object]:
        """The device but its trusted metadata (TUF keeps newer valid metadata it checked before refusing)."""
        return {k: v for k, v in snapshot(self.device).items() if not k.startswith("tuf")}

    def refused(self, *needles: str) -> None:
        before = self.installed()
        refused(self.sync(), 3, *needles)
        assert self.installed() == before and os.readlink(self.device / "current") == "versions/1.0.0"


@pytest.fixture
def fleet(tmp_path, keys, bundles, artifact_target):
    return Fleet(tmp_path, keys, bundles, artifact_target)


def resign(data: bytes, key: Path, **changes) -> bytes:
    """`data` (TUF metadata) with `changes` to its signed part, signed with one key (as its holder could)."""
    from tuf.api.metadata import Metadata
    from tuf.api.serialization.json import JSONSerializer

    from mlship.tuf.keys import load_key

    md = Metadata.from_bytes(data)
    for field, value in changes.items():
        setattr(md.signed, field, value)
    md.signatures.clear()
    md.sign(load_key(str(key))[1])
    return md.to_bytes(JSONSerializer())


def test_a_valid_update_goes_through_tuf(fleet):
    release(fleet.config, fleet.url, fleet.bundles["2.0.0"], "2.0.0")
    result = run("--json", "edge", "sync", "--from", fleet.url, "--name", NAME, "--dir", str(fleet.device))
    assert result.code == 0, result.stderr
    assert result.json()["version"] == "2.0.0" and os.readlink(fleet.device / "current") == "versions/2.0.0"


def test_rollback_of_the_channel_to_an_older_signed_version_is_refused(fleet):
    old = {f: fleet.key(f) for f in ("timestamp.json",)}
    release(fleet.config, fleet.url, fleet.bundles["2.0.0"], "2.0.0")
    assert fleet.sync().code == 0
    assert run("edge", "rollback", "--dir", str(fleet.device)).code == 0  # back on 1.0.0, trusting the newer state
    fleet.put("timestamp.json", old["timestamp.json"])  # replay the state where stable was 1.0.0
    fleet.refused("rollback")


def test_an_expired_timestamp_freeze_is_refused(fleet):
    past = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(hours=1)
    stale = resign(fleet.key("timestamp.json"), fleet.keys / "timestamp.key",
                   version=json.loads(fleet.key("timestamp.json"))["signed"]["version"] + 1, expires=past)
    fleet.put("timestamp.json", stale)
    fleet.refused("expired")


def test_mix_and_match_of_targets_and_snapshot_is_refused(fleet):
    release(fleet.config, fleet.url, fleet.bundles["2.0.0"], "2.0.0")
    # the newest snapshot's targets version, swapped for the older targets file under that name
    snap = json.loads(fleet.key("timestamp.json"))["signed"]["meta"]["snapshot.json"]["version"]
    targets = json.loads(fleet.key(f"{snap}.snapshot.json"))["signed"]["meta"]["targets.json"]["version"]
    fleet.put(f"{targets}.targets.json", fleet.key(f"{targets - 1}.targets.json"))
    fleet.refused("TUF refused")


def test_a_single_leaked_key_below_the_root_threshold_cannot_rotate_root(fleet):
    from tuf.api.metadata import Metadata

    from mlship.tuf.keys import load_key

    root = Metadata.from_bytes(fleet.key("1.root.json"))
    evil, _ = load_key(str(fleet.keys / "root1.pub"))
    root.signed.version = 2
    for role in ("targets", "snapshot", "timestamp"):  # the attacker hands every role to the one key they hold
        for keyid in list(root.signed.roles[role].keyids):
            root.signed.revoke_key(keyid, role)
        root.signed.add_key(evil, role)
    fleet.put("2.root.json", resign(root.to_bytes(), fleet.keys / "root1.key"))
    fleet.refused("bad signature")


def test_targets_signed_by_a_key_that_is_not_trusted_are_refused(fleet):
    release(fleet.config, fleet.url, fleet.bundles["2.0.0"], "2.0.0")
    snap = json.loads(fleet.key("timestamp.json"))["signed"]["meta"]["snapshot.json"]["version"]
    version = json.loads(fleet.key(f"{snap}.snapshot.json"))["signed"]["meta"]["targets.json"]["version"]
    fleet.put(f"{version}.targets.json", resign(fleet.key(f"{version}.targets.json"), fleet.keys / "snapshot.key"))
    fleet.refused("bad signature")


def test_a_tampered_bundle_is_refused(fleet):
    release(fleet.config, fleet.url, fleet.bundles["2.0.0"], "2.0.0")
    data = bytearray(fleet.bundles["2.0.0"].read_bytes())
    data[len(data) // 2] ^= 0xFF
    fleet.target.write(f"{NAME}/2.0.0/bc-2.0.0.mlbundle", bytes(data))
    fleet.refused("hash")


def test_an_oversized_bundle_is_refused_at_its_signed_length(fleet):
    release(fleet.config, fleet.url, fleet.bundles["2.0.0"], "2.0.0")
    fleet.target.write(f"{NAME}/2.0.0/bc-2.0.0.mlbundle", fleet.bundles["2.0.0"].read_bytes() + b"\0" * 4096)
    fleet.refused("length")


def test_an_unsigned_channel_pointer_moved_behind_tuf_is_not_followed(fleet):
    """A writer moves the plain channels/stable.json (as before TUF): the device follows only the signed one."""
    release(fleet.config, fleet.url, fleet.bundles["2.0.0"], "2.0.0", channel="beta")
    fleet.target.write(f"{NAME}/channels/stable.json", json.dumps({"version": "2.0.0"}).encode())
    result = run("--json", "edge", "sync", "--from", fleet.url, "--name", NAME, "--dir", str(fleet.device))
    assert result.code == 0 and result.json()["version"] == "1.0.0" and not result.json()["changed"]


def test_a_root_signed_only_by_new_keys_is_refused(fleet, tmp_path):
    """A writer makes its own keys and a root 2 that trusts them, signed by them alone (not root 1's 2 of 2)."""
    from tuf.api.metadata import Metadata

    from mlship.tuf.keys import load_key

    assert run("keys", "generate", "--dir", str(tmp_path), "--role", "evil").code == 0
    evil, _ = load_key(str(tmp_path / "evil-1.pub"))
    root = Metadata.from_bytes(fleet.key("1.root.json"))
    root.signed.version = 2
    for role in ("root", "targets", "snapshot", "timestamp"):
        for keyid in list(root.signed.roles[role].keyids):
            root.signed.revoke_key(keyid, role)
        root.signed.add_key(evil, role)
        root.signed.roles[role].threshold = 1
    fleet.put("2.root.json", resign(root.to_bytes(), tmp_path / "evil-1.key"))
    fleet.refused("bad signature")


def rotated(fleet: Fleet, role: str, keys: list[Path], *extra: str) -> None:
    args = [a for key in keys for a in ("--new-key", str(key))]
    result = run("--config", str(fleet.config), "keys", "rotate", NAME, "--role", role, *args, *extra, "--to", fleet.url)
    assert result.code == 0, result.stderr
    assert fleet.sync().code == 0  # the device now trusts the rotated root


def test_targets_signed_by_a_revoked_targets_key_after_rotation_are_refused(fleet, tmp_path):
    """The old targets key leaked and was rotated out: a state it signs (with valid snapshot and timestamp) is refused."""
    from mlship.tuf import metadata as meta
    from mlship.tuf.keys import load_roles
    from mlship.tuf.publish import _publish_once
    from mlship.tuf.settings import SigningSettings

    assert run("keys", "generate", "--dir", str(tmp_path), "--role", "targets").code == 0
    rotated(fleet, "targets", [tmp_path / "targets-1.key"])
    old = SigningSettings(keys={"root": [str(fleet.keys / "root1.key")], "targets": [str(fleet.keys / "targets.key")],
                                "snapshot": [str(fleet.keys / "snapshot.key")],
                                "timestamp": [str(fleet.keys / "timestamp.key")]})
    repo = meta.load(fleet.target, NAME)
    with pytest.raises(Exception, match="bad signature"):  # written, then refused when the publisher reads it back
        _publish_once(fleet.target, NAME, old, load_roles(old), repo, lambda targets: True)
    fleet.refused("bad signature")


def test_a_root_signed_by_revoked_root_keys_after_rotation_is_refused(fleet, tmp_path):
    """Root 1's keys (2 of 2) were rotated out for new ones: a root 3 they sign alone no longer moves the device."""
    from tuf.api.metadata import Metadata

    from mlship.tuf.keys import load_key

    assert run("keys", "generate", "--dir", str(tmp_path), "--role", "root").code == 0
    rotated(fleet, "root", [tmp_path / "root-1.key"], "--threshold", "1")
    root = Metadata.from_bytes(fleet.key("2.root.json"))
    root.signed.version = 3
    for keyid in list(root.signed.roles["targets"].keyids):  # hand targets to the old root1 key
        root.signed.revoke_key(keyid, "targets")
    root.signed.add_key(load_key(str(fleet.keys / "root1.pub"))[0], "targets")
    root.signatures.clear()
    for key in ("root1.key", "root2.key"):
        root.sign(load_key(str(fleet.keys / key))[1], append=True)
    fleet.put("3.root.json", root.to_bytes())
    fleet.refused("bad signature")


def test_a_valid_update_whose_health_check_fails_is_rolled_back_and_the_status_says_so(fleet, tmp_path):
    """3.0.0 is validly signed and verifies, but its model answers NaN: the device switches back to
    1.0.0, reports it, and does not install 3.0.0 again while the channel names it."""
    from tests import models
    from tests.edge.tuf_release import build

    nan = build(tmp_path / "dist", "3.0.0", fleet.keys, models.nan_outputs(tmp_path / "nan.onnx"))
    release(fleet.config, fleet.url, nan, "3.0.0")
    result = run("--json", "edge", "sync", "--from", fleet.url, "--name", NAME, "--dir", str(fleet.device))
    refused(result, 4, "3.0.0 failed its health check", "NaN or infinite", "rolled back to 1.0.0")
    assert os.readlink(fleet.device / "current") == "versions/1.0.0" and result.json()["rolled_back"]
    device = json.loads((fleet.device / "state.json").read_text())["device"]
    status = json.loads(fleet.target.read(f"{NAME}/devices/{device}/status.json"))
    assert status["version"] == "1.0.0" and status["held_back"]["version"] == "3.0.0"
    assert not status["held_back"]["ok"] and status["last_error"] is None
    before = fleet.installed()
    again = run("--json", "edge", "sync", "--from", fleet.url, "--name", NAME, "--dir", str(fleet.device))
    refused(again, 4, "not installed again")
    assert again.json()["downloaded"] == 0 and fleet.installed() == before


def test_an_endless_bundle_download_stops_at_its_signed_length(tmp_path, keys, bundles):
    """The target serves the bundle from a pipe that never ends: the device reads up to the signed
    length (plus a chunk in flight), refuses, and closes it; the writer sees its reader go."""
    import threading

    fleet = Fleet(tmp_path, keys, bundles, f"file://{tmp_path / 'store'}")
    release(fleet.config, fleet.url, bundles["2.0.0"], "2.0.0")
    stored = tmp_path / "store" / NAME / "2.0.0" / "bc-2.0.0.mlbundle"
    signed = stored.stat().st_size
    stored.unlink()
    os.mkfifo(stored)
    written, cap = [0], 256 << 20  # the cap only ends the test if the device read without a bound

    def endless() -> None:
        block = b"\0" * (64 << 10)
        with open(stored, "wb") as pipe:
            try:
                while written[0] < cap:
                    pipe.write(block)
                    written[0] += len(block)
            except BrokenPipeError:
                return

    writer = threading.Thread(target=endless, daemon=True)
    writer.start()
    before = fleet.installed()
    refused(fleet.sync(), 3, "length over the signed bound")
    import gc

    gc.collect()  # the refused download's stream, if anything still holds it
    writer.join(timeout=120)
    assert not writer.is_alive()
    assert written[0] < signed + (4 << 20), (written[0], signed)  # the bound, a chunk, the pipe's buffer
    assert fleet.installed() == before and os.readlink(fleet.device / "current") == "versions/1.0.0"
