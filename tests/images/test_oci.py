"""`mlship build --image --builder oci`: daemonless builds against a real registry, engine and skopeo."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import time

import numpy as np
import pytest

from tests import models
from tests.harness.ports import free_port
from tests.harness.proxy import start_counting_proxy
from tests.harness.services import http_request
from tests.images.test_image import serve_container
from tests.support import MODEL, run


def _skopeo(*args: str) -> dict:
    if shutil.which("skopeo") is None:
        pytest.fail("skopeo is not installed (apt-get install skopeo)", pytrace=False)
    proc = subprocess.run(["skopeo", "--insecure-policy", *args], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout) if args[0] == "inspect" else {}


@pytest.fixture(scope="session")
def base_archive(docker_engine, python_base_image, tmp_path_factory):
    """`docker save` of the test base image."""
    path = tmp_path_factory.mktemp("oci-base") / "base.tar"
    subprocess.run(["docker", "save", "-o", str(path), python_base_image], env=docker_engine.env(), check=True)
    return path


@pytest.fixture(scope="session")
def base_layout(base_archive):
    """The base as an OCI image layout (written by skopeo, not by mlship)."""
    layout = base_archive.with_name("layout")
    _skopeo("copy", f"docker-archive:{base_archive}", f"oci:{layout}:base")
    return layout


@pytest.fixture
def registry_base(base_layout, oci_registry):
    """The base pushed to the test registry by skopeo; its registry:// reference."""
    _skopeo("copy", "--dest-tls-verify=false", f"oci:{base_layout}:base",
            f"docker://{oci_registry.address}/base/python:3.11")
    return f"registry://{oci_registry.address}/base/python:3.11"


@pytest.fixture
def project(tmp_path):
    (tmp_path / "model.onnx").write_bytes(MODEL.read_bytes())
    (tmp_path / "mlship.yaml").write_text("name: breast-cancer\nversion: 1.0.0\nmodel: model.onnx\n"
                                          "build:\n  image: {builder: oci}\n")
    return tmp_path


def oci(project, *args):
    return run("-c", str(project / "mlship.yaml"), "--json", "build", "--image", *args)


def built(project, *args):
    result = oci(project, *args)
    assert result.code == 0, result.stderr
    return result.json()


def manifest_status(registry, repository, tag):
    """GET the manifest as an OCI-aware client would (without the Accept header the registry says 404)."""
    accept = {"Accept": "application/vnd.oci.image.manifest.v1+json"}
    return http_request("GET", f"{registry.url}/v2/{repository}/manifests/{tag}", headers=accept).status


def versions(project):
    return run("-c", str(project / "mlship.yaml"), "--json", "versions", "list").json()["versions"]


def test_same_inputs_same_digest_in_other_directories_and_times(tmp_path_factory, base_archive, monkeypatch):
    digests = []
    for attempt in range(2):
        work = tmp_path_factory.mktemp(f"repro{attempt}")
        monkeypatch.setenv("MLSHIP_LAYER_CACHE", str(work / "layer-cache"))  # cold: the layer is made again
        (work / "model.onnx").write_bytes(MODEL.read_bytes())
        (work / "mlship.yaml").write_text("name: bc\nversion: 1.0.0\nmodel: model.onnx\n")
        result = built(work, "--builder", "oci", "--base", f"docker-archive:{base_archive}",
                       "--output", str(work / "out"))
        digests.append(result["digest"])
        index = json.loads((work / "out" / "index.json").read_text())
        assert index["manifests"][0]["digest"] == result["digest"]
        if attempt == 0:
            time.sleep(1.1)  # a different wall-clock second must not change anything
    assert digests[0] == digests[1]  # bytecode included: hash-based .pyc from an isolated, seeded process
    _assert_serving_bytecode(work / "out")
    inspected = _skopeo("inspect", f"oci:{work / 'out'}")
    assert inspected["Digest"] == digests[0]
    assert inspected["Labels"]["io.mlship.model.version"] == "1.0.0"
    assert inspected["Labels"]["org.opencontainers.image.created"] == "1970-01-01T00:00:00Z"
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    dated = built(work, "--builder", "oci", "--base", f"docker-archive:{base_archive}", "--output", str(work / "o2"))
    assert dated["digest"] != digests[0]
    assert dated["labels"]["org.opencontainers.image.created"] == "2023-11-14T22:13:20Z"


