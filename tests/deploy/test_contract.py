"""What every installed deploy runtime promises (mlship/deploy/base.py), run against each one on
real local services: docker on the harness's engine, sagemaker on moto's server."""

from __future__ import annotations

import pytest

from mlship.deploy.base import Placement, Runtime
from mlship.errors import UsageError
from mlship.plugins import installed, load
from tests.deploy.test_sagemaker import ROLE, Endpoint


def _docker(request, tmp_path):
    project, stub_image = request.getfixturevalue("project"), request.getfixturevalue("stub_image")
    runtime = load("runtimes", "docker", "docker")(
        name=project.name, slots={slot: project.address(slot) for slot in project.ports},
        host=project.engine.host, ready_timeout_s=20)
    return runtime, "green", lambda version: [stub_image(project.name, version)]


def _sagemaker(request, tmp_path):
    server, monkeypatch = request.getfixturevalue("s3_server"), request.getfixturevalue("monkeypatch")
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(key, value)
    ep = Endpoint(server, tmp_path, "0.9.0")
    runtime = load("runtimes", "sagemaker", "sagemaker")(
        name=ep.name, slots={}, router=None, endpoint=ep.endpoint, endpoint_url=server.endpoint_url,
        region="us-east-1", role_arn=ROLE, poll_s=1, wait_s=30)
    return runtime, "green", lambda version: [ep.record(version)]


FIXTURES = {"docker": _docker, "sagemaker": _sagemaker}


def test_every_installed_runtime_has_a_contract_fixture():
    assert set(installed("runtimes")) == set(FIXTURES)


def current(runtime: Runtime, slot: str) -> Placement:
    [placement] = [p for p in runtime.placements() if p.current and p.slot == slot]
    return placement


@pytest.mark.parametrize("kind", [pytest.param(kind, marks=pytest.mark.integration) for kind in sorted(FIXTURES)])
def test_deploy_keep_restore_and_remove(kind, request, tmp_path):
    runtime, slot, images = FIXTURES[kind](request, tmp_path)
    assert isinstance(runtime, Runtime) and runtime.where()

    first = runtime.deploy(slot, "1.0.0", images("1.0.0"))
    assert (first.slot, first.version, first.current) == (slot, "1.0.0", True) and first.digest
    assert current(runtime, slot).id == first.id

    second = runtime.deploy(slot, "2.0.0", images("2.0.0"))
    assert (second.version, second.current) == ("2.0.0", True)
    assert current(runtime, slot).version == "2.0.0"
    assert [p.version for p in runtime.placements() if not p.current] == ["1.0.0"]  # kept for undo

    back = runtime.restore(slot, "1.0.0")
    assert (back.version, back.current) == ("1.0.0", True) and current(runtime, slot).version == "1.0.0"
    with pytest.raises(UsageError):
        runtime.restore(slot, "9.9.9")  # nothing kept of it

    [kept] = [p for p in runtime.placements() if not p.current and p.version == "2.0.0"]
    runtime.remove(kept)
    assert all(p.version != "2.0.0" for p in runtime.placements())
    with pytest.raises(UsageError):
        runtime.remove(current(runtime, slot))  # a slot's own is never removed
    assert isinstance(runtime.prune([kept]), list)
