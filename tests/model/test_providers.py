"""Execution providers: --provider / runtime.providers in check, predict and edge run (serve: tests/serve)."""

from __future__ import annotations

import onnxruntime as ort
import pytest

from mlship.errors import UsageError
from mlship.model.providers import PROVIDERS, ProviderRequest, parse_providers, session_providers
from mlship.model.runner import Runner
from tests.support import MODEL, SAMPLE, run

AVAILABLE = ort.get_available_providers()
# A provider this onnxruntime does not offer (the tests run on a CPU build).
ABSENT = next(name for name in ("cuda", "tensorrt", "coreml", "openvino") if PROVIDERS[name] not in AVAILABLE)


def test_names_come_as_a_comma_list_or_repeated_in_order_of_preference():
    assert parse_providers(["cuda,cpu"]) == ["cuda", "cpu"]
    assert parse_providers(["TensorRT", "cuda", "cpu", "cuda"]) == ["tensorrt", "cuda", "cpu"]
    with pytest.raises(UsageError) as caught:
        parse_providers(["gpu"])
    assert caught.value.exit_code == 2 and "'gpu'" in caught.value.message and "openvino" in caught.value.hint


def test_cpu_is_always_the_last_resort_and_an_absent_provider_is_refused_or_dropped():
    assert session_providers(ProviderRequest(providers=["cpu"]), AVAILABLE) == (["CPUExecutionProvider"], [])
    with pytest.raises(UsageError) as caught:
        session_providers(ProviderRequest(providers=[ABSENT, "cpu"], source="--provider"), AVAILABLE)
    assert ABSENT in caught.value.message and "CPUExecutionProvider" in caught.value.message
    assert session_providers(ProviderRequest(providers=[ABSENT], fallback=True), AVAILABLE) == (
        ["CPUExecutionProvider"], [ABSENT])


def test_the_runner_reports_what_its_session_runs_on():
    runner = Runner.from_path(MODEL, providers=ProviderRequest(providers=["cpu"]))
    assert runner.providers.chosen == "CPUExecutionProvider" == runner.session.get_providers()[0]
    assert runner.providers.requested == ["cpu"] and runner.providers.unavailable == []
    assert runner.providers.available == AVAILABLE


def test_check_reports_the_provider_in_json_and_in_the_terminal():
    doc = run("check", str(MODEL), "--provider", "cpu", "--json").json()
    assert doc["providers"]["chosen"] == "CPUExecutionProvider" and doc["providers"]["requested"] == ["cpu"]
    item = next(c for c in doc["checks"] if c["name"] == "execution provider")
    assert item["status"] == "pass"
    text = run("check", str(MODEL)).stdout
    assert "execution provider: CPUExecutionProvider" in text


def test_an_unavailable_provider_exits_2_naming_it_and_what_onnxruntime_offers():
    result = run("check", str(MODEL), "--provider", f"{ABSENT},cpu")
    assert result.code == 2 and result.stdout == ""
    line = result.stderr.strip()
    assert len(line.splitlines()) == 1
    assert f"{ABSENT} ({PROVIDERS[ABSENT]})" in line and "--provider" in line
    assert all(name in line for name in AVAILABLE) and "--provider-fallback" in line


def test_fallback_runs_on_cpu_and_says_so():
    result = run("check", str(MODEL), "--provider", ABSENT, "--provider-fallback", "--json")
    assert result.code == 0
    doc = result.json()
    assert doc["providers"]["chosen"] == "CPUExecutionProvider" and doc["providers"]["unavailable"] == [ABSENT]
    item = next(c for c in doc["checks"] if c["name"] == "execution provider")
    assert item["status"] == "warn" and f"{ABSENT} unavailable here" in item["detail"]
    assert doc["passed"] is True


def test_runtime_providers_in_mlship_yaml(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mlship.yaml").write_text(f"model: {MODEL}\nruntime:\n  providers: [{ABSENT}, cpu]\n")
    refused = run("check")
    assert refused.code == 2 and f"runtime.providers in {tmp_path / 'mlship.yaml'}" in refused.stderr
    (tmp_path / "mlship.yaml").write_text(f"model: {MODEL}\nruntime:\n  providers: [{ABSENT}, cpu]\n"
                                          "  provider_fallback: true\n")
    assert run("check", "--json").json()["providers"]["unavailable"] == [ABSENT]
    # The flag wins over the file, both ways.
    assert run("check", "--no-provider-fallback").code == 2
    assert run("check", "--provider", "cpu", "--json").json()["providers"]["unavailable"] == []
    (tmp_path / "mlship.yaml").write_text("runtime:\n  providers: [gpu]\n")
    bad = run("check", str(MODEL))
    assert bad.code == 2 and "runtime.providers" in bad.stderr


def test_predict_refuses_before_writing_and_falls_back_when_allowed(tmp_path):
    out = tmp_path / "scores.csv"
    refused = run("predict", str(MODEL), "-i", str(SAMPLE), "-o", str(out), "--provider", ABSENT)
    assert refused.code == 2 and ABSENT in refused.stderr
    assert list(tmp_path.iterdir()) == []
    done = run("predict", str(MODEL), "-i", str(SAMPLE), "-o", str(out), "--provider", ABSENT, "--provider-fallback")
    assert done.code == 0 and out.exists()
    assert f"execution provider {ABSENT} not available here: running on CPUExecutionProvider" in done.stderr


def test_edge_run_refuses_an_unavailable_provider_before_binding(tmp_path, monkeypatch):
    from tests.edge.test_device import release

    monkeypatch.chdir(tmp_path)
    release(tmp_path, f"file://{tmp_path / 'store'}", "1.0.0")
    device = tmp_path / "device"
    assert run("edge", "sync", "--from", f"file://{tmp_path / 'store'}", "--name", "bc", "--dir", str(device)).code == 0
    result = run("edge", "run", "--dir", str(device), "--port", "1", "--provider", ABSENT)
    assert result.code == 2 and f"execution provider {ABSENT}" in result.stderr