def _assert_serving_bytecode(layout):
    """The dependencies layer has .pyc for what serving imports and none for the rest."""
    import tarfile

    names: set[str] = set()
    for blob in (layout / "blobs" / "sha256").iterdir():
        if blob.read_bytes()[:2] == b"\x1f\x8b":  # a gzipped layer
            with tarfile.open(blob) as tar:
                names |= {n for n in tar.getnames() if n.startswith("opt/mlship/")}
    site = "opt/mlship/lib/python3.11/site-packages"
    for module in ("mlship/serve/app", "mlship/serve/server", "numpy/__init__", "onnxruntime/__init__",
                   "uvicorn/protocols/http/httptools_impl"):
        folder, _, stem = module.rpartition("/")
        assert f"{site}/{folder}/__pycache__/{stem}.cpython-311.pyc" in names, module
    assert f"{site}/numpy/polynomial/polynomial.py" in names
    assert f"{site}/numpy/polynomial/__pycache__/polynomial.cpython-311.pyc" not in names  # never imported
    assert not any(n.startswith(f"{site}/onnxruntime/transformers/") for n in names)


def test_push_pull_by_digest_run_and_load(engine_env, project, registry_base, oci_registry):
    target = f"registry://{oci_registry.address}/ml/breast-cancer"
    result = built(project, "--base", registry_base, "--push", target, "--output", str(project / "image.tar"))
    pushed = result["pushed"]
    assert pushed["mounted"] == 1 and pushed["uploaded"] == 4  # the base is mounted, not uploaded again
    assert pushed["reference"] == f"{oci_registry.address}/ml/breast-cancer:1.0.0"
    [record] = versions(project)
    assert record["builder"] == "oci" and record["artifact"] == result["digest"]
    assert record["pushed"][0]["digest"] == result["digest"]

    inspected = _skopeo("inspect", "--tls-verify=false", f"docker://{oci_registry.address}/ml/breast-cancer:1.0.0")
    assert inspected["Digest"] == result["digest"]
    assert inspected["Labels"]["io.mlship.model.sha256"] == result["model_sha256"]

    X, _, _ = models.sample_matrix()
    expected = models.serving_session(MODEL).run(None, {"X": X})  # as the image serves it: one thread
    client = engine_env.client()
    try:
        image = client.images.pull(f"{oci_registry.address}/ml/breast-cancer@{result['digest']}")
        config = image.attrs["Config"]
        assert config["User"] == "10001:10001"
        assert config["Entrypoint"] == ["/opt/mlship/bin/mlship", "serve", "/opt/model"]
        assert config["Healthcheck"]["Test"][0] == "CMD" and "8080/tcp" in config["ExposedPorts"]
        got = serve_container(client, image.id, X)
        assert np.array_equal(got["label"], expected[0])
        assert np.array_equal(got["probabilities"].astype(np.float32), expected[1])
        client.images.remove(image.id, force=True)

        with open(project / "image.tar", "rb") as fh:
            [loaded] = client.images.load(fh.read())
        assert loaded.id == image.id  # the same config, so the same image id
        again = serve_container(client, "mlship/breast-cancer:1.0.0", X[:5])
        assert again["label"].tolist() == expected[0][:5].tolist()
    finally:
        client.close()


def test_model_only_change_uploads_only_the_changed_layers(project, registry_base, oci_registry):
    proxy = start_counting_proxy(oci_registry.address)
    try:
        target = f"registry://{proxy.address}/ml/bc"
        first = built(project, "--base", registry_base.replace(oci_registry.address, proxy.address), "--push", target)
        assert len(proxy.blob_uploads()) == 4  # deps, model, config layers and the image config
        proxy.reset()
        models.logistic_classifier(project / "model.onnx")
        second = built(project, "--base", registry_base.replace(oci_registry.address, proxy.address),
                       "--push", target, "--model-version", "1.1.0")
    finally:
        proxy.stop()
    assert first["layers"][:2] == second["layers"][:2] and first["layers"][2:] != second["layers"][2:]
    pushed = second["pushed"]
    assert pushed["present"] == 2 and pushed["uploaded"] == 3  # base and deps were already there
    assert len(proxy.blob_uploads()) == 3
    assert proxy.uploaded_bytes() == pushed["uploaded_bytes"] < 200_000
    heads = [r for r in proxy.requests if r.method == "HEAD"]
    assert len(heads) == 5 and proxy.requests[-1].method == "PUT" and "/manifests/1.1.0" in proxy.requests[-1].path


