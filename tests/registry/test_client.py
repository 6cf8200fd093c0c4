"""The OCI distribution client: credentials from the Docker config, chunked uploads, ECR tokens."""

from __future__ import annotations

import base64
import hashlib
import json
import os

from mlship.registry.client import docker_credentials, is_insecure
from tests.harness.proxy import start_counting_proxy


def test_credentials_from_docker_config(tmp_path, monkeypatch):
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    auth = base64.b64encode(b"ci:s3cret:x").decode()
    (tmp_path / "config.json").write_text(json.dumps({"auths": {"https://reg.example.com": {"auth": auth}}}))
    assert docker_credentials("reg.example.com") == ("ci", "s3cret:x")
    assert docker_credentials("other.example.com") is None
    assert is_insecure("127.0.0.1:5000") and is_insecure("localhost:5000") and not is_insecure("reg.example.com")


def test_chunked_upload_and_ecr_credentials(oci_registry_factory, s3_server, tmp_path, monkeypatch):
    from mlship.images.oci_base import registry_for

    registry = oci_registry_factory(users={"AWS": "123456789012-auth-token"})
    for key, value in {"AWS_ENDPOINT_URL_ECR": s3_server.endpoint_url, "AWS_ACCESS_KEY_ID": "testing",
                       "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(key, value)
    proxy = start_counting_proxy(registry.address)
    try:
        client = registry_for(proxy.address, ecr=True)
        client.chunk_size = 1 << 20
        blob = tmp_path / "blob"
        blob.write_bytes(os.urandom(3_500_000))
        digest = "sha256:" + hashlib.sha256(blob.read_bytes()).hexdigest()
        assert not client.has_blob("ml/chunks", digest)
        client.upload_blob("ml/chunks", digest, blob, blob.stat().st_size)
        assert client.has_blob("ml/chunks", digest)
        assert client.blob_bytes("ml/chunks", digest) == blob.read_bytes()
    finally:
        proxy.stop()
    patches = [r for r in proxy.requests if r.method == "PATCH"]
    assert [p.body_bytes for p in patches] == [1 << 20] * 3 + [3_500_000 - 3 * (1 << 20)]
