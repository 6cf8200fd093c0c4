"""Each real service the harness starts answers like the real thing."""

from __future__ import annotations

import contextlib
import hashlib
import json
import uuid

import pytest

from tests.harness.services import http_request, proxy_conf

pytestmark = pytest.mark.integration

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def _push_blob(registry_url: str, repo: str, data: bytes) -> str:
    """Monolithic upload: POST an upload session, then PUT the bytes with their digest."""
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    started = http_request("POST", f"{registry_url}/v2/{repo}/blobs/uploads/", data=b"")
    assert started.status == 202, started
    location = started.headers["Location"]
    if location.startswith("/"):
        location = registry_url + location
    separator = "&" if "?" in location else "?"
    finished = http_request(
        "PUT", f"{location}{separator}digest={digest}", data=data,
        headers={"Content-Type": "application/octet-stream"},
    )
    assert finished.status == 201, finished
    assert finished.headers["Docker-Content-Digest"] == digest
    return digest


def test_registry_answers_v2(oci_registry):
    response = http_request("GET", f"{oci_registry.url}/v2/")
    assert response.status == 200
    assert response.headers["Docker-Distribution-Api-Version"] == "registry/2.0"
    assert oci_registry.address == f"127.0.0.1:{oci_registry.port}"


def test_registry_push_and_read_back(oci_registry):
    repo, url = "mlship/demo", oci_registry.url
    config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}).encode()
    layer = b"not really a tarball, the registry does not care\n"
    config_digest, layer_digest = _push_blob(url, repo, config), _push_blob(url, repo, layer)
    manifest = json.dumps({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest, "size": len(layer)}],
    }).encode()

    put = http_request("PUT", f"{url}/v2/{repo}/manifests/v1", data=manifest, headers={"Content-Type": OCI_MANIFEST})
    assert put.status == 201, put
    manifest_digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
    assert put.headers["Docker-Content-Digest"] == manifest_digest

    got = http_request("GET", f"{url}/v2/{repo}/manifests/v1", headers={"Accept": OCI_MANIFEST})
    assert (got.status, got.body) == (200, manifest)
    assert got.headers["Content-Type"] == OCI_MANIFEST
    assert http_request("GET", f"{url}/v2/{repo}/blobs/{layer_digest}").body == layer
    tags = json.loads(http_request("GET", f"{url}/v2/{repo}/tags/list").body)
    assert tags == {"name": repo, "tags": ["v1"]}


def test_s3_round_trip(s3_server):
    s3 = s3_server.client("s3")
    bucket, payload = f"mlship-{uuid.uuid4().hex[:12]}", b"\x00model bytes\xff" * 100
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="models/m.onnx", Body=payload)

    assert s3.get_object(Bucket=bucket, Key="models/m.onnx")["Body"].read() == payload
    listed = s3.list_objects_v2(Bucket=bucket, Prefix="models/")
    assert [(o["Key"], o["Size"]) for o in listed["Contents"]] == [("models/m.onnx", len(payload))]
    assert bucket in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    assert s3_server.endpoint_url == f"http://127.0.0.1:{s3_server.port}"


def test_docker_runs_busybox_with_host_network(docker_engine, busybox_image, http_upstream):
    message = f"hello {uuid.uuid4().hex}"
    with contextlib.closing(docker_engine.client()) as client:
        echoed = client.containers.run(busybox_image, ["echo", message], network_mode="host", remove=True)
        # Host networking: the container reaches a server on the host's loopback.
        fetched = client.containers.run(
            busybox_image, ["wget", "-q", "-O", "-", http_upstream.url + "/from-container"],
            network_mode="host", remove=True,
        )
        leftovers = client.containers.list(all=True)
    assert echoed == f"{message}\n".encode()
    assert fetched == http_upstream.body
    assert http_upstream.requests == ["/from-container"]
    assert leftovers == []
    assert docker_engine.env()["DOCKER_HOST"] == docker_engine.host


def test_nginx_proxies_to_upstream(nginx_factory, http_upstream):
    proxy = nginx_factory(proxy_conf(http_upstream.address))
    response = http_request("GET", f"{proxy.url}/predict?x=1")
    assert (response.status, response.body) == (200, http_upstream.body)
    assert http_upstream.requests == ["/predict?x=1"]


def test_nginx_reload_switches_upstream(nginx, http_upstream_factory):
    assert http_request("GET", nginx.url).body == b"mlship harness nginx\n"
    blue, green = http_upstream_factory("blue\n"), http_upstream_factory("green\n")

    nginx.reload(proxy_conf(blue.address))
    assert http_request("GET", nginx.url).body == b"blue\n"
    nginx.reload(proxy_conf(green.address))
    assert [http_request("GET", nginx.url).body for _ in range(3)] == [b"green\n"] * 3
    assert len(blue.requests) == 1 and len(green.requests) == 3


def test_nginx_reload_rejects_bad_config_and_keeps_serving(nginx):
    with pytest.raises(ValueError, match="rejected"):
        nginx.reload("    this is not nginx syntax;\n")
    assert http_request("GET", nginx.url).body == b"mlship harness nginx\n"
