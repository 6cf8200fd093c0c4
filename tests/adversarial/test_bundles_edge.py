"""Attacks on edge bundles and the device side of `mlship edge` (issue 15, items 1, 2, 10, 11).

A writer of a target (index.json, channels/CHANNEL.json, the stored bundles)
and a crafter of a bundle are the attackers here: each try must end in the
documented exit code with one line naming what and where, no traceback, and
the device's `current` version untouched.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import socket
import stat
import sys
import tarfile
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlship.bundles.read import unpack_bundle
from mlship.errors import InvalidInputError
from tests import models
from tests.support import MODEL, run

NAME = "bc"


# ---------------------------------------------------------------------------- helpers

@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    """Keys and two signed bundles (1.0.0, 2.0.0), built once for the module."""
    root = tmp_path_factory.mktemp("assets")
    for key in ("k", "other"):
        assert run("keys", "generate", "--dir", str(root), "--name", key).code == 0
    v2 = models.logistic_classifier(root / "v2.onnx")
    for version, model in (("1.0.0", MODEL), ("2.0.0", v2)):
        result = run("build", "--edge", str(model), "--name", NAME, "--model-version", version,
                     "--output-dir", str(root / "dist"), "--signing-key", str(root / "k.key"))
        assert result.code == 0, result.stderr
    return root


def bundle_of(assets: Path, version: str) -> Path:
    return assets / "dist" / f"{NAME}-{version}.mlbundle"


def publish(store: Path, version, data: bytes, *, path: str = "bundle.mlbundle", channel: str = "stable") -> None:
    """Write a version straight into a file target's layout (as any writer of the target could)."""
    base = store / NAME
    if isinstance(version, str) and isinstance(path, str) and path and not path.startswith("/") and ".." not in path:
        (base / version / path).parent.mkdir(parents=True, exist_ok=True)
        (base / version / path).write_bytes(data)
    index_file = base / "index.json"
    index = json.loads(index_file.read_text()) if index_file.exists() else {"name": NAME, "versions": []}
    index["versions"].append({"version": version, "size": len(data), "files": [
        {"path": path, "sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}]})
    index_file.parent.mkdir(parents=True, exist_ok=True)
    index_file.write_text(json.dumps(index))
    (base / "channels").mkdir(exist_ok=True)
    (base / "channels" / f"{channel}.json").write_text(json.dumps({"name": NAME, "channel": channel,
                                                                    "version": version}))


def sync(store: Path, device: Path, *extra: str, key: Path | None = None):
    args = ["edge", "sync", "--from", f"file://{store}", "--name", NAME, "--dir", str(device), *extra]
    return run(*args, *(["--public-key", str(key)] if key else []))


def snapshot(directory: Path) -> dict[str, object]:
    """Every entry under `directory`: link targets and file digests (to prove nothing changed)."""
    out: dict[str, object] = {}
    for dirpath, dirnames, filenames in os.walk(directory):
        for entry in dirnames + filenames:
            path = Path(dirpath) / entry
            rel = path.relative_to(directory).as_posix()
            if path.is_symlink():
                out[rel] = "-> " + os.readlink(path)
            elif path.is_file():
                out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
            else:
                out[rel] = "dir"
    return out


def refused(result, code: int, *needles: str) -> None:
    """The documented exit code, one line naming the problem, no traceback."""
    assert result.code == code, (result.code, result.stderr)
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    for needle in needles:
        assert needle in result.stderr, (needle, result.stderr)


@pytest.fixture
def device(tmp_path, assets, monkeypatch):
    """A device deep under tmp_path, synced to the signed 1.0.0 from a file target at tmp_path/store."""
    monkeypatch.chdir(tmp_path)
    store, dev = tmp_path / "store", tmp_path / "a" / "b" / "device"
    publish(store, "1.0.0", bundle_of(assets, "1.0.0").read_bytes())
    result = sync(store, dev, key=assets / "k.pub")
    assert result.code == 0, result.stderr
    assert os.readlink(dev / "current") == "versions/1.0.0"
    return store, dev


def plant_unsigned(directory: Path, model: Path = MODEL) -> None:
    """An unpacked, unsigned 'bundle' an attacker placed on the device's disk."""
    directory.mkdir(parents=True, exist_ok=True)
    data = model.read_bytes()
    (directory / "model.onnx").write_bytes(data)
    (directory / "manifest.json").write_text(json.dumps({
        "schema": "mlship.bundle/v1", "name": NAME, "version": "evil", "model": "model.onnx",
        "files": [{"path": "model.onnx", "sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}]}))


def tar_bytes(entries: dict[str, bytes]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w:gz") as tar:
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return raw.getvalue()


def members(bundle: Path) -> dict[str, bytes]:
    with tarfile.open(bundle) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers()}


def unsigned_bundle(manifest: object, extra: dict[str, bytes] | None = None) -> bytes:
    """A bundle with the example model and the given manifest (any JSON value, or raw bytes)."""
    body = manifest if isinstance(manifest, bytes) else json.dumps(manifest).encode()
    return tar_bytes({"manifest.json": body, "model.onnx": MODEL.read_bytes(), **(extra or {})})


def good_manifest() -> dict:
    data = MODEL.read_bytes()
    return {"schema": "mlship.bundle/v1", "name": NAME, "version": "3.0.0", "model": "model.onnx",
            "files": [{"path": "model.onnx", "sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}]}


@pytest.fixture
def busy_port():
    """A port that is taken: a bundle wrongly accepted by `serve` ends in exit 2, never a hang."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(1)
    yield str(sock.getsockname()[1])
    sock.close()


@pytest.fixture
def private_tmp(tmp_path, monkeypatch):
    """tempfile's directory for this process pointed at an empty directory we can inspect."""
    tmp = tmp_path / "tmpdir"
    tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    monkeypatch.setenv("TMPDIR", str(tmp))
    return tmp


# ---------------------------------------------------------------------------- item 1: versions from the target

BAD_VERSIONS = ["../../../planted", ".", "..", "/tmp/planted", "a/b", "", "-rf", "1.0\n", "x" * 200,
                7, None, ["1.0.0"], {"v": 1}]


@pytest.mark.parametrize("version", BAD_VERSIONS, ids=repr)
def test_sync_refuses_a_version_that_is_not_a_name(device, assets, version):
    store, dev = device
    plant_unsigned(dev / "versions" / "../../../planted")  # where the traversal would point
    publish(store, version, bundle_of(assets, "2.0.0").read_bytes())
    before = snapshot(dev)
    result = sync(store, dev, key=assets / "k.pub")
    refused(result, 3, "version", "channels/stable.json")
    assert snapshot(dev) == before  # nothing written, current still the signed 1.0.0
    assert os.readlink(dev / "current") == "versions/1.0.0"


@pytest.mark.parametrize("version", ["../../../planted", "."])
def test_sync_refuses_traversal_versions_from_file_and_s3_targets(tmp_path, assets, artifact_target, monkeypatch,
                                                                  version):
    """The same attack through the Target API, so S3 (moto) is covered as well as file://."""
    from mlship.targets.base import open_target

    monkeypatch.chdir(tmp_path)
    target = open_target(artifact_target, {})
    data = bundle_of(assets, "1.0.0").read_bytes()
    entry = {"path": "b.mlbundle", "sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    target.write(f"{NAME}/1.0.0/b.mlbundle", data)
    index = {"name": NAME, "versions": [{"version": "1.0.0", "files": [entry]}, {"version": version, "files": [entry]}]}
    target.write(f"{NAME}/index.json", json.dumps(index).encode())
    target.write(f"{NAME}/channels/stable.json", b'{"version": "1.0.0"}')
    dev = tmp_path / "a" / "b" / "device"
    assert run("edge", "sync", "--from", artifact_target, "--name", NAME, "--dir", str(dev),
               "--public-key", str(assets / "k.pub")).code == 0
    plant_unsigned(dev / "versions" / version)
    target.write(f"{NAME}/channels/stable.json", json.dumps({"version": version}).encode())
    before = snapshot(dev)
    refused(run("edge", "sync", "--from", artifact_target, "--name", NAME, "--dir", str(dev),
                "--public-key", str(assets / "k.pub")), 3, f"version {version!r}", "channels/stable.json")
    assert snapshot(dev) == before and os.readlink(dev / "current") == "versions/1.0.0"


@pytest.mark.parametrize("path", ["../1.0.0/bundle.mlbundle", "/etc/hostname.mlbundle", "a/../../x.mlbundle",
                                  "./bundle.mlbundle", "a//bundle.mlbundle", ".mlbundle/..", 5])
def test_sync_refuses_index_file_paths_outside_the_version(device, assets, path):
    store, dev = device
    publish(store, "2.0.0", bundle_of(assets, "1.0.0").read_bytes(), path=path)
    before = snapshot(dev)
    refused(sync(store, dev, key=assets / "k.pub"), 3, "index.json")
    assert snapshot(dev) == before


@pytest.mark.parametrize("flag,value", [("--channel", "../../y"), ("--channel", ".."), ("--name", "../x"),
                                        ("--name", "."), ("--device", "../../../z"), ("--device", "a/b")])
def test_sync_refuses_names_channels_and_device_ids_from_flags(device, assets, tmp_path, flag, value):
    store, dev = device
    logs = tmp_path / "logs"
    logs.mkdir()
    for n in ("predictions-bc-edge-20261101T000000Z-7-0001.jsonl", "predictions-bc-edge-20261101T010000Z-7-0002.jsonl"):
        (logs / n).write_text('{"request_id": "x"}\n')
    args = ["edge", "sync", "--from", f"file://{store}", "--dir", str(dev), "--upload-logs", str(logs),
            "--device", "cam-1", "--name", NAME, "--channel", "stable"]
    args[args.index(flag) + 1] = value
    # What the traversal would read is there, so only the name check can stop it.
    if flag == "--channel":
        planted = store / NAME / "channels" / f"{value}.json"
    elif flag == "--name":
        planted = store / value / "channels" / "stable.json"
        planted.parent.mkdir(parents=True, exist_ok=True)
        (store / value / "index.json").write_bytes((store / NAME / "index.json").read_bytes())
    if flag != "--device":
        planted.parent.mkdir(parents=True, exist_ok=True)
        planted.write_text('{"version": "1.0.0"}')
    before_store, before_dev = snapshot(tmp_path / "store"), snapshot(dev)
    what = {"--channel": "channel", "--name": "name", "--device": "device"}[flag]
    refused(run(*args), 2, f"{what} {value!r}", "not a valid name")
    assert snapshot(tmp_path / "store") == before_store and snapshot(dev) == before_dev
    assert len(list(logs.glob("*.jsonl"))) == 2 and not (tmp_path / "z").exists()


def test_a_planted_versions_dir_is_verified_before_current_points_at_it(device, assets):
    """versions/2.0.0 on the device holds an unsigned model; the channel moves to the signed 2.0.0."""
    store, dev = device
    plant_unsigned(dev / "versions" / "2.0.0")
    publish(store, "2.0.0", bundle_of(assets, "2.0.0").read_bytes())
    result = run("--json", *["edge", "sync", "--from", f"file://{store}", "--name", NAME, "--dir", str(dev),
                             "--public-key", str(assets / "k.pub")])
    assert result.code == 0, result.stderr
    assert result.json()["downloaded"] > 0  # the planted directory was not trusted
    signed = members(bundle_of(assets, "2.0.0"))
    assert os.readlink(dev / "current") == "versions/2.0.0"
    assert (dev / "current" / "manifest.json").read_bytes() == signed["manifest.json"]
    assert (dev / "current" / "manifest.sig").read_bytes() == signed["manifest.sig"]
    assert (dev / "current" / "model.onnx").read_bytes() == signed["model.onnx"]
    assert sorted(p.name for p in (dev / "versions").iterdir()) == ["1.0.0", "2.0.0"]  # no quarantine left


def test_a_tampered_current_version_is_repaired_not_reported_up_to_date(device, assets):
    store, dev = device
    (dev / "versions" / "1.0.0" / "model.onnx").write_bytes(models.logistic_classifier(dev.parent / "x.onnx")
                                                           .read_bytes())
    result = run("--json", "edge", "sync", "--from", f"file://{store}", "--name", NAME, "--dir", str(dev),
                 "--public-key", str(assets / "k.pub"))
    assert result.code == 0, result.stderr
    assert result.json()["downloaded"] > 0 and result.json()["repaired"] is True
    assert (dev / "current" / "model.onnx").read_bytes() == members(bundle_of(assets, "1.0.0"))["model.onnx"]


def test_an_unsigned_version_synced_earlier_is_refused_once_a_key_is_required(device, assets, tmp_path):
    """versions/2.0.0 came from an unsigned sync; a later --public-key sync must not switch to it as is."""
    store, dev = device
    unsigned = members(bundle_of(assets, "2.0.0"))
    del unsigned["manifest.sig"]
    data = tar_bytes(unsigned)
    publish(store, "2.0.0", data)
    assert sync(store, dev).code == 0  # no key: accepted
    assert run("edge", "rollback", "--dir", str(dev)).code == 0  # back to 1.0.0, 2.0.0 stays on disk
    before = snapshot(dev)
    refused(sync(store, dev, key=assets / "k.pub"), 3, "not signed")
    assert snapshot(dev) == before and os.readlink(dev / "current") == "versions/1.0.0"


def test_a_signed_bundle_of_another_version_is_not_installed_under_this_one(device, assets):
    """Replay: the signed 1.0.0 bundle (valid signature) stored and promoted as 2.0.0."""
    store, dev = device
    publish(store, "2.0.0", bundle_of(assets, "1.0.0").read_bytes())
    before = snapshot(dev)
    refused(sync(store, dev, key=assets / "k.pub"), 3, "1.0.0", "2.0.0")
    assert snapshot(dev) == before


@pytest.mark.parametrize("flag,value", [("--name", "../evil"), ("--name", "."), ("--model-version", "../../v"),
                                        ("--model-version", "1/2")])
def test_build_edge_refuses_names_that_leave_the_output_dir(tmp_path, monkeypatch, flag, value):
    """The bundle's file name is NAME-VERSION.mlbundle, and both go into its manifest."""
    monkeypatch.chdir(tmp_path)
    args = ["build", "--edge", str(MODEL), "--name", NAME, "--model-version", "1", "--output-dir", "a/out"]
    args[args.index(flag) + 1] = value
    refused(run(*args), 2, f"{value!r}", "not a valid name")
    assert snapshot(tmp_path) == {}  # no bundle anywhere, no version recorded


# ---------------------------------------------------------------------------- item 2: what a bundle may hold

@pytest.mark.parametrize("extra", ["sub/manifest.sig", "x/manifest.json", "a/b/manifest.json"])
def test_signed_bundle_refuses_unlisted_manifest_named_files(assets, tmp_path, extra):
    entries = members(bundle_of(assets, "1.0.0"))
    entries[extra] = b"planted"
    crafted = tmp_path / "crafted.mlbundle"
    crafted.write_bytes(tar_bytes(entries))
    with pytest.raises(InvalidInputError, match=f"{extra} is in the bundle but not in manifest.json"):
        unpack_bundle(crafted, tmp_path / "u", public_key=assets / "k.pub")


@pytest.mark.parametrize("field,value", [
    ("model", "/abs/model.onnx"), ("model", "../outside.onnx"), ("model", "sub/../../outside.onnx"),
    ("files", "/abs/model.onnx"), ("files", "../outside.onnx"), ("files", "./model.onnx"), ("files", ""),
    ("files", "."), ("files", "a//model.onnx")])
def test_unsigned_manifest_paths_must_stay_inside_the_bundle(tmp_path, field, value):
    """The manifest lists (with the right digest) a model outside the unpacked directory."""
    outside = tmp_path / "outside.onnx"
    outside.write_bytes(MODEL.read_bytes())
    absolute = tmp_path / "abs" / "model.onnx"
    absolute.parent.mkdir()
    absolute.write_bytes(MODEL.read_bytes())
    value = value.replace("/abs/", f"{tmp_path}/abs/")
    manifest = good_manifest()
    manifest["model"] = value
    if field == "files":
        manifest["files"].append({**manifest["files"][0], "path": value})
        manifest["model"] = "model.onnx"
    else:
        manifest["files"] = [{**manifest["files"][0], "path": value}, manifest["files"][0]]
    crafted = tmp_path / "crafted.mlbundle"
    crafted.write_bytes(unsigned_bundle(manifest))
    with pytest.raises(InvalidInputError, match="must be a relative path inside the bundle") as caught:
        unpack_bundle(crafted, tmp_path / "x")  # x/.. is where outside.onnx waits
    assert str(crafted) in str(caught.value) and "manifest.json" in str(caught.value)


# ---------------------------------------------------------------------------- item 10: malformed input, exit 3

def _manifest_without(key):
    manifest = good_manifest()
    del manifest[key]
    return manifest


_SIGNATURE = {"inputs": [{"name": "X", "dtype": "float32", "shape": [None, 30], "type": "tensor(float)"}],
              "outputs": [{"name": "label", "dtype": "int64", "shape": [None], "type": "tensor(int64)"}]}


def _manifest_with(**changes):
    return {**good_manifest(), **changes}


def _file_entry(**changes):
    manifest = good_manifest()
    manifest["files"] = [{**manifest["files"][0], **changes}]
    return manifest


BAD_MANIFESTS = {
    "list": [], "string": "manifest", "null": None, "number": 3,
    "no name": _manifest_without("name"), "no version": _manifest_without("version"),
    "no model": _manifest_without("model"), "no files": _manifest_without("files"),
    "name int": _manifest_with(name=5), "name traversal": _manifest_with(name="../x"),
    "version null": _manifest_with(version=None), "version dotdot": _manifest_with(version=".."),
    "version slash": _manifest_with(version="1/2"), "model int": _manifest_with(model=1),
    "model list": _manifest_with(model=["model.onnx"]), "files dict": _manifest_with(files={"model.onnx": 1}),
    "files string": _manifest_with(files="model.onnx"), "file entry int": _manifest_with(files=[1]),
    "file path int": _file_entry(path=1), "file no sha": {**good_manifest(), "files": [{"path": "model.onnx"}]},
    "sha int": _file_entry(sha256=5), "sha short": _file_entry(sha256="abc"), "size str": _file_entry(size="big"),
    "size negative": _file_entry(size=-1), "duplicate path": _manifest_with(files=good_manifest()["files"] * 2),
    "schema v9": _manifest_with(schema="mlship.bundle/v9"),
    "truncated": json.dumps(good_manifest()).encode()[:40], "not utf-8": b"\xff\xfe{\x00",
    "empty": b"", "deep nesting": b"[" * 100_000 + b"]" * 100_000,
    # Column names for the model's inputs (a project's `features:`) must fit the inputs the manifest describes.
    "features list": _manifest_with(signature=_SIGNATURE, features=[f"c{j}" for j in range(30)]),
    "features count": _manifest_with(signature=_SIGNATURE, features={"X": ["a", "b"]}),
    "features input": _manifest_with(signature=_SIGNATURE, features={"Y": [f"c{j}" for j in range(30)]}),
    "features twice": _manifest_with(signature=_SIGNATURE, features={"X": ["c"] * 30}),
    "features no signature": _manifest_with(features={"X": [f"c{j}" for j in range(30)]}),
    "features bad signature": _manifest_with(signature={"inputs": 3}, features={"X": ["a"]}),
}


@pytest.mark.parametrize("case", list(BAD_MANIFESTS))
def test_serve_refuses_malformed_manifests_with_exit_3(tmp_path, private_tmp, busy_port, case):
    crafted = tmp_path / "bc-3.0.0.mlbundle"
    crafted.write_bytes(unsigned_bundle(BAD_MANIFESTS[case]))
    refused(run("serve", str(crafted), "--port", busy_port), 3, str(crafted), "manifest.json")
    assert list(private_tmp.iterdir()) == []  # the rejected content is not left behind


@pytest.mark.parametrize("data", [b"", b"not a tar", b"\x1f\x8b\x08\x00garbage", tar_bytes({})[:30]], ids=repr)
def test_serve_refuses_unreadable_bundles_with_exit_3(tmp_path, private_tmp, busy_port, data):
    crafted = tmp_path / "bc-3.0.0.mlbundle"
    crafted.write_bytes(data)
    refused(run("serve", str(crafted), "--port", busy_port), 3, str(crafted))
    assert list(private_tmp.iterdir()) == []


CHANNELS = {"truncated": b'{"name": "bc", "version": "1.0', "empty": b"", "not utf-8": b"\xff\xfe\x00",
            "list": b"[]", "string": b'"2.0.0"', "null": b"null", "no version": b'{"name": "bc"}',
            "version int": b'{"version": 2}', "deep nesting": b"[" * 100_000 + b"]" * 100_000}


@pytest.mark.parametrize("case", list(CHANNELS))
def test_sync_refuses_malformed_channel_files(device, assets, case):
    store, dev = device
    (store / NAME / "channels" / "stable.json").write_bytes(CHANNELS[case])
    before = snapshot(dev)
    refused(sync(store, dev, key=assets / "k.pub"), 3, "channels/stable.json")
    assert snapshot(dev) == before


def _index_with(entry):
    return json.dumps({"name": NAME, "versions": [entry]}).encode()


INDEXES = {
    "truncated": b'{"name": "bc", "versions": [{"version": "1.0.0", "fi', "empty": b"", "not utf-8": b"\xff\xfe",
    "list": b"[]", "null": b"null", "versions dict": b'{"versions": {"1.0.0": {}}}', "versions int": b'{"versions": 1}',
    "entry int": b'{"versions": [1]}', "entry no files": _index_with({"version": "1.0.0"}),
    "files dict": _index_with({"version": "1.0.0", "files": {}}),
    "file no sha": _index_with({"version": "1.0.0", "files": [{"path": "b.mlbundle", "size": 1}]}),
    "sha not hex": _index_with({"version": "1.0.0", "files": [{"path": "b.mlbundle", "sha256": "zz" * 32,
                                                              "size": 1}]}),
    "sha int": _index_with({"version": "1.0.0", "files": [{"path": "b.mlbundle", "sha256": 1, "size": 1}]}),
    "no bundle": _index_with({"version": "1.0.0", "files": [{"path": "b.txt", "sha256": "a" * 64, "size": 1}]}),
    "deep nesting": b"[" * 100_000 + b"]" * 100_000,
}


@pytest.mark.parametrize("case", list(INDEXES))
def test_sync_refuses_malformed_index_files(device, assets, case):
    store, dev = device
    (store / NAME / "index.json").write_bytes(INDEXES[case])
    (store / NAME / "channels" / "stable.json").write_text('{"version": "1.0.0"}')
    # the device has 1.0.0 already: a broken index must still not be reported as "up to date"
    before = snapshot(dev)
    refused(sync(store, dev, key=assets / "k.pub"), 3, "index.json")
    assert snapshot(dev) == before


@pytest.mark.parametrize("breakage", ["no manifest", "dangling", "manifest model outside", "manifest truncated",
                                      "model missing"])
def test_edge_run_refuses_a_broken_current_with_exit_3(device, busy_port, breakage):
    _, dev = device
    current = dev / "versions" / "1.0.0"
    manifest = json.loads((current / "manifest.json").read_text())
    if breakage == "no manifest":
        (current / "manifest.json").unlink()
    elif breakage == "dangling":
        os.symlink("versions/9.9.9", dev / ".c")
        os.replace(dev / ".c", dev / "current")
    elif breakage == "manifest model outside":
        manifest["model"] = "../../../../../outside.onnx"
        (current / "manifest.json").write_text(json.dumps(manifest))
    elif breakage == "manifest truncated":
        (current / "manifest.json").write_text(json.dumps(manifest)[:30])
    else:
        (current / manifest["model"]).unlink()
    refused(run("edge", "run", "--dir", str(dev), "--port", busy_port), 3, str(dev))


# ---------------------------------------------------------------------------- item 11: leaks and modes

def test_serving_a_bundle_removes_its_unpacked_copy_on_shutdown(tmp_path, assets, monkeypatch):
    from tests.serve.server_process import start_server

    tmp = tmp_path / "tmpdir"
    tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp))  # the server process's tempfile directory
    server = start_server(bundle_of(assets, "1.0.0"), tmp_path / "srv", log=False)
    try:
        assert len(list(tmp.glob("mlship-bundle-*"))) == 1, sorted(tmp.iterdir())  # unpacked while serving
    finally:
        assert server.terminate() == 0
    assert list(tmp.glob("mlship-bundle-*")) == [], sorted(tmp.iterdir())


def test_serving_a_bundle_cleans_up_when_the_port_is_taken(tmp_path, assets, private_tmp, busy_port):
    refused(run("serve", str(bundle_of(assets, "1.0.0")), "--port", busy_port), 2, "cannot listen")
    assert list(private_tmp.iterdir()) == []


@pytest.mark.parametrize("case", ["tampered model", "unlisted file", "wrong schema", "newline in a file name"])
def test_rejected_bundles_leave_no_unpacked_content(tmp_path, private_tmp, busy_port, case):
    manifest = good_manifest()
    extra = {}
    if case == "tampered model":
        manifest["files"][0]["sha256"] = "0" * 64
    elif case == "unlisted file":
        extra = {"sub/manifest.sig": b"x"}
    elif case == "newline in a file name":
        extra = {"a\nerror: a second, forged line": b"x"}  # must stay on the one error line
    else:
        manifest["schema"] = "other"
    crafted = tmp_path / "x.mlbundle"
    crafted.write_bytes(unsigned_bundle(manifest, extra))
    refused(run("serve", str(crafted), "--port", busy_port), 3, str(crafted))
    assert list(private_tmp.iterdir()) == []


def test_private_key_is_never_readable_by_others(tmp_path):
    """Every file system step of `keys generate` is watched: the key never exists under its
    name with a mode other than 0600 (the old code wrote it 0644, then chmod-ed it)."""
    private = tmp_path / "k.key"
    modes: list[int] = []
    watching = [True]

    def hook(event, args):
        if watching[0] and private.exists():
            modes.append(stat.S_IMODE(private.stat().st_mode))

    sys.addaudithook(hook)  # hooks cannot be removed: `watching` turns it off
    old = os.umask(0o022)
    try:
        result = run("keys", "generate", "--dir", str(tmp_path), "--name", "k")
    finally:
        os.umask(old)
        watching[0] = False
    assert result.code == 0, result.stderr
    assert modes and set(modes) == {0o600}, [oct(m) for m in modes]
    assert stat.S_IMODE((tmp_path / "k.pub").stat().st_mode) == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k.key", "k.pub"]  # no temporary left


def test_keys_generate_never_replaces_an_existing_key(tmp_path):
    (tmp_path / "k.key").write_text("mine")
    refused(run("keys", "generate", "--dir", str(tmp_path), "--name", "k"), 2, "already exists")
    assert (tmp_path / "k.key").read_text() == "mine" and not (tmp_path / "k.pub").exists()
    refused(run("keys", "generate", "--dir", str(tmp_path), "--name", "../k2"), 2, "not a valid name")
    assert not (tmp_path.parent / "k2.key").exists()


# ---------------------------------------------------------------------------- properties (item 10)

PROPERTY = settings(max_examples=60, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

HOSTILE = (st.sampled_from([None, True, 0, -1, 1.5, 10**30, "", ".", "..", "../../../planted", "/etc/passwd",
                            "a/b", "1.0.0", "2.0.0", "bundle.mlbundle", "../1.0.0/bundle.mlbundle", "x.mlbundle",
                            "0" * 64, "a\nb", [], {}, [1], {"k": "v"}])
           | st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8),
                          lambda inner: st.lists(inner, max_size=3)
                          | st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=6))


def _nodes(doc, path=()):
    yield path
    children = doc.items() if isinstance(doc, dict) else enumerate(doc) if isinstance(doc, list) else ()
    for key, value in children:
        yield from _nodes(value, (*path, key))


def mutated(doc, data) -> bytes:
    """`doc` with one node replaced or removed, or its text cut short: what a careless or hostile writer leaves."""
    doc = json.loads(json.dumps(doc))
    text = json.dumps(doc)
    action = data.draw(st.sampled_from(["replace", "replace", "delete", "truncate"]))
    if action == "truncate":
        return text.encode()[:data.draw(st.integers(0, len(text) - 1))]
    path = data.draw(st.sampled_from(list(_nodes(doc))))
    if not path:
        return json.dumps(data.draw(HOSTILE)).encode()
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    if action == "delete":
        del parent[path[-1]]
    else:
        parent[path[-1]] = data.draw(HOSTILE)
    return json.dumps(doc).encode()


@pytest.fixture(scope="module")
def synced_template(assets, tmp_path_factory):
    """A target with 1.0.0 and 2.0.0 (stable -> 2.0.0) and a device synced, with the key, to 1.0.0."""
    root = tmp_path_factory.mktemp("template")
    store, dev = root / "store", root / "device"
    publish(store, "1.0.0", bundle_of(assets, "1.0.0").read_bytes())
    assert sync(store, dev, key=assets / "k.pub").code == 0
    publish(store, "2.0.0", bundle_of(assets, "2.0.0").read_bytes())
    return root


@pytest.mark.parametrize("document", ["index.json", "channels/stable.json"])
@PROPERTY
@given(data=st.data())
def test_sync_never_points_current_at_unverified_content(synced_template, assets, document, data):
    """Whatever the target's index or channel says, sync exits 0 with `current` on a version that
    verifies against the key, or exits 3 (7 when a named file is not there) with the device untouched."""
    signed = {v: members(bundle_of(assets, v)) for v in ("1.0.0", "2.0.0")}
    work = Path(tempfile.mkdtemp(prefix="prop-"))
    try:
        shutil.copytree(synced_template, work / "t", symlinks=True)
        store, dev = work / "t" / "store", work / "t" / "device"
        doc = json.loads((store / NAME / document).read_text())
        (store / NAME / document).write_bytes(mutated(doc, data))
        plant_unsigned(dev / "versions" / "../../../planted")
        before = snapshot(dev)
        result = sync(store, dev, key=assets / "k.pub")
        assert "Traceback" not in result.stderr
        if result.code == 0:  # exactly one of the signed bundles' contents, nothing else
            version = os.readlink(dev / "current").removeprefix("versions/")
            assert version in signed, version
            current = dev / "versions" / version
            assert {p.name: p.read_bytes() for p in current.iterdir()} == signed[version]
        else:
            refused(result, result.code, "error:")
            assert result.code in (3, 7), result.stderr
            assert snapshot(dev) == before
    finally:
        shutil.rmtree(work, ignore_errors=True)


@PROPERTY
@given(data=st.data())
def test_an_accepted_manifest_never_names_a_file_outside_the_bundle(data):
    """Mutated unsigned manifests: refused with InvalidInputError, or every path they name is inside."""
    work = Path(tempfile.mkdtemp(prefix="prop-"))
    try:
        (work / "outside.onnx").write_bytes(MODEL.read_bytes())  # what an escaping path would find
        crafted = work / "b.mlbundle"
        crafted.write_bytes(unsigned_bundle(mutated(good_manifest(), data)))
        try:
            unpacked = unpack_bundle(crafted, work / "u")
        except InvalidInputError as exc:
            assert str(crafted) in str(exc)
            assert not (work / "u").exists()
            return
        inside = (work / "u").resolve()
        for path in [unpacked.model_path] + [work / "u" / f.path for f in unpacked.manifest.files]:
            assert path.resolve().is_relative_to(inside) and path.is_file()
    finally:
        shutil.rmtree(work, ignore_errors=True)
