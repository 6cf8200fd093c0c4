"""Stub serving images on the test engine and a project deploying them (fixtures for deploy tests).

A stub image is busybox's httpd serving the two routes a runtime checks
(`/v2/health/ready`, `/v2/models/NAME`) as files, on $MLSHIP_SERVE_HOST:$MLSHIP_SERVE_PORT
as mlship's own images do; it builds in a second, so the runtime's behaviour is tested
without building Python images (tests/deploy/test_images.py runs real ones).
"""

from __future__ import annotations

import io
import json
import tarfile
import uuid
from contextlib import closing
from pathlib import Path

import pytest

from mlship.versions import BuildRecord, VersionStore
from tests.harness.ports import free_port

LABEL = "io.mlship.deploy.name"


def _context(dockerfile: str) -> io.BytesIO:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        data = dockerfile.encode()
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    buffer.seek(0)
    return buffer


def stub_dockerfile(base: str, model: str, serves: str, behaviour: str) -> str:
    """`ready`: serves `serves`; `never`: answers 404 for readiness; `crash`: exits at once;
    `hostile`: exits with terminal escapes and markup in its logs."""
    metadata = json.dumps({"name": model, "versions": [serves], "platform": "stub"})
    ready = "echo ok > /www/v2/health/ready && " if behaviour != "never" else ""
    server = "exec httpd -f -p $MLSHIP_SERVE_HOST:$MLSHIP_SERVE_PORT -h /www"
    if behaviour == "hostile":  # terminal escapes (retitle, clear screen) and rich markup in its logs
        server = "printf '\\\\033]0;pwned\\\\007[bold red]owned[/] \\\\033[2J\\\\n' >&2; exit 1"
    elif behaviour == "crash":
        server = "echo 'loading the model failed: weights truncated' >&2; exit 3"
    elif behaviour == "never":
        server = "echo 'still loading the model' >&2; " + server
    return (f"FROM {base}\n"
            f"RUN mkdir -p /www/v2/health /www/v2/models && {ready}echo '{metadata}' > /www/v2/models/{model}\n"
            f'CMD ["sh", "-c", "echo stub {serves} starting; {server}"]\n')


@pytest.fixture
def stub_image(docker_engine, busybox_image):
    """make(model, serves, behaviour="ready", engine=docker_engine) -> the id of a stub image."""
    made: dict[tuple, str] = {}

    def make(model: str, serves: str, behaviour: str = "ready", engine=None) -> str:
        engine = engine or docker_engine
        key = (engine.host, model, serves, behaviour)
        if key not in made:
            with closing(engine.client()) as client:
                base = engine.import_busybox_image()
                image, _ = client.images.build(fileobj=_context(stub_dockerfile(base, model, serves, behaviour)),
                                               tag=f"mlship-test/stub-{model}:{serves}-{behaviour}", rm=True, custom_context=True,
                                               network_mode="none")
                made[key] = image.id
        return made[key]

    return make


class Project:
    """A project directory whose mlship.yaml deploys model `name` to slots blue and green."""

    def __init__(self, root: Path, name: str, engine, ports: dict[str, int]) -> None:
        self.root, self.name, self.engine, self.ports = root, name, engine, ports
        self.config = root / "mlship.yaml"

    def write(self, docker: str = "", runtime: str = "docker", host: bool = True, router: str = "",
              rollout: str = "") -> None:
        engine = f"host: '{self.engine.host}', " if host else ""
        upstreams = ", ".join(f"{slot}: 127.0.0.1:{port}" for slot, port in self.ports.items())
        self.config.write_text(
            f"name: {self.name}\n"
            f"rollout:\n  router: {{type: nginx, config: nginx/{self.name}.conf, upstreams: {{{upstreams}}}{router}}}\n"
            f"  steps: [10, 50, 100]\n{rollout}"
            f"deploy:\n  runtime: {runtime}\n  docker: {{{engine}ready_timeout_s: 20{', ' + docker if docker else ''}}}\n")

    def record(self, version: str, image_id: str) -> None:
        """A build of `version` in the versions store, as `mlship build --image` records one."""
        VersionStore(self.root / ".mlship" / "versions.jsonl").append(BuildRecord(
            name=self.name, version=version, kind="image", model_sha256="0" * 64, artifact=image_id,
            tag=f"{self.name}:{version}", builder="docker"))

    def address(self, slot: str) -> str:
        return f"127.0.0.1:{self.ports[slot]}"

    def containers(self, client) -> dict[str, object]:
        return {c.name: c for c in client.containers.list(all=True, filters={"label": f"{LABEL}={self.name}"})}


@pytest.fixture
def project(tmp_path, docker_engine):
    """A project for a model with a unique name; its containers are removed afterwards."""
    name = f"stub-{uuid.uuid4().hex[:8]}"
    blue = free_port()
    green = next(port for port in iter(free_port, None) if port != blue)
    proj = Project(tmp_path, name, docker_engine, {"blue": blue, "green": green})
    proj.write()
    yield proj
    with closing(docker_engine.client()) as client:
        for container in proj.containers(client).values():
            container.remove(force=True)
