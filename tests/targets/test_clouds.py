"""What is particular to gs:// and az:// targets: resumable uploads hashed while sent, the Azure
credential chain and URL forms, missing buckets, secrets kept out of messages, hybrid pushes."""

from __future__ import annotations

import hashlib
import io
import json
import os
import uuid

import pytest

from mlship.targets.base import open_target
from tests.conftest import empty_target
from tests.harness.clouds import AZURITE_KEY, azurite_connection_string
from tests.support import run
from tests.targets.test_targets import artifact, push

GS, AZ = (pytest.param(k, marks=pytest.mark.integration) for k in ("gs", "az"))


def one_line(result, code: int, *present: str) -> None:
    assert result.code == code, result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr
    for text in present:
        assert text in result.stderr, result.stderr


# ------------------------------------------------------------------------------------ gs://


def test_hashing_reader_hashes_retried_bytes_once(tmp_path):
    from mlship.targets.hashing import HashingReader

    data = os.urandom(3000)
    (path := tmp_path / "a.bin").write_bytes(data)
    seen: list[int] = []
    with path.open("rb") as fh:
        reader = HashingReader(fh, seen.append)
        reader.read(1000)
        reader.seek(500)  # a chunk sent again after a failure
        reader.read(1000)
        while reader.read(700):
            pass
    assert reader.hexdigest(path) == hashlib.sha256(data).hexdigest() and sum(seen) == len(data)


@pytest.mark.parametrize("reads", [[(1000, 500)], [(0, 1000)]], ids=["skipped-ahead", "stopped-early"])
def test_hashing_reader_hashes_the_file_again_when_the_reads_did_not_cover_it(tmp_path, reads):
    from mlship.targets.hashing import HashingReader

    data = os.urandom(3000)
    (path := tmp_path / "a.bin").write_bytes(data)
    with path.open("rb") as fh:
        reader = HashingReader(fh, lambda n: None)
        for offset, size in reads:
            reader.seek(offset)
            reader.read(size)
    assert reader.hexdigest(path) == hashlib.sha256(data).hexdigest()


def test_resumable_upload_in_chunks_gives_the_sha256_of_the_file(tmp_path, gcs_server, request, monkeypatch):
    from mlship.targets import gcs

    monkeypatch.setattr(gcs, "CHUNK_SIZE", 256 * 1024)  # the smallest chunk: five round trips
    url = empty_target("gs", request, tmp_path, monkeypatch)
    source = tmp_path / "weights.bin"
    source.write_bytes(os.urandom(5 * 256 * 1024 - 7))
    seen: list[int] = []
    target = open_target(url, {})
    assert target.upload("bc/1/weights.bin", source, seen.append) == hashlib.sha256(source.read_bytes()).hexdigest()
    assert sum(seen) == source.stat().st_size
    target.download("bc/1/weights.bin", tmp_path / "back", lambda n: None)
    assert (tmp_path / "back").read_bytes() == source.read_bytes()


def test_a_bad_service_account_file_is_one_line_without_its_secret(tmp_path, gcs_server, request, monkeypatch):
    url = empty_target("gs", request, tmp_path, monkeypatch)
    key = tmp_path / "sa.json"
    key.write_text(json.dumps({"type": "service_account", "private_key": "-----SECRET-PEM-----",
                               "client_email": "x@y.iam.gserviceaccount.com"}))
    (tmp_path / "mlship.yaml").write_text(f"name: bc\ntargets:\n  g: {{type: gs, url: '{url}', "
                                          f"credentials_file: '{key}'}}\n")
    result = run("-c", str(tmp_path / "mlship.yaml"), "push", str(artifact(tmp_path)), "--name", "bc",
                 "--artifact-version", "1", "--to", "g")
    one_line(result, 7, "no Google Cloud credentials")
    assert "SECRET" not in result.stderr + result.stdout


# ------------------------------------------------------------------------------------ az://


def test_azure_urls_name_az_targets_and_lookalike_hosts_are_refused(tmp_path):
    from mlship.targets.azure import split_location
    from mlship.targets.base import _scheme

    assert _scheme("https://acct.blob.core.windows.net/models/bc") == "az"
    assert split_location("https://acct.blob.core.windows.net/models/team/bc") == (
        "https://acct.blob.core.windows.net", "models", "team/bc")
    assert split_location("az://models/team") == (None, "models", "team")
    result = push(artifact(tmp_path), "https://acct.blob.core.windows.net.evil.example/models/bc")
    one_line(result, 2, "az://container/prefix")


def _azure_project(tmp_path, azurite, request, monkeypatch, **settings) -> str:
    """A named az target in mlship.yaml on Azurite, reached by its account URL (no connection string)."""
    url = empty_target("az", request, tmp_path, monkeypatch)
    monkeypatch.delenv("AZURE_STORAGE_CONNECTION_STRING")
    extra = "".join(f", {k}: '{v}'" for k, v in {"account_url": azurite.endpoint, **settings}.items())
    (tmp_path / "mlship.yaml").write_text(f"name: bc\ntargets:\n  blob: {{type: az, url: '{url}'{extra}}}\n")
    return url


def _push_named(tmp_path, version="1"):
    return run("-c", str(tmp_path / "mlship.yaml"), "--json", "push", str(artifact(tmp_path)), "--name", "bc",
               "--artifact-version", version, "--to", "blob")


