"""The Router contract, run over every installed router plugin (`mlship.routers.v1`).

Each kind runs against the real thing: a route file, nginx (reloaded and read back from
its /.mlship/route location), SageMaker on moto. A kind installed without a fixture here
fails, so a new router cannot skip the contract.
"""

from __future__ import annotations

import uuid

import pytest
from pydantic import ValidationError

from mlship.errors import UsageError
from mlship.plugins import installed, load
from mlship.rollout.routers import Router
from mlship.rollout.state import Route
from tests.harness.ports import free_port

# kinds whose fixture starts a real server (the integration marker)
SERVERS = {"nginx", "sagemaker"}
# routes a kind's real server here cannot carry, with the reason
UNTESTABLE = {("sagemaker", "shadow"): "moto does not implement shadow production variants"}


def _file(request, tmp_path) -> Router:
    return load("routers", "file", "file")(name="bc", path=str(tmp_path / "route.json"),
                                            upstreams={"blue": "http://127.0.0.1:1", "green": "http://127.0.0.1:2"})


def _nginx(request, tmp_path) -> Router:
    conf = tmp_path / "bc.conf"
    settings = {"config": str(conf), "listen": f"127.0.0.1:{free_port()}",
                "upstreams": {"blue": "127.0.0.1:1", "green": "127.0.0.1:2"}}
    plugin = load("routers", "nginx", "nginx")
    conf.write_text(plugin(name="bc", **settings).render(Route(stable="blue"))[0])  # what an operator sets up once
    nginx = request.getfixturevalue("nginx_factory")(f"    include {conf};\n")
    return plugin(name="bc", main_config=str(nginx.conf_path), prefix=str(nginx.prefix), **settings)


def _sagemaker(request, tmp_path) -> Router:
    server = request.getfixturevalue("s3_server")
    monkeypatch = request.getfixturevalue("monkeypatch")
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(key, value)
    sm, tag = server.client("sagemaker"), uuid.uuid4().hex[:8]
    variants = []
    for slot, weight in (("blue", 1.0), ("green", 0.0)):
        sm.create_model(ModelName=f"{slot}-{tag}", ExecutionRoleArn="arn:aws:iam::123456789012:role/sm",
                        PrimaryContainer={"Image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/bc:1"})
        variants.append({"VariantName": slot, "ModelName": f"{slot}-{tag}", "InitialInstanceCount": 1,
                         "InstanceType": "ml.m5.large", "InitialVariantWeight": weight})
    sm.create_endpoint_config(EndpointConfigName=f"cfg-{tag}", ProductionVariants=variants)
    sm.create_endpoint(EndpointName=f"bc-{tag}", EndpointConfigName=f"cfg-{tag}")
    return load("routers", "sagemaker", "sagemaker")(name="bc", endpoint=f"bc-{tag}",
                                                      endpoint_url=server.endpoint_url, region="us-east-1")


FIXTURES = {"file": _file, "nginx": _nginx, "sagemaker": _sagemaker}


@pytest.fixture(params=[pytest.param(k, marks=pytest.mark.integration) if k in SERVERS else k
                        for k in installed("routers")])
def kind(request) -> str:
    return request.param


@pytest.fixture
def router(kind, request, tmp_path) -> Router:
    if kind not in FIXTURES:
        pytest.fail(f"router kind {kind!r} is installed but has no contract fixture in {__file__}")
    return FIXTURES[kind](request, tmp_path)


def test_the_plugin_is_named_and_has_strict_settings(kind):
    plugin = load("routers", kind, kind)
    assert issubclass(plugin, Router) and plugin.name == kind
    assert issubclass(plugin.Settings, Router.Settings) and plugin.supports
    with pytest.raises(ValidationError):
        plugin.Settings.model_validate({"no_such_key": 1})


def test_two_slots(router):
    assert sorted(router.slots()) == ["blue", "green"]


ROUTES = {
    "bluegreen": [Route(stable="blue", candidate="green"), Route(stable="green", candidate="blue")],
    "canary": [Route(stable="blue", candidate="green", weight=25), Route(stable="blue", candidate="green", weight=100)],
    "shadow": [Route(stable="blue", candidate="green", mirror=True)],
}


@pytest.mark.parametrize("strategy", sorted(ROUTES))
def test_an_applied_route_is_live(kind, router, strategy):
    if strategy not in router.supports:
        pytest.skip(f"{kind} does not carry {strategy}")
    if (kind, strategy) in UNTESTABLE:
        pytest.skip(UNTESTABLE[kind, strategy])
    for route in ROUTES[strategy]:
        router.apply(route)
        assert route.same_as(router.live()), (route, router.live())
    router.clear("blue")
    assert Route(stable="blue").same_as(router.live())


def test_a_route_naming_another_slot_is_refused_and_changes_nothing(router):
    router.apply(Route(stable="blue", candidate="green", weight=10))
    with pytest.raises(UsageError, match="slot 'purple'"):
        router.apply(Route(stable="blue", candidate="purple", weight=50))
    assert Route(stable="blue", candidate="green", weight=10).same_as(router.live())
