"""Pytest fixtures for real services on loopback (loaded from tests/conftest.py).

A service whose binary/module is missing skips the test with the reason, or
fails it when ``MLSHIP_REQUIRE_SERVICES=1`` (CI). Scopes:

- ``docker_engine``, ``busybox_image``, ``s3_server``: session (slow to start
  or stateless enough; moto state is shared, so use unique bucket names or
  ``s3_server.reset()``).
- ``oci_registry``: function, so every test sees an empty registry (it starts
  in ~0.1 s).
- ``nginx_factory``, ``nginx``, ``http_upstream_factory``, ``http_upstream``: function.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.harness import services
from tests.harness.services import (
    DockerEngine,
    HttpConf,
    HttpUpstream,
    MotoServer,
    Nginx,
    OciRegistry,
    ServiceUnavailable,
)


def _unavailable(reason: str) -> None:
    if os.environ.get("MLSHIP_REQUIRE_SERVICES") == "1":
        pytest.fail(f"required service unavailable: {reason}", pytrace=False)
    pytest.skip(reason)


def _start(start: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    try:
        return start(*args, **kwargs)
    except ServiceUnavailable as exc:
        reason = str(exc)
    _unavailable(reason)  # outside the except block: no chained traceback noise


def _started(start: Callable[..., Any]) -> Iterator[Callable[..., Any]]:
    """A factory fixture body: each call starts one service; all are stopped afterwards."""
    handles: list[Any] = []

    def make(*args: Any, **kwargs: Any) -> Any:
        handle = _start(start, *args, **kwargs)
        handles.append(handle)
        return handle

    yield make
    for handle in handles:
        handle.stop()


@pytest.fixture(scope="session")
def docker_engine() -> Iterator[DockerEngine]:
    """A private dockerd; use ``.host``/``.env()``/``.client()``; host networking only."""
    engine = _start(services.start_docker_engine)
    try:
        yield engine
    finally:
        engine.stop()


@pytest.fixture(scope="session")
def busybox_image(docker_engine: DockerEngine) -> str:
    """Tag of an offline busybox image imported into ``docker_engine``."""
    return _start(docker_engine.import_busybox_image)


@pytest.fixture
def oci_registry() -> Iterator[OciRegistry]:
    """An empty plain-HTTP registry at ``.address`` ("127.0.0.1:PORT") / ``.url``."""
    registry = _start(services.start_oci_registry)
    try:
        yield registry
    finally:
        registry.stop()


@pytest.fixture
def oci_registry_factory() -> Iterator[Callable[..., OciRegistry]]:
    """start(users={"name": "password"}) -> a registry with htpasswd basic auth; stopped after the test."""
    yield from _started(services.start_oci_registry)


@pytest.fixture(scope="session")
def s3_server() -> Iterator[MotoServer]:
    """A moto server (S3, ECR, SageMaker, …); ``.client("s3")`` gives a ready boto3 client."""
    server = _start(services.start_moto_server)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def http_upstream_factory() -> Iterator[Callable[..., HttpUpstream]]:
    """``make(body, status=200, content_type="text/plain") -> HttpUpstream``; all stopped afterwards."""
    yield from _started(services.start_http_upstream)


@pytest.fixture
def http_upstream(http_upstream_factory: Callable[..., HttpUpstream]) -> HttpUpstream:
    """A loopback HTTP server answering every request with ``b"hello from upstream\\n"``."""
    return http_upstream_factory(b"hello from upstream\n")


@pytest.fixture
def nginx_factory() -> Iterator[Callable[[HttpConf], Nginx]]:
    """``start(http_conf) -> Nginx``; ``http_conf`` is the ``http {}`` body (see services.HttpConf)."""
    yield from _started(services.start_nginx)


@pytest.fixture
def nginx(nginx_factory: Callable[[HttpConf], Nginx]) -> Nginx:
    """nginx answering ``GET /`` with "mlship harness nginx"; call ``.reload(conf)`` to change it."""
    return nginx_factory(services.DEFAULT_NGINX_CONF)


@pytest.fixture(scope="session")
def chromium() -> str:
    """Path of Debian's headless-capable chromium (for checking HTML reports)."""
    import shutil

    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        _unavailable("chromium is not installed (apt-get install chromium)")
    return path


@pytest.fixture
def prometheus_factory() -> Iterator[Callable[[list[str]], services.Prometheus]]:
    """``start(["127.0.0.1:PORT", ...])`` -> a prometheus scraping those every second; stopped afterwards."""
    yield from _started(services.start_prometheus)


@pytest.fixture(scope="session")
def gcs_server() -> Iterator[Any]:
    """fake-gcs-server (tests/harness/clouds.py); ``.env`` points clients at it, ``.empty_target("gs")`` a new bucket."""
    from tests.harness import clouds

    server = _start(clouds.start_fake_gcs)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def azurite() -> Iterator[Any]:
    """Azurite's blob service; ``.env`` points clients at it, ``.empty_target("az")`` a new container."""
    from tests.harness import clouds

    server = _start(clouds.start_azurite)
    try:
        yield server
    finally:
        server.stop()
