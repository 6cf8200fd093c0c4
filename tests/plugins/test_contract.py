"""What every installed plugin of every group promises (mlship/plugins.py): registered under its
own `name`, a concrete subclass of its interface, strict pydantic Settings. The behaviour of each
interface is tested per kind against real services in tests/targets/test_contract.py and
tests/rollout/routers/test_contract.py; the image builders' builds in tests/images/."""

from __future__ import annotations

import inspect

import pytest

from mlship.errors import UsageError
from mlship.plugins import GROUPS, PluginSettings, installed, load


def interface(group: str) -> type:
    from mlship.deploy.base import Runtime
    from mlship.images.builders import ImageBuilder
    from mlship.rollout.routers import Router
    from mlship.targets.base import Target

    return {"targets": Target, "routers": Router, "builders": ImageBuilder, "runtimes": Runtime}[group]


PLUGINS = [(group, name) for group in GROUPS for name in installed(group)]


@pytest.mark.parametrize("group,name", PLUGINS)
def test_every_plugin_keeps_the_interface(group, name):
    plugin = load(group, name, name)
    assert issubclass(plugin, interface(group)) and not inspect.isabstract(plugin)
    assert plugin.name == name
    assert issubclass(plugin.Settings, interface(group).Settings)
    assert issubclass(plugin.Settings, PluginSettings) and plugin.Settings.model_config["extra"] == "forbid"


def test_the_built_in_plugins_are_registered_like_any_other():
    assert installed("targets") == ["az", "file", "gs", "registry", "s3"]
    assert installed("routers") == ["file", "nginx", "sagemaker"]
    assert installed("builders") == ["docker", "oci"]
    assert installed("runtimes") == ["docker", "sagemaker"]


@pytest.mark.parametrize("group", sorted(GROUPS))
def test_an_unknown_name_names_the_installed_ones(group):
    with pytest.raises(UsageError) as info:
        load(group, "nope", "somewhere")
    line = info.value.one_line()
    assert line.startswith(f"somewhere: unknown {GROUPS[group][1]} 'nope'")
    assert all(name in line for name in installed(group))


def test_a_plugin_whose_dependency_is_missing_says_what_to_install(tmp_path, monkeypatch):
    import importlib.metadata
    import sys

    from mlship.errors import MissingExtraError
    from mlship.plugins import _entries

    (tmp_path / "needs_boto.py").write_text("import boto3_not_installed_here\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    entry = importlib.metadata.EntryPoint(name="needy", value="needs_boto:Target", group="mlship.targets.v1")
    monkeypatch.setitem(_entries("targets"), "needy", entry)
    with pytest.raises(MissingExtraError, match="needy.*boto3_not_installed_here"):
        load("targets", "needy", "needy://x")
    assert "needs_boto" not in sys.modules
