"""`mlship edge sync / rollback / run`: verified, atomic switches on the device."""

from __future__ import annotations

import json
import os

import onnxruntime as ort
import pytest

from mlship.edge.device import current_manifest
from tests import models
from tests.support import MODEL, run


def release(tmp_path, target, version, model=MODEL, key=None):
    """Build a bundle, push it to the target, point `stable` at it."""
    args = ["build", "--edge", str(model), "--name", "bc", "--model-version", version,
            "--output-dir", str(tmp_path / "dist")]
    assert run(*args, *(["--signing-key", str(key)] if key else [])).code == 0
    bundle = tmp_path / "dist" / f"bc-{version}.mlbundle"
    assert run("push", str(bundle), "--name", "bc", "--artifact-version", version, "--to", target).code == 0
    assert run("promote", "bc", version, "--channel", "stable", "--to", target).code == 0
    return bundle


def predicts(device):
    model, manifest = current_manifest(device)
    X, _, _ = models.sample_matrix()
    return manifest.version, ort.InferenceSession(str(model)).run(None, {"X": X[:3]})[0]


@pytest.fixture
def target(artifact_target):
    return artifact_target


def test_sync_switch_second_sync_and_rollback(tmp_path, target, monkeypatch):
    monkeypatch.chdir(tmp_path)
    device = tmp_path / "device"
    release(tmp_path, target, "1.0.0")
    first = run("--json", "edge", "sync", "--from", target, "--name", "bc", "--dir", str(device))
    assert first.code == 0, first.stderr
    assert first.json()["changed"] and first.json()["downloaded"] > 0
    assert predicts(device)[0] == "1.0.0"
    again = run("--json", "edge", "sync", "--from", target, "--name", "bc", "--dir", str(device))
    assert {k: v for k, v in again.json().items() if k != "status"} == {"version": "1.0.0", "changed": False,
                                                                         "downloaded": 0}
    assert again.json()["status"]["written"] is True  # the device reported (tests/edge/test_fleet.py)
    release(tmp_path, target, "2.0.0", model=models.logistic_classifier(tmp_path / "v2.onnx"))
    assert run("edge", "sync", "--from", target, "--name", "bc", "--dir", str(device)).code == 0
    assert predicts(device)[0] == "2.0.0"
    assert os.readlink(device / "previous") == "versions/1.0.0"
    assert run("edge", "rollback", "--dir", str(device)).code == 0
    version, labels = predicts(device)
    assert version == "1.0.0" and labels.shape == (3,)


