"""Execution providers: `--provider`, `--provider-fallback`, `runtime:` in mlship.yaml and
MLSHIP_RUNTIME__* on check, predict and serve, fed empty lists, comma soup, case,
duplicates and shell text.

Before the fix `--provider ""` ran on the default silently, `[cpu, cpu]` printed
onnxruntime's two-line UserWarning, MLSHIP_RUNTIME__PROVIDERS=cuda,cpu (the flag's
own form) was refused as "not a valid list", and a provider from the environment was
blamed on "runtime.providers in defaults".
"""

from __future__ import annotations

import pytest

from tests.adversarial.files import assert_one_line_error
from tests.support import MODEL, SAMPLE, run, run_process

CHECK = ("check", str(MODEL), "--sample", str(SAMPLE))


@pytest.mark.parametrize("command", [CHECK, ("predict", str(MODEL), "--input", str(SAMPLE), "--output", "p.csv")])
@pytest.mark.parametrize("value", ["", ",", " , ,"])
def test_an_empty_provider_list_is_exit_2(tmp_path, monkeypatch, command, value):
    monkeypatch.chdir(tmp_path)
    assert_one_line_error(2, run(*command, "--provider", value), "--provider", "names no execution provider")
    assert not (tmp_path / "p.csv").exists()


@pytest.mark.parametrize("value,shown", [("cpu;rm -rf ~", "cpu;rm -rf ~"), ("cpu cuda", "cpu cuda"),
                                         ("cpu\nx", "cpu\\nx"), ("CPUExecutionProvider", "cpuexecutionprovider")])
def test_unknown_provider_text_is_named_on_one_line(tmp_path, monkeypatch, value, shown):
    monkeypatch.chdir(tmp_path)
    assert_one_line_error(2, run(*CHECK, "--provider", value), shown, "unknown execution provider")


def test_mixed_case_repeated_and_comma_soup_run_on_cpu(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run("--json", *CHECK, "--provider", ",,CPU,, cpu", "--provider", "Cpu")
    assert result.code == 0, result.stderr
    assert result.json()["providers"]["requested"] == ["cpu"]


def test_a_repeated_provider_in_mlship_yaml_prints_no_onnxruntime_warning(tmp_path):
    (tmp_path / "mlship.yaml").write_text("runtime:\n  providers: [CPU, cpu, ' cpu ']\n")
    result = run_process("--json", *CHECK, cwd=tmp_path)
    assert result.code == 0, result.stderr
    assert "Duplicate provider" not in result.stderr and "UserWarning" not in result.stderr
    assert result.json()["providers"]["requested"] == ["cpu"]


@pytest.mark.parametrize("value", ["cuda,cpu", "CUDA", "[cuda, cpu]"])
def test_providers_from_the_environment_read_as_the_flag_and_are_named(tmp_path, value):
    result = run_process(*CHECK, env={"MLSHIP_RUNTIME__PROVIDERS": value}, cwd=tmp_path)
    assert_one_line_error(2, result, "cuda (CUDAExecutionProvider) not available here (from MLSHIP_RUNTIME__PROVIDERS)")
    fallback = run_process("--json", *CHECK, env={"MLSHIP_RUNTIME__PROVIDERS": value,
                                                 "MLSHIP_RUNTIME__PROVIDER_FALLBACK": "true"}, cwd=tmp_path)
    assert fallback.code == 0, fallback.stderr
    assert fallback.json()["providers"]["chosen"] == "CPUExecutionProvider"
    assert fallback.json()["providers"]["unavailable"] == ["cuda"]


@pytest.mark.parametrize("yaml_value,words", [("[]", ["runtime.providers", "at least 1"]),
                                              ("[null]", ["runtime.providers.0"]),
                                              ("'cpu,warp'", ["runtime.providers.1", "'warp'"]),
                                              ("{cpu: 1}", ["runtime.providers", "valid list"])])
def test_bad_runtime_providers_in_mlship_yaml(tmp_path, monkeypatch, yaml_value, words):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mlship.yaml").write_text(f"runtime:\n  providers: {yaml_value}\n")
    assert_one_line_error(2, run(*CHECK), "mlship.yaml", *words)


def test_the_flag_wins_over_mlship_yaml_and_the_environment(tmp_path):
    (tmp_path / "mlship.yaml").write_text("runtime:\n  providers: [tensorrt]\n")
    result = run_process("--json", *CHECK, "--provider", "cpu", env={"MLSHIP_RUNTIME__PROVIDERS": "cuda"},
                         cwd=tmp_path)
    assert result.code == 0, result.stderr
    assert result.json()["providers"]["requested"] == ["cpu"]
