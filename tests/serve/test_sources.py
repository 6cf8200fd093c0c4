"""What serve can be pointed at: a project directory, an edge bundle."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
import tarfile

import pytest

from tests.serve.server_process import start_server
from tests.support import MODEL


def make_bundle(path, *, tamper=False, evil_name=None):
    model = MODEL.read_bytes()
    manifest = {"schema": "mlship.bundle/v1", "name": "bc-edge", "version": "3.1.0", "model": "model.onnx",
                "files": [{"path": "model.onnx", "sha256": hashlib.sha256(model).hexdigest(), "size": len(model)}]}
    with tarfile.open(path, "w:gz") as tar:
        for name, data in (("manifest.json", json.dumps(manifest).encode()),
                           (evil_name or "model.onnx", model + (b"x" if tamper else b""))):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_serves_a_project_directory_with_its_name_and_version(tmp_path):
    project = tmp_path / "proj"
    project.mkdir()
    (project / "mlship.yaml").write_text(f"name: readmission\nversion: 1.4.0\nmodel: {MODEL}\n")
    server = start_server(project, tmp_path)
    try:
        meta = json.loads(server.get("/v2/models/readmission").body)
        assert meta["versions"] == ["1.4.0"]
    finally:
        assert server.terminate() == 0


def test_serves_a_bundle_with_the_manifest_name_and_version(tmp_path):
    server = start_server(make_bundle(tmp_path / "bc-edge-3.1.0.mlbundle"), tmp_path)
    try:
        assert json.loads(server.get("/v2/models/bc-edge").body)["versions"] == ["3.1.0"]
    finally:
        assert server.terminate() == 0


@pytest.mark.parametrize("kwargs,message", [
    ({"tamper": True}, "does not match its sha256"),
    ({"evil_name": "../model.onnx"}, "unsafe path in bundle"),
])
def test_a_bad_bundle_is_refused_before_serving(tmp_path, kwargs, message):
    bundle = make_bundle(tmp_path / "b.mlbundle", **kwargs)
    proc = subprocess.run([sys.executable, "-m", "mlship", "serve", str(bundle), "--port", "1"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 3 and message in proc.stderr
    assert not (tmp_path / "model.onnx").exists()