def test_rejected_bundles_leave_current_unchanged(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    store, device = tmp_path / "store", tmp_path / "device"
    assert run("keys", "generate", "--dir", str(tmp_path), "--name", "k").code == 0
    assert run("keys", "generate", "--dir", str(tmp_path), "--name", "other").code == 0
    release(tmp_path, f"file://{store}", "1.0.0", key=tmp_path / "k.key")
    ok = run("edge", "sync", "--from", f"file://{store}", "--name", "bc", "--dir", str(device),
             "--public-key", str(tmp_path / "k.pub"))
    assert ok.code == 0, ok.stderr
    release(tmp_path, f"file://{store}", "2.0.0", key=tmp_path / "k.key")
    wrong_key = run("edge", "sync", "--from", f"file://{store}", "--name", "bc", "--dir", str(device),
                    "--public-key", str(tmp_path / "other.pub"))
    assert wrong_key.code == 3 and "signature does not match" in wrong_key.stderr
    stored = store / "bc" / "2.0.0" / "bc-2.0.0.mlbundle"
    stored.write_bytes(stored.read_bytes()[:-40])  # corrupted in the store
    corrupt = run("edge", "sync", "--from", f"file://{store}", "--name", "bc", "--dir", str(device))
    assert corrupt.code == 3 and "does not match its sha256" in corrupt.stderr
    assert predicts(device)[0] == "1.0.0"
    assert sorted(p.name for p in (device / "versions").iterdir()) == ["1.0.0"]  # no half version left


def test_run_serves_the_current_bundle(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    release(tmp_path, f"file://{tmp_path / 'store'}", "1.0.0")
    device = tmp_path / "device"
    assert run("edge", "sync", "--from", f"file://{tmp_path / 'store'}", "--name", "bc", "--dir", str(device)).code == 0
    import subprocess
    import sys

    from tests.harness.ports import free_port, wait_until
    from tests.harness.services import http_request

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "mlship", "edge", "run", "--dir", str(device), "--port", str(port),
                             "--log-dir", str(tmp_path / "logs")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: http_request("GET", url + "/v2/health/ready", timeout=2).status == 200, 30, "edge run",
                   process=proc)
        meta = json.loads(http_request("GET", url + "/v2/models/bc").body)
        assert meta["versions"] == ["1.0.0"] and meta["parameters"]["variant"] == "edge"
        X, _, _ = models.sample_matrix()
        body = {"inputs": [{"name": "X", "shape": [1, 30], "datatype": "FP32", "data": X[0].tolist()}]}
        response = http_request("POST", url + "/v2/models/bc/infer", data=json.dumps(body).encode())
        assert response.status == 200
    finally:
        proc.terminate()
        assert proc.wait(30) == 0
    assert len([line for f in (tmp_path / "logs").glob("*.jsonl") for line in f.read_text().splitlines()]) == 1


def test_upload_logs_ships_finished_files_once(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    store = tmp_path / "store"
    release(tmp_path, f"file://{store}", "1.0.0")
    logs = tmp_path / "logs"
    logs.mkdir()
    names = ["predictions-bc-edge-20261101T000000Z-7-0001.jsonl", "predictions-bc-edge-20261101T010000Z-7-0002.jsonl",
             "predictions-bc-edge-20261101T020000Z-7-0003.jsonl"]
    for n in names:
        (logs / n).write_text('{"request_id": "x"}\n')
    args = ["--json", "edge", "sync", "--from", f"file://{store}", "--name", "bc", "--dir", str(tmp_path / "d"),
            "--upload-logs", str(logs), "--device", "cam-7"]
    first = run(*args)
    assert first.code == 0, first.stderr
    assert first.json()["uploaded_logs"] == names[:2]  # the newest may still be written to
    assert sorted(p.name for p in (store / "bc" / "logs" / "cam-7").iterdir()) == names[:2]
    assert run(*args).json()["uploaded_logs"] == []


def test_sigkill_during_sync_leaves_a_working_current(tmp_path, monkeypatch):
    import signal
    import subprocess
    import sys
    import time

    monkeypatch.chdir(tmp_path)
    store, device = tmp_path / "store", tmp_path / "device"
    release(tmp_path, f"file://{store}", "1.0.0")
    assert run("edge", "sync", "--from", f"file://{store}", "--name", "bc", "--dir", str(device)).code == 0
    release(tmp_path, f"file://{store}", "2.0.0", model=models.logistic_classifier(tmp_path / "v2.onnx"))
    cmd = [sys.executable, "-m", "mlship", "edge", "sync", "--from", f"file://{store}", "--name", "bc",
           "--dir", str(device)]
    seen = set()
    for delay in (0.05, 0.2, 0.35, 0.5, 0.65, 0.8, 1.0, 1.5):
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        version, labels = predicts(device)  # whatever moment the kill hit, current loads and predicts
        assert labels.shape == (3,)
        seen.add(version)
        if version == "2.0.0":
            for path in (device / "versions").iterdir():
                assert not path.name.startswith(".") or not (path / "manifest.json").exists()
            break
    assert run("edge", "sync", "--from", f"file://{store}", "--name", "bc", "--dir", str(device)).code == 0
    assert predicts(device)[0] == "2.0.0"


@pytest.mark.parametrize("entry", ["../escape.txt", "/abs.txt", "link"])
def test_crafted_bundles_are_rejected_by_sync(tmp_path, monkeypatch, entry):
    import io
    import tarfile

    monkeypatch.chdir(tmp_path)
    store, device = tmp_path / "store", tmp_path / "device"
    release(tmp_path, f"file://{store}", "1.0.0")
    assert run("edge", "sync", "--from", f"file://{store}", "--name", "bc", "--dir", str(device)).code == 0
    good = tmp_path / "dist" / "bc-1.0.0.mlbundle"
    crafted = tmp_path / "bc-2.0.0.mlbundle"
    with tarfile.open(good) as src, tarfile.open(crafted, "w:gz") as out:
        for member in src.getmembers():
            out.addfile(member, src.extractfile(member))
        info = tarfile.TarInfo(entry)
        if entry == "link":
            info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
            out.addfile(info)
        else:
            info.size = 4
            out.addfile(info, io.BytesIO(b"evil"))
    assert run("push", str(crafted), "--name", "bc", "--artifact-version", "2.0.0", "--to", f"file://{store}").code == 0
    assert run("promote", "bc", "2.0.0", "--channel", "stable", "--to", f"file://{store}").code == 0
    result = run("edge", "sync", "--from", f"file://{store}", "--name", "bc", "--dir", str(device))
    assert result.code == 3 and ("unsafe path" in result.stderr or "plain files" in result.stderr)
    assert predicts(device)[0] == "1.0.0" and not (tmp_path / "escape.txt").exists()


def test_edge_run_takes_the_projects_named_columns(tmp_path, monkeypatch):
    """A converter's export without column names, released from a project with `features:`:
    the device's /predict takes objects with those names (the bundle's manifest carries them)."""
    import subprocess
    import sys

    from tests.harness.ports import free_port, wait_until
    from tests.harness.services import http_request
    from tests.models_corpus import NUMERIC, sklearn_regressor

    monkeypatch.chdir(tmp_path)
    made = sklearn_regressor(tmp_path)
    (tmp_path / "mlship.yaml").write_text(f"name: reg\nmodel: model.onnx\nfeatures: {json.dumps(NUMERIC)}\n")
    store = f"file://{tmp_path / 'store'}"
    assert run("build", "--edge", "--model-version", "1.0.0", "--output-dir", "dist").code == 0
    assert run("push", "dist/reg-1.0.0.mlbundle", "--name", "reg", "--artifact-version", "1.0.0", "--to", store).code == 0
    assert run("promote", "reg", "1.0.0", "--channel", "stable", "--to", store).code == 0
    device = tmp_path / "device"
    assert run("edge", "sync", "--from", store, "--name", "reg", "--dir", str(device)).code == 0
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "mlship", "edge", "run", "--dir", str(device), "--port", str(port),
                             "--log-dir", str(tmp_path / "logs")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    row = dict(zip(NUMERIC, map(float, made.sample.read_text().splitlines()[1].split(",")[:4])))
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: http_request("GET", url + "/v2/health/ready", timeout=2).status == 200, 30, "edge run",
                   process=proc)
        response = http_request("POST", url + "/predict", data=json.dumps({"instances": [row]}).encode(),
                                headers={"Content-Type": "application/json"})
        assert response.status == 200, response.body
    finally:
        proc.terminate()
        assert proc.wait(30) == 0
    logged = [json.loads(line) for f in (tmp_path / "logs").glob("*.jsonl") for line in f.read_text().splitlines()]
    assert logged[0]["inputs"] == pytest.approx(row)
