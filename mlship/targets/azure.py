"""az://container/prefix (and https://ACCOUNT.blob.core.windows.net/container/prefix) targets:
Azure Blob Storage, through azure-storage-blob (extra `azure`).

Credentials, first found: AZURE_STORAGE_CONNECTION_STRING (account key or SAS inside;
Azurite's too); then the account's URL (the https:// form, `account_url`, or
AZURE_STORAGE_ACCOUNT) with AZURE_STORAGE_KEY, AZURE_STORAGE_SAS_TOKEN, or
DefaultAzureCredential (azure-identity: environment, managed identity, Azure CLI).
Files go up as block blobs in BLOCK_SIZE blocks, `max_concurrency` at a time, hashed
beside the upload; shared documents are written with If-Match on the ETag read
(If-None-Match: * when absent), so concurrent pushes lose nothing.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterator, Optional
from urllib.parse import urlparse

from pydantic import Field, field_validator

from mlship.errors import ServiceError, UsageError
from mlship.extras import require
from mlship.model.load import sha256_file_once
from mlship.targets.base import Progress
from mlship.targets.conditional import ConditionalTarget, Conflict, first_line, listing, split_url

BLOCK_SIZE = 8 * 1024 * 1024
AZURE_HOST = ".blob.core.windows.net"


class AzureTarget(ConditionalTarget):
    """An Azure Blob Storage container (or Azurite, through a connection string)."""

    name = "az"

    class Settings(ConditionalTarget.Settings):
        url: str = Field(..., description="az://container/prefix or https://ACCOUNT.blob.core.windows.net/container/prefix")
        account_url: str | None = Field(
            None, description="For az:// URLs: https://ACCOUNT.blob.core.windows.net; from AZURE_STORAGE_ACCOUNT "
                              "or the connection string when empty.")
        max_concurrency: int = Field(8, ge=1, le=64, description="Blocks uploaded (and downloaded) at once.")

        @field_validator("url")
        @classmethod
        def _az_url(cls, value: str) -> str:
            base, query = value.split("?", 1) if "?" in value else (value, None)
            if not split_location(base)[1]:
                raise ValueError("must look like az://container/prefix or "
                                 "https://ACCOUNT.blob.core.windows.net/container/prefix")
            # A SAS token in the URL is kept out of `config show` and `targets list`; opening the
            # target refuses the URL (see refusal) with the way to pass the token instead.
            return value if query is None else f"{base}?…"

    def __init__(self, url: str, *, account_url: str | None = None, max_concurrency: int = 8, **_: Any) -> None:
        refused = self.refusal(url)  # a SAS URL from mlship.yaml: its settings passed validation
        if refused is not None:
            raise refused
        super().__init__(url)
        https_account, self.container_name, self.prefix = split_location(url)
        self.concurrency = max_concurrency
        service = _service(url, https_account or account_url)
        self.container = service.get_container_client(self.container_name)

    @classmethod
    def refusal(cls, spec: str) -> UsageError | None:
        """A SAS URL (`…?sv=…&sig=…`) is refused without repeating its query: the token would end up
        in messages, tables and the versions store."""
        if "?" in spec:
            return UsageError(f"{spec.split('?', 1)[0]}: a target URL cannot carry a query (a SAS token)",
                              hint="Put the token in AZURE_STORAGE_SAS_TOKEN and drop it from the URL")
        return None

    def _blob(self, key: str) -> Any:
        self.check_key(key)
        return self.container.get_blob_client(f"{self.prefix}/{key}" if self.prefix else key)

    def upload(self, key: str, path: Path, progress: Progress) -> str:
        blob, size = self._blob(key), path.stat().st_size
        # Hash beside the parallel block uploads (hashlib releases the GIL): the digest costs no extra time.
        hashing = ThreadPoolExecutor(max_workers=1).submit(sha256_file_once, path)
        try:
            with path.open("rb") as fh:
                reply = blob.upload_blob(fh, length=size, overwrite=True, max_concurrency=self.concurrency,
                                         progress_hook=_increments(progress))
        except Exception as exc:
            # Blocks staged but never committed are not a blob: nothing is visible, Azure drops them.
            raise ServiceError(f"{self.url}: upload of {key} failed: {_reason(exc)}") from None
        finally:
            digest = hashing.result()
        if reply is None:  # pragma: no cover - the SDK always answers with the blob's properties
            raise ServiceError(f"{self.url}: upload of {key} got no answer")
        return digest

    def download(self, key: str, dest: Path, progress: Progress) -> None:
        blob = self._blob(key)
        try:
            with dest.open("wb") as out:
                blob.download_blob(max_concurrency=self.concurrency, progress_hook=_increments(progress)).readinto(out)
        except Exception as exc:
            raise ServiceError(f"{self.url}: download of {key} failed: {_reason(exc)}") from None

    def stream(self, key: str) -> Iterator[bytes] | None:
        blob = self._blob(key)
        try:
            download = blob.download_blob()  # the first range now: a missing blob is None, not a failure later
        except Exception as exc:
            if _code(exc) == "BlobNotFound":
                return None
            raise ServiceError(f"{self.url}: cannot read {key}: {_reason(exc)}") from None
        return self._chunks(download, key)

    def _chunks(self, download: Any, key: str) -> Iterator[bytes]:
        try:
            yield from download.chunks()
        except Exception as exc:
            raise ServiceError(f"{self.url}: cannot read {key}: {_reason(exc)}") from None

    def list_keys(self, prefix: str) -> list[str]:
        return listing(self, self.prefix, prefix,
                       lambda base: (b.name for b in self.container.list_blobs(name_starts_with=base)))

    def get_versioned(self, key: str) -> tuple[Optional[bytes], Optional[str]]:
        blob = self._blob(key)
        try:
            stream = blob.download_blob()
            return stream.readall(), stream.properties.etag
        except Exception as exc:
            if _code(exc) == "BlobNotFound":
                return None, None
            raise ServiceError(f"{self.url}: cannot read {key}: {_reason(exc)}") from None

    def put_if(self, key: str, data: bytes, version: Optional[str]) -> str:
        from azure.core import MatchConditions

        blob = self._blob(key)
        condition: dict[str, Any] = ({"etag": version, "match_condition": MatchConditions.IfNotModified} if version
                                     else {"match_condition": MatchConditions.IfMissing})
        try:
            return blob.upload_blob(data, overwrite=True, **condition, **_json())["etag"]
        except Exception as exc:
            # 412: changed since read; 409 BlobAlreadyExists: created since; 404: removed since
            if _code(exc) in ("ConditionNotMet", "BlobAlreadyExists", "BlobNotFound"):
                raise Conflict(key) from None
            raise ServiceError(f"{self.url}: cannot write {key}: {_reason(exc)}") from None

    def delete_if(self, key: str, version: str) -> None:
        from azure.core import MatchConditions

        blob = self._blob(key)  # a refused key is invalid input (exit 3), not a store failure
        try:
            blob.delete_blob(etag=version, match_condition=MatchConditions.IfNotModified)
        except Exception as exc:
            if _code(exc) == "ConditionNotMet":
                raise Conflict(key) from None
            if _code(exc) != "BlobNotFound":
                raise ServiceError(f"{self.url}: cannot remove {key}: {_reason(exc)}") from None

    def write(self, key: str, data: bytes) -> None:
        blob = self._blob(key)
        try:  # one Put Blob replaces the blob whole: readers see the old or the new bytes
            blob.upload_blob(data, overwrite=True, **_json())
        except Exception as exc:
            raise ServiceError(f"{self.url}: cannot write {key}: {_reason(exc)}") from None


def split_location(url: str) -> tuple[str | None, str, str]:
    """(account URL or None, container, prefix) of an az:// or https://ACCOUNT.blob.core.windows.net URL."""
    if url.startswith("az://"):
        return (None, *split_url(url, "az"))
    parsed = urlparse(url)
    if parsed.scheme != "https" or not (parsed.hostname or "").endswith(AZURE_HOST):
        return None, "", ""
    container, _, prefix = parsed.path.strip("/").partition("/")
    return f"https://{parsed.hostname}", container, prefix.strip("/")


