"""The Docker engine a runtime talks to: connecting (unix, tcp with TLS client
certificates, ssh) and getting an image onto it (already there, or pulled with
the credentials mlship handles: ECR tokens, else Docker's own config)."""

from __future__ import annotations

import os
from contextlib import closing
from pathlib import Path
from typing import Any

from pydantic import Field

from mlship.errors import ServiceError, UsageError
from mlship.plugins import PluginSettings


class TlsSettings(PluginSettings):
    """Client certificates for an engine on tcp:// (dockerd --tlsverify)."""

    ca: str | None = Field(None, description="CA certificate that signed the engine's certificate.")
    cert: str = Field(..., description="Client certificate (PEM).")
    key: str = Field(..., description="Client private key (PEM).")


def engine_address(host: str | None) -> str:
    """The engine's address as people know it: the setting, DOCKER_HOST, or Docker's default."""
    return host or os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"


def connect(host: str | None, tls: TlsSettings | None, timeout: float = 60) -> Any:
    """A docker SDK client for the engine at `host` (DOCKER_HOST when None) that answered a ping."""
    from mlship.extras import require

    docker = require("docker")
    address = engine_address(host)
    config = _tls_config(docker, tls) if tls else None
    try:
        if host is None and config is None:
            client = docker.from_env(timeout=timeout)  # DOCKER_HOST, DOCKER_TLS_VERIFY, DOCKER_CERT_PATH
        else:
            client = _engine_client(docker, address, config, timeout)
        client.ping()
        return client
    except Exception as exc:  # docker.errors.DockerException, connection and TLS errors
        raise ServiceError(f"no Docker engine answers at {address} ({first_line(exc)})",
                           hint="Check deploy.docker.host (or DOCKER_HOST) and the engine's TLS settings") from None


def _engine_client(docker: Any, address: str, tls: Any, timeout: float) -> Any:
    """A client for an engine given by address, speaking the API version both sides know."""
    def client(version: str) -> Any:
        made = docker.DockerClient(base_url=address, tls=tls, timeout=timeout, version=version,
                                   use_ssh_client=address.startswith("ssh://"))
        # requests lets REQUESTS_CA_BUNDLE (set on many hosts) replace the session's CA, so the
        # engine's own CA would be ignored: the connection to the engine takes nothing from the env.
        made.api.trust_env = False
        return made

    # Not version="auto": it asks the engine while the client is built, before trust_env is off.
    with closing(client(docker.constants.MINIMUM_DOCKER_API_VERSION)) as first:
        server = first.version()["ApiVersion"]
    newest = docker.constants.DEFAULT_DOCKER_API_VERSION
    return client(newest if docker.utils.version_lt(newest, server) else server)


def _tls_config(docker: Any, tls: TlsSettings) -> Any:
    for key in ("ca", "cert", "key"):
        path = getattr(tls, key)
        if path is not None and not Path(path).is_file():
            raise UsageError(f"deploy.docker.tls.{key}: no file {path}")
    return docker.tls.TLSConfig(client_cert=(tls.cert, tls.key), ca_cert=tls.ca, verify=tls.ca or True)


def get_image(client: Any, references: list[str], where: str) -> tuple[str, Any]:
    """The first of `references` on the engine (pulling registry references that are not) and
    its image; ServiceError if none."""
    import docker

    last = "no image given"
    for ref in references:
        try:
            return ref, client.images.get(ref)
        except docker.errors.ImageNotFound:
            pass
        except docker.errors.APIError as exc:
            last = first_line(exc)
            continue
        if "/" not in ref:  # a bare id or local tag: nothing to pull it from
            last = f"{ref} is not on the engine"
            continue
        try:
            return ref, client.images.pull(ref, auth_config=_registry_auth(ref))
        except Exception as exc:  # docker.errors.APIError, registry errors, ECR login
            last = f"pulling {ref}: {first_line(exc)}"
    raise ServiceError(f"no image of the version on the engine at {where} ({last})",
                       hint="Push the image to a registry the engine can reach, or pass --image REF")


def _registry_auth(ref: str) -> dict[str, str] | None:
    """ECR needs a token from AWS; other registries use Docker's config (docker login) on the engine side."""
    from mlship.registry.push import ECR_HOST, EcrAuth

    host = ref.split("/", 1)[0]
    return EcrAuth(host).get() if ECR_HOST.match(host.split(":")[0]) else None


def first_line(exc: BaseException) -> str:
    """An exception's first line, short enough for a one-line error."""
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__
