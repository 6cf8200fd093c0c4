"""`mlship doctor`: reachable and unreachable configured services, credential sources, --json."""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid

import pytest

from mlship.doctor import Probe, run_probes
from tests.harness.ports import free_port
from tests.support import run

SECRET = "doctor-secret-Zq81xP"  # moto takes any key; it must never be printed
DOCKER_AUTH = base64.b64encode(b"ci:registry-password-Hk3").decode()


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A home of the test's own, with a Docker config holding a credential, and AWS keys in the environment."""
    home = tmp_path / "home"
    (home / ".docker").mkdir(parents=True)
    (home / ".docker" / "config.json").write_text(json.dumps({"auths": {"127.0.0.1:5000": {"auth": DOCKER_AUTH}}}))
    monkeypatch.setenv("HOME", str(home))
    for name in ("DOCKER_CONFIG", "AWS_PROFILE", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN",
                 "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIADOCTORTEST")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    return home


def _project(tmp_path, targets: str, extra: str = "") -> str:
    path = tmp_path / "mlship.yaml"
    path.write_text(f"name: m\nversion: 1.0.0\ntargets:\n{targets}{extra}")
    return str(path)


def _checks(result) -> dict[tuple[str, str], dict]:
    return {(c["group"], c["name"]): c for c in result.json()["checks"]}


def _no_secret(*results) -> None:
    for result in results:
        for text in (result.stdout, result.stderr):
            assert SECRET not in text and DOCKER_AUTH not in text and "registry-password" not in text


def test_file_target_is_reachable_and_json_has_the_documented_shape(tmp_path, home):
    config = _project(tmp_path, f"  local: {{type: file, url: 'file://{tmp_path / 'store'}'}}\n")
    result = run("-c", config, "doctor", "--json")
    assert result.code == 0, result.stderr
    document = result.json()
    assert set(document) == {"checks", "unreachable"} and document["unreachable"] == []
    for check in document["checks"]:
        assert set(check) == {"group", "name", "status", "detail"} and check["status"] in ("ok", "warn", "fail")
    target = next(c for c in document["checks"] if c["group"] == "targets")
    assert target["name"].startswith("local (file") and target["status"] == "ok"
    checks = _checks(result)
    assert "CPUExecutionProvider" in checks["installed", "onnxruntime"]["detail"]
    assert checks["installed", "boto3"]["status"] == "ok"
    assert checks["installed", "boto3"]["detail"].startswith("boto3 1.")
    docker_config = checks["credentials", "docker config"]
    assert docker_config["detail"] == "~/.docker/config.json (auths for 127.0.0.1:5000)"
    _no_secret(result)


def test_s3_on_moto_is_reachable_and_credentials_show_their_source_only(tmp_path, home, s3_server):
    bucket = f"doctor-{uuid.uuid4().hex[:8]}"
    server_client = s3_server.client("s3")
    server_client.create_bucket(Bucket=bucket)
    config = _project(tmp_path, f"  cloud: {{type: s3, url: 's3://{bucket}/team', "
                                f"endpoint_url: '{s3_server.endpoint_url}'}}\n")
    people, machines = run("-c", config, "doctor"), run("-c", config, "doctor", "--json")
    assert people.code == 0 and machines.code == 0, people.stderr
    checks = _checks(machines)
    assert checks["targets", f"cloud (s3 s3://{bucket}/team)"] == {
        "group": "targets", "name": f"cloud (s3 s3://{bucket}/team)", "status": "ok", "detail": "reachable"}
    assert checks["credentials", "boto3"]["detail"] == "environment (AWS_ACCESS_KEY_ID)"
    assert "environment (AWS_ACCESS_KEY_ID)" in people.stdout and "cloud (s3" in people.stdout
    _no_secret(people, machines)


def test_s3_on_a_closed_port_exits_7_naming_it(tmp_path, home):
    port = free_port()  # nothing listens there
    config = _project(tmp_path, f"  dead: {{type: s3, url: 's3://gone/x', endpoint_url: 'http://127.0.0.1:{port}'}}\n"
                                f"  local: {{type: file, url: 'file://{tmp_path / 'store'}'}}\n")
    started = time.monotonic()
    people, machines = run("-c", config, "doctor"), run("-c", config, "doctor", "--json")
    assert time.monotonic() - started < 20  # each probe gives up after 3 s
    assert people.code == 7 and machines.code == 7
    assert "unreachable: dead (s3 s3://gone/x)" in people.stderr
    document = machines.json()
    assert document["unreachable"] == ["dead (s3 s3://gone/x)"]
    assert _checks(machines)["targets", "dead (s3 s3://gone/x)"]["status"] == "fail"
    assert _checks(machines)["targets", f"local (file file://{tmp_path / 'store'})"]["status"] == "ok"
    _no_secret(people, machines)


