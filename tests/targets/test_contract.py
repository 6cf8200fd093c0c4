"""The Target contract, run over every installed target plugin (`mlship.targets.v1`).

Each kind is exercised against the real thing (a directory, a bucket on moto's S3); a kind
installed without a fixture here fails, so a new target cannot skip the contract. The same
kinds run the command-level contract in test_targets.py (the `artifact_target` fixture).
"""

from __future__ import annotations

import threading

import pytest
from pydantic import ValidationError

from mlship.errors import InvalidInputError, UsageError
from mlship.plugins import installed, load
from mlship.targets.base import Target, open_target
from tests.conftest import empty_target

# kinds whose fixture starts a real server (the integration marker)
SERVERS = {"s3", "gs", "az"}


def _open(kind: str, request, tmp_path, monkeypatch) -> Target:
    if kind in ("file", "s3", "gs", "az"):
        return open_target(empty_target(kind, request, tmp_path, monkeypatch), {})
    if kind == "registry":
        return load("targets", "registry", kind)(url="127.0.0.1:5000/ml/bc")
    pytest.fail(f"target kind {kind!r} is installed but has no contract fixture in {__file__}")


@pytest.fixture(params=[pytest.param(k, marks=pytest.mark.integration) if k in SERVERS else k
                        for k in installed("targets")])
def kind(request) -> str:
    return request.param


@pytest.fixture
def target(kind, request, tmp_path, monkeypatch) -> Target:
    return _open(kind, request, tmp_path, monkeypatch)


@pytest.fixture
def artifacts(target) -> Target:
    """The target, for the contract of kinds that hold artifacts."""
    if type(target).refusal("x") is not None:
        pytest.skip(f"{type(target).name} targets hold no artifacts")
    return target


def test_the_plugin_is_named_and_has_strict_settings(kind):
    plugin = load("targets", kind, kind)
    assert issubclass(plugin, Target) and plugin.name == kind
    assert issubclass(plugin.Settings, Target.Settings)
    with pytest.raises(ValidationError):
        plugin.Settings(url=f"{kind}://x/y", no_such_key=1)


def test_write_then_read(artifacts):
    assert artifacts.read("bc/index.json") is None
    artifacts.write("bc/index.json", b'{"a": 1}')
    artifacts.write("bc/index.json", b'{"a": 2}')
    assert artifacts.read("bc/index.json") == b'{"a": 2}'


def test_upload_then_download_gives_the_same_bytes(artifacts, tmp_path):
    import hashlib

    source = tmp_path / "model.onnx"
    source.write_bytes(b"weights" * 10_000)
    seen: list[int] = []
    digest = artifacts.upload("bc/1.0.0/model.onnx", source, seen.append)
    assert digest == hashlib.sha256(source.read_bytes()).hexdigest()
    dest = tmp_path / "back.onnx"
    artifacts.download("bc/1.0.0/model.onnx", dest, lambda n: None)
    assert dest.read_bytes() == source.read_bytes()


def test_stream_gives_the_bytes_in_chunks_and_none_for_a_missing_key(artifacts, tmp_path):
    """Readers with a length bound (TUF on the device) stream, so they can stop early."""
    data = bytes(range(256)) * 4096 + b"end"  # 1 MiB and a bit: more than one chunk on every kind
    source = tmp_path / "big.bin"
    source.write_bytes(data)
    artifacts.upload("bc/1.0.0/big.bin", source, lambda n: None)
    assert artifacts.stream("bc/1.0.0/missing.bin") is None
    assert b"".join(artifacts.stream("bc/1.0.0/big.bin")) == data
    first = next(artifacts.stream("bc/1.0.0/big.bin"))
    assert 0 < len(first) and data.startswith(first)


def test_list_keys_names_every_key_under_a_folder(artifacts):
    for key in ("bc/devices/a/status.json", "bc/devices/b/status.json", "bc/devicesX/c.json", "bc/index.json"):
        artifacts.write(key, b"{}")
    assert artifacts.list_keys("bc/devices/") == ["bc/devices/a/status.json", "bc/devices/b/status.json"]
    assert artifacts.list_keys("bc/none/") == []


def test_update_creates_keeps_and_changes(artifacts):
    assert artifacts.update("bc/channels/stable.json", lambda old: None) is None  # nothing there, nothing written
    assert artifacts.update("bc/channels/stable.json", lambda old: b"1") == b"1"
    assert artifacts.update("bc/channels/stable.json", lambda old: None) == b"1"
    assert artifacts.update("bc/channels/stable.json", lambda old: old + b"2") == b"12"


def test_concurrent_updates_lose_nothing(artifacts):
    def add_one() -> None:
        artifacts.update("bc/counter", lambda old: str(int(old or b"0") + 1).encode())

    workers = [threading.Thread(target=add_one) for _ in range(6)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert artifacts.read("bc/counter") == b"6"


@pytest.mark.parametrize("key", ["../x", "bc/../../x", "/abs", "bc//x", "bc/./x", "", "bc\\x"])
def test_keys_never_leave_the_root(artifacts, key):
    with pytest.raises(InvalidInputError, match="leave the target's root"):
        artifacts.write(key, b"x")


def test_a_kind_without_artifacts_refuses_every_artifact_operation(target, tmp_path):
    refusal = type(target).refusal("somewhere")
    if refusal is None:
        pytest.skip(f"{type(target).name} targets hold artifacts")
    assert isinstance(refusal, UsageError) and "somewhere" in refusal.one_line()
    (tmp_path / "f").write_bytes(b"x")
    for call in (lambda: target.read("bc/index.json"), lambda: target.write("bc/index.json", b"{}"),
                 lambda: target.update("bc/index.json", lambda old: b"{}"),
                 lambda: target.upload("bc/1/f", tmp_path / "f", lambda n: None),
                 lambda: target.download("bc/1/f", tmp_path / "g", lambda n: None)):
        with pytest.raises(UsageError):
            call()
    with pytest.raises(UsageError, match="take images"):
        open_target(f"{target.name}://127.0.0.1:5000/ml/bc", {})