def test_unknown_base_and_refused_credentials_exit_7(project, registry_base, oci_registry, oci_registry_factory,
                                                    base_archive, tmp_path, monkeypatch):
    unknown = oci(project, "--base", f"registry://{oci_registry.address}/base/none:0", "--push",
                  f"registry://{oci_registry.address}/ml/bc")
    assert unknown.code == 7 and "base/none:0 not found" in unknown.stderr
    down = oci(project, "--base", f"127.0.0.1:{free_port()}/base/python:3.11", "--output", str(tmp_path / "x"))
    assert down.code == 7 and "unreachable" in down.stderr
    assert not (tmp_path / "x").exists()

    secured = oci_registry_factory(users={"ci": "right"})
    config = tmp_path / "docker-config"
    config.mkdir()
    monkeypatch.setenv("DOCKER_CONFIG", str(config))
    for password, code in (("wrong", 7), ("right", 0)):
        auth = base64.b64encode(f"ci:{password}".encode()).decode()
        (config / "config.json").write_text(json.dumps({"auths": {secured.address: {"auth": auth}}}))
        result = oci(project, "--base", f"docker-archive:{base_archive}", "--push",
                     f"registry://{secured.address}/ml/bc")
        assert result.code == code, result.stderr
        assert ("refused access (401" in result.stderr) == (password == "wrong")
    records = versions(project)
    assert len(records) == 1 and records[0]["pushed"][0]["reference"] == f"{secured.address}/ml/bc:1.0.0"


def test_registry_down_mid_push_leaves_no_manifest_and_no_record(project, base_archive, oci_registry):
    proxy = start_counting_proxy(oci_registry.address)
    proxy.cut_after_bytes = 20 << 20  # inside the base layer
    result = oci(project, "--base", f"docker-archive:{base_archive}", "--push", f"registry://{proxy.address}/ml/bc")
    proxy.stop()
    assert result.code == 7 and "failed after 4 attempts" in result.stderr
    assert manifest_status(oci_registry, "ml/bc", "1.0.0") == 404
    assert not any(r.method == "PUT" and "/manifests/" in r.path for r in proxy.requests)
    assert versions(project) == []


def test_blob_digest_mismatch_is_refused(project, base_layout, oci_registry, tmp_path):
    broken = tmp_path / "broken-layout"
    shutil.copytree(base_layout, broken)
    index = json.loads((broken / "index.json").read_text())
    manifest = json.loads((broken / "blobs" / index["manifests"][0]["digest"].replace(":", "/")).read_text())
    layer = broken / "blobs" / manifest["layers"][0]["digest"].replace(":", "/")
    data = bytearray(layer.read_bytes())
    data[-1] ^= 0xFF  # same size, other bytes
    layer.unlink()
    layer.write_bytes(bytes(data))
    result = oci(project, "--base", f"oci:{broken}:base", "--push", f"registry://{oci_registry.address}/ml/bc")
    assert result.code == 7 and "rejected blob" in result.stderr
    assert manifest_status(oci_registry, "ml/bc", "1.0.0") == 404
    assert versions(project) == []


def test_bearer_token_auth(project, base_archive, oci_registry, tmp_path, monkeypatch):
    proxy = start_counting_proxy(oci_registry.address)
    proxy.bearer = ("ci", "right")
    config = tmp_path / "docker-config"
    config.mkdir()
    monkeypatch.setenv("DOCKER_CONFIG", str(config))
    try:
        outcomes = []
        for password in ("wrong", "right"):
            auth = base64.b64encode(f"ci:{password}".encode()).decode()
            (config / "config.json").write_text(json.dumps({"auths": {proxy.address: {"auth": auth}}}))
            result = oci(project, "--base", f"docker-archive:{base_archive}", "--push",
                         f"registry://{proxy.address}/ml/bc")
            outcomes.append((result.code, "refused a token" in result.stderr))
    finally:
        proxy.stop()
    assert outcomes == [(7, True), (0, False)]
    tokens = [r for r in proxy.requests if r.path.startswith("/token")]
    assert len(tokens) == 2  # one refused, then one token for the whole push
    assert manifest_status(oci_registry, "ml/bc", "1.0.0") == 200
