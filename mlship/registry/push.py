"""Pushing images to OCI registries (on-prem registries, Amazon ECR) through the engine."""

from __future__ import annotations

import base64
import re
import time
from dataclasses import dataclass
from typing import Any, Callable

from mlship.errors import MlshipError, ServiceError, UsageError

ECR_HOST = re.compile(r"^(\d+)\.dkr\.ecr\.([a-z0-9-]+)\.amazonaws\.com(\.cn)?$")


@dataclass(frozen=True)
class RegistryRef:
    """registry://HOST[:PORT]/REPO[:TAG] or ecr://HOST[:PORT]/REPO[:TAG]."""

    host: str
    repository: str
    tag: str | None
    ecr: bool

    @property
    def name(self) -> str:
        return f"{self.host}/{self.repository}"

    @classmethod
    def parse(cls, url: str) -> "RegistryRef":
        match = re.fullmatch(r"(registry|ecr)://([^/]+)/([a-z0-9._/-]+?)(?::([\w][\w.-]{0,127}))?", url)
        if not match:
            raise UsageError(f"--to {url}: expected registry://HOST[:PORT]/REPOSITORY[:TAG] (or ecr://…)")
        scheme, host, repo, tag = match.groups()
        return cls(host=host, repository=repo, tag=tag, ecr=scheme == "ecr" or bool(ECR_HOST.match(host.split(":")[0])))


class EcrAuth:
    """Credentials from ecr.get_authorization_token, renewed before they expire."""

    def __init__(self, host: str) -> None:
        self.host = host
        self._auth: dict[str, str] | None = None
        self._expires = 0.0

    def get(self) -> dict[str, str]:
        if self._auth is None or time.time() > self._expires - 300:
            self._refresh()
        return self._auth

    def _refresh(self) -> None:
        from mlship.extras import require

        boto3 = require("boto3")
        match = ECR_HOST.match(self.host.split(":")[0])
        region = match.group(2) if match else None
        try:
            client = boto3.client("ecr", region_name=region)
            data = client.get_authorization_token()["authorizationData"][0]
        except Exception as exc:  # botocore errors: credentials, network, access
            raise ServiceError(f"ECR login for {self.host} failed: {str(exc).splitlines()[0]}",
                               hint="Check AWS credentials (boto3's chain: env, profile, role)") from None
        user, password = base64.b64decode(data["authorizationToken"]).decode().split(":", 1)
        self._auth = {"username": user, "password": password, "serveraddress": self.host}
        expires = data.get("expiresAt")
        self._expires = expires.timestamp() if hasattr(expires, "timestamp") else time.time() + 3600


def push_image(client: Any, image: str, target: RegistryRef, *, tag: str, attempts: int = 4,
               backoff_s: float = 1.0, log: Callable[[str], None] = lambda line: None) -> str:
    """Tag `image` as the target and push it; the pushed manifest digest."""
    auth = EcrAuth(target.host) if target.ecr else None
    try:
        client.images.get(image).tag(target.name, tag=tag)
    except Exception as exc:
        raise UsageError(f"no local image {image} to push ({str(exc).splitlines()[0]})") from None
    last = ""
    for attempt in range(attempts):
        try:
            return _push_once(client, target, tag, auth.get() if auth else None, log)
        except _Transient as exc:
            last = str(exc)
            if attempt + 1 < attempts:
                log(f"push failed ({last}); retrying in {backoff_s * 2 ** attempt:.0f} s")
                time.sleep(backoff_s * 2 ** attempt)
    raise ServiceError(f"push to {target.name}:{tag} failed after {attempts} attempts: {last}",
                       hint="Check that the registry is reachable and accepts your credentials")


class _Transient(Exception):
    pass


def _push_once(client: Any, target: RegistryRef, tag: str, auth: dict[str, str] | None,
               log: Callable[[str], None]) -> str:
    digest = None
    try:
        stream = client.api.push(target.name, tag=tag, stream=True, decode=True, auth_config=auth)
        for chunk in stream:
            if "error" in chunk:
                message = chunk["error"].strip()
                if re.search(r"unauthorized|denied|authentication required|no basic auth", message, re.I):
                    raise ServiceError(f"registry {target.host} refused the push: {message}",
                                       hint="Log in (docker login) or check the credentials")
                raise _Transient(message)
            if chunk.get("status") and chunk.get("id"):
                log(f"{chunk['id']}: {chunk['status']}")
            aux = chunk.get("aux") or {}
            if "Digest" in aux:
                digest = aux["Digest"]
    except (MlshipError, _Transient):
        raise
    except Exception as exc:  # connection errors to the engine or registry
        raise _Transient(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from None
    if digest is None:
        raise _Transient("the engine reported no digest")
    return digest