def is_azure_url(spec: str) -> bool:
    """Whether `spec` is an https:// URL of Azure Blob Storage (so it names an az target)."""
    return spec.startswith("https://") and bool(split_location(spec)[1])


def _service(url: str, account_url: str | None) -> Any:
    """A BlobServiceClient from the first credentials found (see the module's docstring)."""
    blob = require("azure.storage.blob")
    options = {"max_block_size": BLOCK_SIZE, "max_single_put_size": BLOCK_SIZE}
    connection = os.environ.get("AZURE_STORAGE_CONNECTION_STRING")
    if connection and not account_url:
        try:
            return blob.BlobServiceClient.from_connection_string(connection, **options)
        except Exception:  # the message would quote the string, secrets and all
            raise UsageError(f"{url}: AZURE_STORAGE_CONNECTION_STRING is not a valid connection string",
                             hint="Copy it again from the portal (Access keys) or from `az storage account "
                                  "show-connection-string`") from None
    account = os.environ.get("AZURE_STORAGE_ACCOUNT")
    account_url = account_url or (f"https://{account}{AZURE_HOST}" if account else None)
    if not account_url:
        raise UsageError(f"{url}: no Azure storage account",
                         hint="Set AZURE_STORAGE_CONNECTION_STRING or AZURE_STORAGE_ACCOUNT, use the "
                              "https://ACCOUNT.blob.core.windows.net/… form, or set account_url in the target")
    return blob.BlobServiceClient(account_url, credential=_credential(account_url), **options)


