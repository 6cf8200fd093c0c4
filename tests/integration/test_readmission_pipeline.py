"""examples/readmission: the Makefile's whole life cycle against the real services
(Docker engine, OCI registry, moto's S3, nginx), ending in `retrain` because of the injected drift."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import urllib.request

import pytest

from tests.harness.ports import free_port
from tests.support import ROOT

EXAMPLE = ROOT / "examples" / "readmission"


@pytest.fixture
def project(tmp_path):
    work = tmp_path / "readmission"
    shutil.copytree(EXAMPLE, work, ignore=shutil.ignore_patterns("data", "dist", "logs", "reports", "run", "share",
                                                                 ".mlship"))
    return work


def test_makefile_pipeline_runs_end_to_end_and_retrains_on_drift(project, engine_env, python_base_image, oci_registry,
                                                               s3_server, nginx_factory, monkeypatch):
    if shutil.which("make") is None:
        pytest.fail("make is not installed (apt-get install make)") if os.environ.get("MLSHIP_REQUIRE_SERVICES") == "1" \
            else pytest.skip("make is not installed")
    s3_server.client("s3").create_bucket(Bucket="models")
    conf_dir = project / "nginx"
    conf_dir.mkdir()
    nginx = nginx_factory(f"    include {conf_dir}/*.conf;\n")  # the first `rollout start` writes readmission.conf
    listen = f"127.0.0.1:{free_port()}"
    mlship = f"{sys.executable} -m mlship"
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_DEFAULT_REGION": "us-east-1", "MLSHIP_USER": "ci"}
    args = [f"PY={sys.executable}", f"MLSHIP={mlship}", f"REGISTRY={oci_registry.address}",
            f"BASE={python_base_image}", "S3_URL=s3://models/readmission", f"S3_ENDPOINT={s3_server.endpoint_url}",
            f"NGINX_CONF={conf_dir / 'readmission.conf'}", f"NGINX_MAIN={nginx.conf_path}",
            f"NGINX_PREFIX={nginx.prefix}", f"LISTEN={listen}", f"BLUE_PORT={free_port()}",
            f"GREEN_PORT={free_port()}", "TRAFFIC_SECONDS=3"]
    try:
        proc = subprocess.run(["make", "-C", str(project), "all", *args], env=env, capture_output=True, text=True,
                              timeout=900)
    finally:
        subprocess.run(["make", "-C", str(project), "stop"], env=env, capture_output=True, timeout=60)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-4000:]
    # Built, pushed to the registry, to S3 and to the file share (hybrid), with channel pointers.
    with urllib.request.urlopen(f"http://{oci_registry.address}/v2/ml/readmission/tags/list") as reply:
        assert "1.1.0" in json.loads(reply.read())["tags"]
    s3 = s3_server.client("s3")
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket="models", Prefix="readmission/")["Contents"]}
    assert "readmission/readmission/1.1.0/readmission-1.1.0.mlbundle" in keys
    assert "readmission/readmission/channels/stable.json" in keys
    assert (project / "share" / "readmission" / "1.1.0" / "readmission-1.1.0.mlbundle").is_file()
    assert (project / "dist" / "history-scored.parquet").is_file()
    # The rollout went shadow -> canary -> promoted through nginx.
    state = json.loads((project / ".mlship" / "rollouts" / "readmission.json").read_text())
    assert state["phase"] == "Healthy" and state["stable"] == {"version": "1.1.0", "slot": "green"}
    verbs = [e["verb"] for e in state["history"]]
    assert verbs[:3] == ["start", "step", "promote"] and verbs.count("step") >= 4
    assert all(e["user"] == "ci" for e in state["history"])
    traffic = re.findall(r"traffic: (\d+) requests, (\d+) failed", output)
    assert len(traffic) >= 4 and all(int(failed) == 0 and int(sent) > 50 for sent, failed in traffic), traffic
    # The drift report flagged the injected days, and the non-zero exit ran `retrain`.
    assert (project / "reports" / "drift.html").is_file()
    assert "drift" in (project / "reports" / "drift.md").read_text().lower()
    assert (project / "dist" / "RETRAINED").read_text().startswith("retrained after drift")
    assert (project / "data" / "model-1.2.0.onnx").is_file()
    assert "make[1]: Entering directory" in output and "train.py --retrain" in output
