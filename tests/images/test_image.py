"""`mlship build --image` and `mlship push --image` against a real engine and registry."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from tests import models
from tests.harness.ports import free_port, wait_until
from tests.harness.services import http_request
from tests.support import MODEL, run


@pytest.fixture
def project(tmp_path, python_base_image):
    (tmp_path / "model.onnx").write_bytes(MODEL.read_bytes())
    (tmp_path / "mlship.yaml").write_text(
        f"name: breast-cancer\nversion: 1.0.0\nmodel: model.onnx\nbuild:\n  image: {{base: '{python_base_image}'}}\n")
    return tmp_path


def build(project, *args):
    result = run("-c", str(project / "mlship.yaml"), "--json", "build", "--image", *args)
    assert result.code == 0, result.stderr
    return result.json()


def serve_container(client, image, X):
    port = free_port()
    container = client.containers.run(image, command=["--host", "127.0.0.1", "--port", str(port)],
                                      network_mode="host", detach=True)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: http_request("GET", url + "/v2/health/ready", timeout=2).status == 200, 60, "container")
        body = {"inputs": [{"name": "X", "shape": list(X.shape), "datatype": "FP32", "data": X.ravel().tolist()}]}
        response = http_request("POST", url + "/v2/models/breast-cancer/infer", data=json.dumps(body).encode(),
                                headers={"Content-Type": "application/json"})
        assert response.status == 200, response.body
        return {o["name"]: np.array(o["data"]).reshape(o["shape"]) for o in json.loads(response.body)["outputs"]}
    finally:
        container.remove(force=True)


def test_build_run_push_pull_and_run_again(engine_env, project, oci_registry):
    client = engine_env.client()
    try:
        result = build(project)
        image = client.images.get(result["image_id"])
        config = image.attrs["Config"]
        assert config["User"] == "10001:10001"
        assert config["Entrypoint"] == ["/opt/mlship/bin/mlship", "serve", "/opt/model"]
        assert config["Healthcheck"]["Test"][0] == "CMD"
        labels = config["Labels"]
        assert labels["io.mlship.model.sha256"] == result["model_sha256"]
        assert labels["org.opencontainers.image.version"] == "1.0.0"
        assert labels["org.opencontainers.image.title"] == "breast-cancer"
        assert not any(str(project) in (e or "") for e in config["Env"])  # no host paths baked in

        X, _, _ = models.sample_matrix()
        expected = models.serving_session(MODEL).run(None, {"X": X})  # as the image serves it: one thread
        got = serve_container(client, result["image_id"], X)
        assert np.array_equal(got["label"], expected[0])
        assert np.array_equal(got["probabilities"].astype(np.float32), expected[1])

        pushed = run("-c", str(project / "mlship.yaml"), "--json", "push", "breast-cancer", "--image", "--to",
                     f"registry://{oci_registry.address}/ml/breast-cancer")
        assert pushed.code == 0, pushed.stderr
        digest = pushed.json()["digest"]
        record = json.loads(run("-c", str(project / "mlship.yaml"), "--json", "versions", "show",
                                "breast-cancer:1.0.0").stdout)
        assert record["pushed"][0]["digest"] == digest

        for tag in client.images.get(result["image_id"]).tags:
            client.images.remove(tag, force=True)
        with pytest.raises(Exception):
            client.images.get(result["image_id"])
        pulled = client.images.pull(f"{oci_registry.address}/ml/breast-cancer@{digest}")
        got_again = serve_container(client, pulled.id, X[:5])
        assert got_again["label"].tolist() == expected[0][:5].tolist()
    finally:
        client.close()


def test_model_only_change_rebuilds_only_the_top_layers(engine_env, project, tmp_path):
    first = build(project)
    models.logistic_classifier(project / "model.onnx")
    started = time.perf_counter()
    second = build(project, "--model-version", "1.1.0")
    rebuild = time.perf_counter() - started
    assert first["model_sha256"] != second["model_sha256"]
    assert first["layers"][:2] == second["layers"][:2]  # base, dependencies
    assert first["layers"][2] != second["layers"][2]  # the model
    assert len(second["layers"]) == 4
    assert rebuild < 60, f"a model-only rebuild took {rebuild:.1f} s"
    listed = run("-c", str(project / "mlship.yaml"), "--json", "versions", "list")
    assert [v["version"] for v in listed.json()["versions"]] == ["1.0.0", "1.1.0"]


def test_ecr_push_uses_ecr_credentials(engine_env, project, s3_server, oci_registry_factory, monkeypatch):
    # moto's ECR token is AWS:<account>-auth-token; a registry that only accepts it stands in for ECR.
    registry = oci_registry_factory(users={"AWS": "123456789012-auth-token"})
    build(project)
    for key, value in {"AWS_ENDPOINT_URL_ECR": s3_server.endpoint_url, "AWS_ACCESS_KEY_ID": "testing",
                       "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(key, value)
    without = run("-c", str(project / "mlship.yaml"), "push", "breast-cancer", "--image", "--to",
                  f"registry://{registry.address}/ml/bc")
    assert without.code == 7 and "refused the push" in without.stderr
    record = json.loads(run("-c", str(project / "mlship.yaml"), "--json", "versions", "show", "breast-cancer").stdout)
    assert record["pushed"] == []  # nothing recorded for a refused push
    result = run("-c", str(project / "mlship.yaml"), "--json", "push", "breast-cancer", "--image", "--to",
                 f"ecr://{registry.address}/ml/bc")
    assert result.code == 0, result.stderr
    assert result.json()["digest"].startswith("sha256:")


def test_faults_have_their_exit_codes(engine_env, project, tmp_path, monkeypatch):
    bad = tmp_path / "broken.onnx"
    bad.write_bytes(MODEL.read_bytes()[:5000])
    invalid = run("-c", str(project / "mlship.yaml"), "build", "--image", str(bad))
    assert invalid.code == 3 and "truncated" in invalid.stderr
    # A base on a loopback registry that is not there: the engine's pull stays on this machine.
    absent = f"127.0.0.1:{free_port()}/mlship-test/none:0"
    missing_base = run("-c", str(project / "mlship.yaml"), "build", "--image", "--base", absent)
    assert missing_base.code == 7 and f"base image {absent}" in missing_base.stderr
    build(project)
    unreachable = run("-c", str(project / "mlship.yaml"), "push", "breast-cancer", "--image", "--to",
                      f"registry://127.0.0.1:{free_port()}/ml/bc")
    assert unreachable.code == 7 and "failed after" in unreachable.stderr
    record = json.loads(run("-c", str(project / "mlship.yaml"), "--json", "versions", "show", "breast-cancer").stdout)
    assert record["pushed"] == []
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
    no_engine = run("-c", str(project / "mlship.yaml"), "build", "--image")
    assert no_engine.code == 7 and "no Docker engine answers" in no_engine.stderr and "DOCKER_HOST" in no_engine.stderr


def test_own_dockerfile_template(engine_env, project):
    from mlship.templates import template_text

    template = project / "Dockerfile.tmpl"
    template.write_text(template_text("Dockerfile").replace('EXPOSE 8080', 'EXPOSE 8080\nLABEL team="risk"'))
    result = build(project, "--template", str(template))
    assert result["labels"]["io.mlship.model.name"] == "breast-cancer"
    client = engine_env.client()
    try:
        assert client.images.get(result["image_id"]).attrs["Config"]["Labels"]["team"] == "risk"
    finally:
        client.close()
