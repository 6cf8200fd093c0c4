"""Shared pytest configuration: real-service fixtures live in tests/harness/fixtures.py.

tests/harness/markers.py marks every test that starts a real server ``integration``;
``pytest -m "not integration"`` is the quick run without services.
"""

import pytest

pytest_plugins = ["tests.harness.fixtures", "tests.harness.images", "tests.harness.markers"]


@pytest.fixture(scope="module", autouse=True)
def _module_versions_store(tmp_path_factory):
    """Module fixtures that build get their module's own versions store (see below)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLSHIP_STORE", str(tmp_path_factory.mktemp("store") / "versions.jsonl"))
        yield


@pytest.fixture(autouse=True)
def _own_versions_store(tmp_path, monkeypatch):
    """Each test its own versions store (versions are immutable: tests building the same
    NAME VERSION from other inputs must not meet in one shared ./.mlship)."""
    monkeypatch.setenv("MLSHIP_STORE", str(tmp_path / ".mlship" / "versions.jsonl"))


@pytest.fixture(params=["file", *(pytest.param(k, marks=pytest.mark.integration) for k in ("s3", "gs", "az"))])
def artifact_target(request, tmp_path, monkeypatch):
    """An empty target of each kind: a directory, a bucket on moto's S3 (boto3 pointed at it), and the
    GCS and Azure emulators (tests/harness/clouds.py)."""
    return empty_target(request.param, request, tmp_path, monkeypatch)


def empty_target(kind, request, tmp_path, monkeypatch):
    """The URL of an empty `file`, `s3`, `gs` or `az` target (a bucket on moto or an emulator, clients pointed at it)."""
    import uuid

    if kind == "file":
        return f"file://{tmp_path / 'store'}"
    if kind in ("gs", "az"):  # an emulator (tests/harness/clouds.py), this process's clients pointed at it
        from tests.harness.clouds import use_emulator

        emulator = request.getfixturevalue({"gs": "gcs_server", "az": "azurite"}[kind])
        use_emulator(emulator, monkeypatch)
        return emulator.empty_target(kind)
    server = request.getfixturevalue("s3_server")
    bucket = f"target-{uuid.uuid4().hex[:8]}"
    server.client("s3").create_bucket(Bucket=bucket)
    for key, value in {"AWS_ENDPOINT_URL_S3": server.endpoint_url, "AWS_ACCESS_KEY_ID": "testing",
                       "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(key, value)
    return f"s3://{bucket}/team"
