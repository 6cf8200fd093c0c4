"""Shared pytest configuration: real-service fixtures live in tests/harness/fixtures.py."""

import pytest

pytest_plugins = ["tests.harness.fixtures", "tests.harness.images"]


@pytest.fixture(params=["file", "s3"])
def artifact_target(request, tmp_path, monkeypatch):
    """An empty target of each kind: a directory, and a bucket on moto's S3 (boto3 pointed at it)."""
    import uuid

    if request.param == "file":
        return f"file://{tmp_path / 'store'}"
    server = request.getfixturevalue("s3_server")
    bucket = f"target-{uuid.uuid4().hex[:8]}"
    server.client("s3").create_bucket(Bucket=bucket)
    for key, value in {"AWS_ENDPOINT_URL_S3": server.endpoint_url, "AWS_ACCESS_KEY_ID": "testing",
                       "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(key, value)
    return f"s3://{bucket}/team"
