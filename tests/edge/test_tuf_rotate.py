"""`mlship keys rotate`: a new root version hands a role to new keys; devices follow the root chain (file:// and S3)."""

from __future__ import annotations

import json
import os

import pytest
from tuf.api.metadata import Metadata

from tests.adversarial.test_tuf import Fleet
from tests.edge.tuf_release import NAME, bundles, keys, release, write_config  # noqa: F401 (fixtures)
from tests.support import run


@pytest.fixture(scope="module")
def new_keys(tmp_path_factory):
    directory = tmp_path_factory.mktemp("new-keys")
    assert run("keys", "generate", "--dir", str(directory), "--role", "root", "--count", "2").code == 0
    assert run("keys", "generate", "--dir", str(directory), "--role", "targets").code == 0
    return directory


def rotate(fleet: Fleet, role: str, *files, config=None, extra=()):
    args = [a for f in files for a in ("--new-key", str(f))]
    return run("--config", str(config or fleet.config), "keys", "rotate", NAME, "--role", role, *args, *extra,
               "--to", fleet.url)


def trusted_root(fleet: Fleet) -> int:
    return json.loads((fleet.device / "tuf" / "root.json").read_bytes())["signed"]["version"]


def test_generate_writes_one_pair_per_key_of_a_role(new_keys):
    assert sorted(p.name for p in new_keys.iterdir()) == [
        "root-1.key", "root-1.pub", "root-2.key", "root-2.pub", "targets-1.key", "targets-1.pub"]
    assert (new_keys / "root-1.key").stat().st_mode & 0o777 == 0o600


def test_a_device_on_the_old_root_follows_rotations_and_takes_releases_from_the_new_keys(tmp_path, keys, bundles,
                                                                                         new_keys, artifact_target):
    fleet = Fleet(tmp_path, keys, bundles, artifact_target)
    result = rotate(fleet, "targets", new_keys / "targets-1.key")
    assert result.code == 0, result.stderr
    result = rotate(fleet, "root", new_keys / "root-1.key", new_keys / "root-2.key", extra=("--threshold", "2"))
    assert result.code == 0, result.stderr
    root = Metadata.from_bytes(fleet.key("3.root.json"))
    assert root.signed.roles["root"].threshold == 2 and len(root.signatures) == 4  # old 2 of 2 and new 2 of 2
    stale = release_result(fleet, fleet.config)  # mlship.yaml still names the revoked targets key
    assert stale.code == 2 and "signing.keys.targets" in stale.stderr and "3.root.json" in stale.stderr, stale.stderr
    config = write_config(tmp_path, keys, keys={
        "root": [str(new_keys / "root-1.key"), str(new_keys / "root-2.key")],
        "targets": [str(new_keys / "targets-1.key")], "snapshot": [str(keys / "snapshot.key")],
        "timestamp": [str(keys / "timestamp.key")]})
    release(config, fleet.url, bundles["2.0.0"], "2.0.0")
    synced = run("--json", "edge", "sync", "--from", fleet.url, "--name", NAME, "--dir", str(fleet.device))
    assert synced.code == 0, synced.stderr
    assert synced.json()["version"] == "2.0.0" and os.readlink(fleet.device / "current") == "versions/2.0.0"
    assert trusted_root(fleet) == 3


def release_result(fleet: Fleet, config):
    return run("--config", str(config), "push", str(fleet.bundles["2.0.0"]), "--artifact-version", "2.0.0",
               "--to", fleet.url)


def test_rotation_errors_name_what_is_wrong_and_write_nothing(tmp_path, keys, bundles, new_keys, artifact_target):
    fleet = Fleet(tmp_path, keys, bundles, artifact_target)
    cases = [(("targets", new_keys / "targets-1.pub"), (), "new private keys"),
             (("targets", new_keys / "targets-1.key"), ("--threshold", "2"), "--threshold 2 with 1 new keys"),
             (("delegated", new_keys / "targets-1.key"), (), "--role delegated"),
             (("targets", tmp_path / "missing.key"), (), "missing.key")]
    for (role, key), extra, needle in cases:
        result = rotate(fleet, role, key, extra=extra)
        assert result.code == 2 and needle in result.stderr, result.stderr
    (tmp_path / "one").mkdir()
    one_root = write_config(tmp_path / "one", keys, threshold={}, keys={
        "root": [str(keys / "root1.key")], "targets": [str(keys / "targets.key")],
        "snapshot": [str(keys / "snapshot.key")], "timestamp": [str(keys / "timestamp.key")]})
    result = rotate(fleet, "targets", new_keys / "targets-1.key", config=one_root)  # below the old threshold
    assert result.code == 2 and "not enough signatures" in result.stderr, result.stderr
    assert fleet.key("2.root.json") is None
