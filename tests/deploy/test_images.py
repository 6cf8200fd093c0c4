"""Real serving images on the docker runtime: built by the docker builder (on the engine) and by the
oci builder (pushed to a registry, pulled by digest), both from the local test base."""

from __future__ import annotations

import json
from contextlib import closing

from mlship.deploy.probe import served_versions
from tests.harness.ports import free_port
from tests.harness.services import http_request
from tests.images.test_oci import base_archive  # noqa: F401 - the test base as a docker archive
from tests.support import MODEL, run


def project_for(tmp_path, engine, builder: str, base: str):
    ports = {"blue": free_port()}
    ports["green"] = next(port for port in iter(free_port, None) if port != ports["blue"])
    (tmp_path / "model.onnx").write_bytes(MODEL.read_bytes())
    upstreams = ", ".join(f"{slot}: 127.0.0.1:{port}" for slot, port in ports.items())
    (tmp_path / "mlship.yaml").write_text(
        f"name: breast-cancer\nversion: 1.0.0\nmodel: model.onnx\n"
        f"build:\n  image: {{builder: {builder}, base: '{base}'}}\n"
        f"rollout:\n  router: {{type: nginx, config: nginx/bc.conf, upstreams: {{{upstreams}}}}}\n"
        f"deploy:\n  runtime: docker\n  docker: {{host: '{engine.host}', ready_timeout_s: 90}}\n")
    return tmp_path / "mlship.yaml", ports


def infer_one(address: str) -> dict:
    body = {"inputs": [{"name": "X", "shape": [1, 30], "datatype": "FP32", "data": [0.5] * 30}]}
    reply = http_request("POST", f"http://{address}/v2/models/breast-cancer/infer", data=json.dumps(body).encode(),
                         headers={"Content-Type": "application/json"})
    assert reply.status == 200, reply.body[:300]
    return json.loads(reply.body)


def deployed(config, slot: str, *args: str) -> dict:
    result = run("-c", str(config), "--json", "deploy", "breast-cancer:1.0.0", "--slot", slot, *args)
    assert result.code == 0, result.stderr
    return result.json()


def remove_containers(engine) -> None:
    with closing(engine.client()) as client:
        for c in client.containers.list(all=True, filters={"label": "io.mlship.deploy.name=breast-cancer"}):
            c.remove(force=True)


def test_an_image_built_on_the_engine_runs_in_a_slot(tmp_path, engine_env, python_base_image):
    config, ports = project_for(tmp_path, engine_env, "docker", python_base_image)
    build = run("-c", str(config), "--json", "build", "--image")  # the docker builder: DOCKER_HOST's engine
    assert build.code == 0, build.stderr
    try:
        doc = deployed(config, "blue")
        assert served_versions(f"127.0.0.1:{ports['blue']}", "breast-cancer") == ["1.0.0"]
        assert doc["placement"]["image"] == build.json()["image_id"]
        assert {o["name"] for o in infer_one(f"127.0.0.1:{ports['blue']}")["outputs"]} >= {"label"}
    finally:
        remove_containers(engine_env)


def test_an_oci_build_is_pulled_by_digest_from_the_registry(tmp_path, docker_engine, base_archive,  # noqa: F811
                                                            oci_registry):
    config, ports = project_for(tmp_path, docker_engine, "oci", f"docker-archive:{base_archive}")
    build = run("-c", str(config), "--json", "build", "--image", "--push",
                f"registry://{oci_registry.address}/ml/breast-cancer")
    assert build.code == 0, build.stderr
    digest = build.json()["digest"]
    try:
        doc = deployed(config, "green")
        assert doc["placement"]["image"] == f"{oci_registry.address}/ml/breast-cancer@{digest}"
        assert served_versions(f"127.0.0.1:{ports['green']}", "breast-cancer") == ["1.0.0"]
        infer_one(f"127.0.0.1:{ports['green']}")
    finally:
        remove_containers(docker_engine)
