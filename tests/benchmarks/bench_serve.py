"""Benchmark: `mlship serve` against MLflow's server and raw onnxruntime.

Requests/s and p50/p99 latency at concurrency 1, 16 and 64 on the
breast-cancer example, one row per request, rotating over the 171 sample
rows. Load comes from wrk (Debian package `wrk`) over keep-alive loopback
connections; raw onnxruntime is timed in-process with as many threads.

Targets (issue 3, 2 cores): >= 3x MLflow's requests/s at concurrency 64, and
p50 <= 2 ms at concurrency 1.

    python tests/benchmarks/bench_serve.py [--duration 10] [--mlflow-venv DIR]

MLflow goes in its own virtual environment (not mlship's):
    python3 -m venv /work/peers/mlflow-venv && /work/peers/mlflow-venv/bin/pip install mlflow onnx onnxruntime
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.harness.ports import free_port, wait_until  # noqa: E402
from tests.harness.services import http_request  # noqa: E402
from tests.models import sample_matrix  # noqa: E402

MODEL = ROOT / "examples" / "breast-cancer" / "model.onnx"
LEVELS = (1, 16, 64)


def wrk_script(bodies: list[str], path: Path) -> Path:
    entries = ",\n".join("[==[" + b + "]==]" for b in bodies)  # long brackets: JSON has "]]"
    path.write_text(
        'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
        f"local bodies = {{\n{entries}\n}}\nlocal i = 0\n"
        "request = function()\n  i = i % #bodies + 1\n  return wrk.format(nil, nil, nil, bodies[i])\nend\n"
    )
    return path


def run_wrk(url: str, script: Path, connections: int, seconds: int) -> dict[str, float]:
    threads = min(connections, 2)
    out = subprocess.run(["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s", "--latency",
                          "-s", str(script), url], capture_output=True, text=True, check=True).stdout
    if "Non-2xx" in out:
        raise RuntimeError(f"non-2xx answers from {url}:\n{out}")
    return {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
            "p50_ms": _ms(re.search(r"\s50%\s+([\d.]+\w+)", out).group(1)),
            "p99_ms": _ms(re.search(r"\s99%\s+([\d.]+\w+)", out).group(1))}


def _ms(text: str) -> float:
    value, unit = re.match(r"([\d.]+)(\w+)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def raw_onnxruntime(X: np.ndarray, connections: int, seconds: float) -> dict[str, float]:
    """session.run on one row per call from `connections` threads: the upper bound."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(MODEL), providers=["CPUExecutionProvider"])
    rows = [X[i:i + 1] for i in range(len(X))]
    latencies: list[list[float]] = [[] for _ in range(connections)]
    stop = time.perf_counter() + seconds

    def worker(k: int) -> None:
        i = k
        while time.perf_counter() < stop:
            start = time.perf_counter()
            session.run(None, {"X": rows[i % len(rows)]})
            latencies[k].append(time.perf_counter() - start)
            i += 1

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(connections)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    all_ms = np.concatenate([np.array(lat) for lat in latencies]) * 1000
    return {"rps": len(all_ms) / elapsed, "p50_ms": float(np.percentile(all_ms, 50)),
            "p99_ms": float(np.percentile(all_ms, 99))}


class Server:
    def __init__(self, cmd: list[str], ready_url: str, env: dict[str, str] | None = None) -> None:
        self.log = tempfile.NamedTemporaryFile(prefix="bench-", suffix=".log", delete=False)
        self.process = subprocess.Popen(cmd, stdout=self.log, stderr=self.log, env=env, start_new_session=True)
        wait_until(lambda: http_request("GET", ready_url, timeout=2).status in (200, 405), 120, cmd[0],
                   log=self.log.name, process=self.process)

    def stop(self) -> None:
        # The process group we started (MLflow runs uvicorn as a child).
        os.killpg(self.process.pid, signal.SIGTERM)
        self.process.wait(60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per measurement")
    parser.add_argument("--mlflow-venv", default="/work/peers/mlflow-venv")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is missing: apt-get install wrk")
    X, _, _ = sample_matrix()
    work = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    oip = wrk_script([json.dumps({"inputs": [{"name": "X", "shape": [1, 30], "datatype": "FP32",
                                              "data": row.tolist()}]}) for row in X], work / "oip.lua")
    mlflow_body = wrk_script([json.dumps({"inputs": {"X": [row.tolist()]}}) for row in X], work / "mlflow.lua")
    results: dict[str, dict[int, dict[str, float]]] = {}

    results["onnxruntime in-process"] = {c: raw_onnxruntime(X, c, args.duration) for c in LEVELS}

    port = free_port()
    mlship = Server([sys.executable, "-m", "mlship", "serve", str(MODEL), "--port", str(port),
                     "--log-dir", str(work / "logs")], f"http://127.0.0.1:{port}/v2/health/ready")
    try:
        url = f"http://127.0.0.1:{port}/v2/models/breast-cancer/infer"
        results["mlship serve"] = {c: run_wrk(url, oip, c, args.duration) for c in LEVELS}
    finally:
        mlship.stop()

    venv = Path(args.mlflow_venv)
    if (venv / "bin" / "mlflow").exists():
        model_dir = work / "mlflow-model"
        subprocess.run([str(venv / "bin" / "python"), "-c",
                        f"import onnx, mlflow.onnx; mlflow.onnx.save_model(onnx.load({str(MODEL)!r}), "
                        f"{str(model_dir)!r})"], check=True, capture_output=True)
        port = free_port()
        env = {**os.environ, "PATH": f"{venv / 'bin'}:{os.environ['PATH']}", "DO_NOT_TRACK": "1",
               "MLFLOW_DISABLE_TELEMETRY": "true"}
        mlflow = Server([str(venv / "bin" / "mlflow"), "models", "serve", "-m", str(model_dir), "--env-manager",
                         "local", "-h", "127.0.0.1", "-p", str(port)], f"http://127.0.0.1:{port}/ping", env=env)
        try:
            url = f"http://127.0.0.1:{port}/invocations"
            results["MLflow models serve"] = {c: run_wrk(url, mlflow_body, c, args.duration) for c in LEVELS}
        finally:
            mlflow.stop()
    else:
        print(f"MLflow not found in {venv}: see this script's docstring", file=sys.stderr)

    print(f"{'server':26s} {'conc':>4s} {'req/s':>10s} {'p50 ms':>8s} {'p99 ms':>8s}")
    for name, by_level in results.items():
        for c, r in by_level.items():
            print(f"{name:26s} {c:4d} {r['rps']:10.0f} {r['p50_ms']:8.3f} {r['p99_ms']:8.3f}")
    ours = results["mlship serve"]
    if "MLflow models serve" in results:
        ratio = ours[64]["rps"] / results["MLflow models serve"][64]["rps"]
        print(f"mlship / MLflow req/s at 64: {ratio:.1f}x (target >= 3x): {'met' if ratio >= 3 else 'MISSED'}")
    print(f"mlship p50 at 1: {ours[1]['p50_ms']:.3f} ms (target <= 2 ms): "
          f"{'met' if ours[1]['p50_ms'] <= 2 else 'MISSED'}")
    print(json.dumps({k: {str(c): {m: round(v, 3) for m, v in r.items()} for c, r in by.items()}
                      for k, by in results.items()}))


if __name__ == "__main__":
    main()
