"""`mlship serve` in a subprocess on a free loopback port, for tests and benchmarks."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.harness.ports import free_port, wait_until
from tests.harness.services import HttpResponse, http_request


@dataclass
class ServerProcess:
    url: str
    port: int
    process: subprocess.Popen
    stderr_path: Path
    log_dir: Path | None

    def get(self, path: str, **headers: str) -> HttpResponse:
        return http_request("GET", self.url + path, headers=headers)

    def post(self, path: str, body: Any, **headers: str) -> HttpResponse:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        return http_request("POST", self.url + path, data=data,
                            headers={"Content-Type": "application/json", **headers}, timeout=30)

    def terminate(self, timeout: float = 30) -> int:
        """SIGTERM and wait: the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def log_records(self) -> list[dict[str, Any]]:
        assert self.log_dir is not None
        return [json.loads(line) for path in sorted(self.log_dir.glob("*.jsonl"))
                for line in path.read_text().splitlines() if line]

    def metrics(self) -> str:
        return self.get("/metrics").body.decode()


def start_server(model: Path | str, tmp_path: Path, *args: str, log: bool = True) -> ServerProcess:
    """Start `python -m mlship serve MODEL --port P ARGS` and wait until ready."""
    port = free_port()
    tmp_path.mkdir(parents=True, exist_ok=True)
    log_dir = tmp_path / "logs" if log else None
    stderr_path = tmp_path / f"serve-{port}.stderr"
    cmd = [sys.executable, "-m", "mlship", "serve", str(model), "--port", str(port), *args]
    if log_dir is not None:
        cmd += ["--log-dir", str(log_dir)]
    with stderr_path.open("wb") as err:
        process = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, stdin=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: http_request("GET", url + "/v2/health/ready", timeout=2).status == 200, 30,
                   "mlship serve", log=stderr_path, process=process)
    except BaseException:
        process.kill()
        process.wait()
        raise
    return ServerProcess(url, port, process, stderr_path, log_dir)