def test_account_key_from_the_environment(tmp_path, azurite, request, monkeypatch):
    _azure_project(tmp_path, azurite, request, monkeypatch)
    monkeypatch.setenv("AZURE_STORAGE_KEY", AZURITE_KEY)
    assert _push_named(tmp_path).code == 0
    wrong = "A" * 86 + "=="
    monkeypatch.setenv("AZURE_STORAGE_KEY", wrong)
    result = _push_named(tmp_path, "2")
    assert result.code == 7 and "access refused" in result.stderr and wrong not in result.stderr + result.stdout


def test_sas_token_from_the_environment(tmp_path, azurite, request, monkeypatch):
    from datetime import datetime, timedelta, timezone

    from azure.storage.blob import ContainerSasPermissions, generate_container_sas

    url = _azure_project(tmp_path, azurite, request, monkeypatch)
    sas = generate_container_sas("devstoreaccount1", url.split("/")[2], account_key=AZURITE_KEY,
                                 permission=ContainerSasPermissions(read=True, write=True, list=True, create=True),
                                 expiry=datetime.now(timezone.utc) + timedelta(hours=1))
    monkeypatch.setenv("AZURE_STORAGE_SAS_TOKEN", sas)
    assert _push_named(tmp_path).code == 0
    read_only = generate_container_sas("devstoreaccount1", url.split("/")[2], account_key=AZURITE_KEY,
                                       permission=ContainerSasPermissions(read=True),
                                       expiry=datetime.now(timezone.utc) + timedelta(hours=1))
    monkeypatch.setenv("AZURE_STORAGE_SAS_TOKEN", read_only)
    result = _push_named(tmp_path, "2")
    assert result.code == 7, result.stderr
    signature = read_only.split("sig=")[1].split("&")[0]
    assert signature not in result.stderr + result.stdout


def test_no_account_and_a_bad_connection_string_are_usage_errors_without_secrets(tmp_path, monkeypatch):
    for key in ("AZURE_STORAGE_CONNECTION_STRING", "AZURE_STORAGE_ACCOUNT", "AZURE_STORAGE_KEY"):
        monkeypatch.delenv(key, raising=False)
    one_line(push(artifact(tmp_path), "az://models/team"), 2, "no Azure storage account")
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", "AccountName=x;AccountKey=SECRETKEY;Nonsense")
    result = push(artifact(tmp_path), "az://models/team")
    one_line(result, 2, "AZURE_STORAGE_CONNECTION_STRING is not a valid connection string")
    assert "SECRETKEY" not in result.stderr + result.stdout


# ------------------------------------------------------------------------------------ both


@pytest.mark.parametrize("kind", [GS, AZ])
def test_a_missing_bucket_or_container_is_named(tmp_path, kind, request, monkeypatch):
    url = empty_target(kind, request, tmp_path, monkeypatch)
    missing = f"{kind}://absent-{uuid.uuid4().hex[:8]}/team"
    one_line(push(artifact(tmp_path), missing), 7, missing, "does not exist")
    assert url != missing


@pytest.mark.integration
def test_one_push_to_file_s3_gs_and_az(tmp_path, request, monkeypatch):
    urls = [empty_target(k, request, tmp_path, monkeypatch) for k in ("file", "s3", "gs", "az")]
    result = push(artifact(tmp_path), *urls)
    assert result.code == 0, result.stderr
    assert {r["target"]: r["status"] for r in result.json()["results"]} == {u: "pushed" for u in urls}
    for i, url in enumerate(urls):
        assert run("promote", "bc", "1.0.0", "--channel", "stable", "--to", url).code == 0
        assert run("pull", "bc@stable", "--from", url, "-o", str(tmp_path / f"o{i}")).code == 0
        assert (tmp_path / f"o{i}" / "model.onnx").read_bytes() == b"weights-v1" * 1000


def test_targets_list_names_gs_and_az():
    listed = run("--json", "targets", "list")
    assert listed.code == 0 and {"gs", "az"} <= set(listed.json()["schemes"])


@pytest.mark.parametrize("url,module,extra", [("gs://models/team", "google.cloud.storage", "gcp"),
                                               ("az://models/team", "azure.storage.blob", "azure")])
def test_a_missing_sdk_names_the_extra_to_install(tmp_path, monkeypatch, url, module, extra):
    import sys

    monkeypatch.setitem(sys.modules, module, None)  # as if the extra were not installed
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", "UseDevelopmentStorage=true")
    result = push(artifact(tmp_path), url)
    assert result.code == 2 and f"pip install 'mlship[{extra}]'" in result.stderr, result.stderr
    listed = run("--json", "targets", "list")  # the other commands keep working without it
    assert listed.code == 0 and url.split(":")[0] in listed.json()["schemes"]


def test_a_sas_token_in_a_url_is_refused_and_never_repeated(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    sas_url = "https://acct.blob.core.windows.net/models/bc?sv=2024-01-01&sp=rw&sig=SECRETSIG"
    (tmp_path / "mlship.yaml").write_text(f'name: bc\ntargets:\n  blob: {{type: az, url: "{sas_url}"}}\n')
    outputs = []
    for to in (sas_url, "blob"):
        result = push(artifact(tmp_path), to)
        one_line(result, 2, "https://acct.blob.core.windows.net/models/bc: a target URL cannot carry a query",
                 "AZURE_STORAGE_SAS_TOKEN")
        outputs.append(result.stdout + result.stderr)
    listed = run("targets", "list")
    assert listed.code == 0 and "models/bc?…" in listed.stdout
    outputs.append(listed.stdout + run("config", "show").stdout)
    assert not any("SECRETSIG" in text for text in outputs)