def test_nginx_router_config_in_a_missing_directory_exits_7(tmp_path, home):
    router = (f"rollout:\n  router: {{type: nginx, config: '{tmp_path}/missing/m.conf', "
              "upstreams: {blue: '127.0.0.1:1', green: '127.0.0.1:2'}}\n")
    path = tmp_path / "mlship.yaml"
    path.write_text("name: m\nversion: 1.0.0\n" + router)
    result = run("-c", str(path), "doctor", "--json")
    assert result.code == 7
    check = _checks(result)["routers", f"nginx config {tmp_path}/missing/m.conf"]
    assert check["status"] == "fail" and check["detail"] == f"RuntimeError: no directory {tmp_path}/missing"


def test_a_probe_that_does_not_answer_fails_in_time_when_configured_and_warns_when_not():
    release = threading.Event()
    hang = lambda: "answered" if release.wait(30) else "late"  # noqa: E731
    try:
        checks = run_probes([Probe("targets", "stuck", True, hang), Probe("versions", "idle", False, hang),
                             Probe("targets", "quick", True, lambda: "reachable")], timeout=0.2)
    finally:
        release.set()
    assert [(c.name, c.status, c.detail) for c in checks] == [
        ("stuck", "fail", "no answer within 0.2 s"), ("idle", "warn", "no answer within 0.2 s"),
        ("quick", "ok", "reachable")]


def test_docker_engine_registry_and_prometheus_that_answer(tmp_path, home, docker_engine, oci_registry,
                                                          prometheus_factory):
    prometheus = prometheus_factory([])
    path = tmp_path / "mlship.yaml"
    path.write_text(f"name: m\nversion: 1.0.0\nbuild:\n  image: {{repository: '{oci_registry.address}/ml/m'}}\n"
                    f"deploy:\n  runtime: docker\n  docker: {{host: '{docker_engine.host}'}}\n"
                    f"rollout:\n  analysis:\n    prometheus: {{url: '{prometheus.url}'}}\n")
    result = run("-c", str(path), "doctor", "--json")
    assert result.code == 0, result.stdout
    checks = _checks(result)
    engine = checks["runtimes", f"docker {docker_engine.host}"]
    assert engine["status"] == "ok" and engine["detail"].startswith("Docker ") and "(API 1." in engine["detail"]
    assert checks["registries", oci_registry.address]["detail"].startswith("reachable (/v2/ answered")
    assert checks["prometheus", prometheus.url]["detail"].startswith("reachable, Prometheus ")


def test_a_configured_docker_engine_that_is_gone_exits_7(tmp_path, home):
    path = tmp_path / "mlship.yaml"
    host = f"unix://{tmp_path}/no-engine.sock"
    path.write_text(f"name: m\nversion: 1.0.0\ndeploy:\n  runtime: docker\n  docker: {{host: '{host}'}}\n")
    result = run("-c", str(path), "doctor")
    assert result.code == 7 and f"unreachable: docker {host}" in result.stderr
    assert f"fail  runtimes     docker {host}" in result.stdout


def test_nginx_router_shows_nginx_version_and_its_config_directory(tmp_path, home):
    import os
    import shutil

    if shutil.which("nginx") is None:
        if os.environ.get("MLSHIP_REQUIRE_SERVICES") == "1":
            pytest.fail("nginx is not installed")
        pytest.skip("nginx is not installed")
    path = tmp_path / "mlship.yaml"
    path.write_text(f"name: m\nversion: 1.0.0\nrollout:\n  router: {{type: nginx, config: '{tmp_path}/m.conf', "
                    "upstreams: {blue: '127.0.0.1:1', green: '127.0.0.1:2'}}\n")
    result = run("-c", str(path), "doctor", "--json")
    assert result.code == 0, result.stdout
    checks = _checks(result)
    assert checks["routers", "nginx"]["detail"].startswith("nginx/")
    assert checks["routers", f"nginx config {tmp_path}/m.conf"]["detail"] == f"{tmp_path} writable (file not written yet)"
    assert ("versions", "nginx") not in checks  # the router's nginx is the one reported


def test_sagemaker_router_with_a_missing_endpoint_exits_7(tmp_path, home, s3_server):
    path = tmp_path / "mlship.yaml"
    path.write_text("name: m\nversion: 1.0.0\nrollout:\n  router: {type: sagemaker, endpoint: nowhere, "
                    f"region: us-east-1, endpoint_url: '{s3_server.endpoint_url}'}}\n")
    result = run("-c", str(path), "doctor", "--json")
    assert result.code == 7
    check = _checks(result)["routers", "sagemaker nowhere"]
    assert check["status"] == "fail" and "nowhere" in check["detail"]
    _no_secret(result)
