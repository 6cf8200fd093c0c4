"""`mlship serve --provider`: /v2/models/NAME says what the model runs on."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.model.test_providers import ABSENT
from tests.serve.server_process import start_server
from tests.support import MODEL


def test_metadata_names_the_provider_and_its_fallbacks(tmp_path):
    server = start_server(MODEL, tmp_path, "--name", "bc", "--provider", "cpu", log=False)
    try:
        meta = json.loads(server.get("/v2/models/bc").body)
    finally:
        assert server.terminate() == 0
    assert meta["parameters"]["execution_provider"] == "CPUExecutionProvider"
    providers = meta["parameters"]["providers"]
    assert providers["requested"] == ["cpu"] and providers["fallbacks"] == [] and providers["unavailable"] == []


def test_fallback_serves_on_cpu_and_says_so(tmp_path):
    server = start_server(MODEL, tmp_path, "--name", "bc", "--provider", f"{ABSENT},cpu", "--provider-fallback",
                          log=False)
    try:
        meta = json.loads(server.get("/v2/models/bc").body)
    finally:
        assert server.terminate() == 0
    assert meta["parameters"]["execution_provider"] == "CPUExecutionProvider"
    assert meta["parameters"]["providers"]["unavailable"] == [ABSENT]
    assert f"warning: execution provider {ABSENT} not available here" in server.stderr_path.read_text()


def test_an_unavailable_provider_exits_2_before_listening(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "mlship", "serve", str(MODEL), "--port", "0", "--provider", ABSENT],
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert proc.returncode == 2 and proc.stdout == ""
    assert f"execution provider {ABSENT} (" in proc.stderr and "serving" not in proc.stderr
