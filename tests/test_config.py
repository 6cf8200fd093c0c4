"""mlship.yaml: validation errors name file and field; precedence; schema; show."""

from __future__ import annotations

import json

import pytest

from mlship.config import load_config
from mlship.errors import ConfigError
from tests.support import MODEL, run, run_process


def write(tmp_path, text):
    path = tmp_path / "mlship.yaml"
    path.write_text(text)
    return path


def test_defaults_without_a_file(tmp_path):
    cfg = load_config(None, environ={}, cwd=tmp_path)
    assert cfg.source == "defaults"
    assert cfg.rollout.steps == [5, 25, 50, 100]
    assert cfg.monitoring.drift_share == 0.5


def test_precedence_flag_over_env_over_file(tmp_path):
    path = write(tmp_path, "version: 1.0.0\ncheck: {tolerance: 0.5, batch_size: 8}\n")
    cfg = load_config(path, environ={"MLSHIP_CHECK__TOLERANCE": "0.25", "MLSHIP_VERSION": "2.0.0"},
                      overrides={"check.tolerance": 0.125, "check.batch_size": None})
    assert cfg.check.tolerance == 0.125  # flag
    assert cfg.version == "2.0.0"  # env beats file
    assert cfg.check.batch_size == 8  # unset flag does not mask the file


def test_env_lists_and_global_variables_are_not_config(tmp_path):
    cfg = load_config(None, environ={"MLSHIP_ROLLOUT__STEPS": "[10, 100]", "MLSHIP_JSON": "1",
                                     "MLSHIP_REQUIRE_SERVICES": "1"}, cwd=tmp_path)
    assert cfg.rollout.steps == [10, 100]


def test_relative_paths_resolve_against_the_config_file(tmp_path):
    (tmp_path / "proj").mkdir()
    path = write(tmp_path / "proj", "model: models/m.onnx\n")
    cfg = load_config(path, environ={})
    assert cfg.resolve(cfg.model) == (tmp_path / "proj" / "models" / "m.onnx").resolve()


def test_targets_and_routers_are_chosen_by_type(tmp_path):
    path = write(tmp_path, "targets:\n  cloud: {type: s3, url: s3://models/x, region: eu-west-1}\n"
                           "  nfs: {type: file, url: file:///mnt/models}\n"
                           "rollout:\n  router: {type: nginx, config: /etc/nginx/conf.d/x.conf, upstreams: {a: \"h:1\", b: \"h:2\"}}\n")
    cfg = load_config(path, environ={})
    assert type(cfg.targets["cloud"]).__name__ == "S3Target" and cfg.targets["cloud"].region == "eu-west-1"
    assert cfg.targets["nfs"].url == "file:///mnt/models"
    assert cfg.rollout.router.type == "nginx"


@pytest.mark.parametrize("text,where", [
    ("build:\n  imag: {}\n", "build.imag: unknown key"),
    ("rollout:\n  steps: [5, abc]\n", "rollout.steps.1"),
    ("rollout:\n  steps: [50, 5]\n", "rollout.steps: must be increasing"),
    ("targets:\n  cloud: {type: ftp, url: x}\n", "targets.cloud.type: unknown target type; installed: az, file, gs, registry, s3"),
    ("targets:\n  cloud: {type: s3, url: http://x}\n", "targets.cloud.url: must look like s3://"),
    ("targets:\n  cloud: {type: s3, url: s3://x, regoin: eu}\n", "targets.cloud.regoin: unknown key"),
    ("rollout:\n  router: {type: istio}\n", "rollout.router.type: unknown router type; installed: file, nginx, sagemaker"),
    ("rollout:\n  router: {type: nginx, config: x}\n", "rollout.router.upstreams: Field required"),
    ("monitoring: {drift_share: 2}\n", "monitoring.drift_share"),
])
def test_invalid_values_name_the_file_and_the_field(tmp_path, text, where):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    line = info.value.one_line()
    assert line.startswith(f"{path}: ")
    assert where in line
    assert "\n" not in line


def test_invalid_env_value_names_the_variable(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_config(None, environ={"MLSHIP_CHECK__BATCH_SIZE": "many"}, cwd=tmp_path)
    assert info.value.one_line().startswith("MLSHIP_CHECK__BATCH_SIZE: check.batch_size")


def test_yaml_syntax_error_names_line_and_column(tmp_path):
    path = write(tmp_path, "name: x\nrollout:\n  steps: [5, 25\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    assert f"{path}:4:1: invalid YAML" in info.value.one_line() or f"{path}:3:" in info.value.one_line()


def test_top_level_must_be_a_mapping(tmp_path):
    path = write(tmp_path, "- a\n- b\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(path, environ={})


def test_explicit_config_must_exist(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml", environ={})


def test_invalid_config_through_the_cli_is_one_line_exit_2(tmp_path):
    write(tmp_path, "name: x\ncheck: {tolerance: -1}\n")
    result = run_process("check", str(MODEL), cwd=tmp_path)
    assert result.code == 2
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert "mlship.yaml: check.tolerance" in result.stderr


def test_config_schema_is_json_schema_with_descriptions():
    result = run("config", "schema")
    schema = json.loads(result.stdout)
    assert result.code == 0
    assert schema["additionalProperties"] is False
    assert "Path to the ONNX model" in schema["properties"]["model"]["description"]
    assert "S3Target" in schema["$defs"] and schema["$defs"]["S3Target"]["additionalProperties"] is False
    # Sections are assembled from the installed plugins' Settings, chosen by `type`.
    assert set(schema["properties"]["targets"]["additionalProperties"]["discriminator"]["mapping"]) == {
        "az", "file", "gs", "registry", "s3"}
    assert "region" in schema["$defs"]["S3Target"]["properties"]
    assert {"NginxRouter", "SageMakerRouter", "FileRouter"} <= set(schema["$defs"])


def test_config_show_prints_effective_values(tmp_path):
    write(tmp_path, "name: readmission\nversion: 1.4.0\n")
    result = run_process("--json", "config", "show", cwd=tmp_path, env={"MLSHIP_VERSION": "1.5.0"})
    doc = json.loads(result.stdout)
    assert doc["config"]["name"] == "readmission"
    assert doc["config"]["version"] == "1.5.0"
    assert doc["source"].endswith("mlship.yaml")
    human = run_process("config", "show", cwd=tmp_path)
    assert "name: readmission" in human.stdout and "steps:" in human.stdout


def test_check_takes_model_and_thresholds_from_the_config(tmp_path):
    write(tmp_path, f"model: {MODEL}\nsample: {MODEL.parent / 'sample.csv'}\n"
                    "check: {labels: label, min_metric: {accuracy: 0.999}}\n")
    result = run_process("--json", "check", cwd=tmp_path)
    assert result.code == 4
    doc = json.loads(result.stdout)
    assert doc["quality"]["metrics"]["accuracy"] < 0.999
    # A flag beats the file.
    assert run_process("check", "--min-metric", "accuracy=0.5", cwd=tmp_path).code == 0