def _credential(account_url: str) -> Any:
    """An account key, a SAS token, or DefaultAzureCredential, in that order."""
    key, sas = os.environ.get("AZURE_STORAGE_KEY"), os.environ.get("AZURE_STORAGE_SAS_TOKEN")
    if key:
        return {"account_name": _account_name(account_url), "account_key": key}
    if sas:
        from azure.core.credentials import AzureSasCredential

        return AzureSasCredential(sas.lstrip("?"))
    return require("azure.identity").DefaultAzureCredential()


def _account_name(account_url: str) -> str:
    """ACCOUNT of https://ACCOUNT.blob.core.windows.net, or of http://HOST:PORT/ACCOUNT (emulators)."""
    parsed = urlparse(account_url)
    host = parsed.hostname or ""
    return host.split(".")[0] if host.endswith(AZURE_HOST) else parsed.path.strip("/").split("/")[0]


def _increments(progress: Progress) -> Any:
    """The SDK's progress hook (bytes so far, total) as the increments `progress` adds up."""
    done, lock = [0], threading.Lock()

    def hook(current: int, total: int | None) -> None:
        with lock:
            step, done[0] = current - done[0], max(done[0], current)
        if step > 0:
            progress(step)

    return hook


def _json() -> dict[str, Any]:
    from azure.storage.blob import ContentSettings

    return {"content_settings": ContentSettings(content_type="application/json")}


def _code(exc: Exception) -> str | None:
    code = getattr(exc, "error_code", None)
    return str(getattr(code, "value", code)) if code is not None else None


def _reason(exc: Exception) -> str:
    code, status = _code(exc), getattr(exc, "status_code", None)
    if code == "ContainerNotFound":
        return "the container does not exist"
    if status in (401, 403) or code in ("AuthenticationFailed", "AuthorizationFailure"):
        return f"access refused ({code or status}): check the credentials"
    if type(exc).__name__ == "ClientAuthenticationError":
        return "no Azure credentials found (DefaultAzureCredential): set AZURE_STORAGE_CONNECTION_STRING or log in"
    return first_line(exc)
