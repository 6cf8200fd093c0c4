"""mlship.yaml's `deploy:` section: the runtime by name, each runtime's keys checked by its own Settings."""

from __future__ import annotations

import pytest

from mlship.config import config_schema, load_config
from mlship.deploy.docker import DockerRuntime
from mlship.errors import ConfigError, UsageError


def config(tmp_path, text):
    (tmp_path / "mlship.yaml").write_text(text)
    return load_config(tmp_path / "mlship.yaml", environ={})


@pytest.mark.parametrize("text,where", [
    ("deploy: {runtime: dockr}", "deploy.runtime: unknown deploy runtime; installed: docker, sagemaker (got 'dockr')"),
    ("deploy: {dockr: {host: x}}", "deploy.dockr: unknown deploy runtime; installed: docker, sagemaker"),
    ("deploy: {docker: {restart: sometimes}}", "deploy.docker.restart: Input should be"),
    ("deploy: {sagemaker: {endpoint: e}}", "deploy.sagemaker.role_arn: Field required"),
    ("deploy: {sagemaker: {role_arn: r, wait_s: 0}}", "deploy.sagemaker.wait_s: Input should be greater than 0"),
    ("rollout: {router: {type: sagemaker, endpoint: e, cloudwatch: {period: 60}}}",
     "rollout.router.cloudwatch.period: unknown key"),
    ("deploy: {docker: {hots: unix:///x}}", "deploy.docker.hots: unknown key"),
    ("deploy: {docker: {mounts: ['/a']}}", "deploy.docker.mounts: '/a': expected SOURCE:/TARGET"),
    ("deploy: {docker: {mounts: ['/a:relative']}}", "deploy.docker.mounts"),
    ("deploy: {docker: {memory: lots}}", "deploy.docker.memory: expected a size"),
    ("deploy: {docker: {tls: {cert: c.pem}}}", "deploy.docker.tls.key: Field required"),
    ("deploy: {docker: {ready_timeout_s: 0}}", "deploy.docker.ready_timeout_s"),
])
def test_bad_sections_name_the_path(tmp_path, text, where):
    with pytest.raises(ConfigError) as info:
        config(tmp_path, text)
    assert where in info.value.one_line()


def test_a_section_is_the_runtimes_settings_and_defaults_fill_a_missing_one(tmp_path):
    cfg = config(tmp_path, "deploy:\n  runtime: docker\n  docker: {host: 'tcp://127.0.0.1:2376', memory: 2g}\n")
    settings = cfg.deploy.settings("docker")
    assert isinstance(settings, DockerRuntime.Settings)
    assert (settings.host, settings.memory, settings.restart) == ("tcp://127.0.0.1:2376", "2g", "unless-stopped")
    assert config(tmp_path, "deploy: {runtime: docker}").deploy.settings("docker").host is None


def test_environment_variables_reach_a_runtime_section(tmp_path):
    (tmp_path / "mlship.yaml").write_text("deploy: {runtime: docker}\n")
    cfg = load_config(tmp_path / "mlship.yaml", environ={"MLSHIP_DEPLOY__DOCKER__HOST": "ssh://ml@onprem-1"})
    assert cfg.deploy.settings("docker").host == "ssh://ml@onprem-1"


def test_the_schema_lists_the_installed_runtimes_sections():
    deploy = config_schema()["$defs"]["DeployConfig"]
    assert deploy["additionalProperties"] is False
    assert "docker" in deploy["properties"] and "runtime" in deploy["properties"]
    assert "Settings of the docker runtime" in deploy["properties"]["docker"]["description"]


def test_no_runtime_is_a_usage_error_naming_the_key(tmp_path):
    from mlship.deploy.service import open_runtime

    with pytest.raises(UsageError, match="no deploy runtime configured"):
        open_runtime(config(tmp_path, "name: m\n"), "m")


def test_tls_files_are_relative_to_mlship_yaml_and_must_exist(tmp_path):
    from mlship.deploy.service import open_runtime

    cfg = config(tmp_path, "deploy:\n  runtime: docker\n  docker: {host: 'tcp://127.0.0.1:1', "
                           "tls: {ca: certs/ca.pem, cert: certs/c.pem, key: certs/k.pem}}\n")
    runtime = open_runtime(cfg, "m")
    assert runtime.settings.tls.cert == str(tmp_path / "certs" / "c.pem")
    with pytest.raises(UsageError, match=f"deploy.docker.tls.ca: no file {tmp_path / 'certs' / 'ca.pem'}"):
        runtime.placements()
