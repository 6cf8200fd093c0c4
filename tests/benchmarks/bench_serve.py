"""Benchmark: `mlship serve` against its own HTTP ceiling and the peers.

The ceiling is a bare uvicorn + httptools + uvloop ASGI app (below) that
reads the body and answers a fixed 90-byte JSON: what the HTTP stack alone
carries on this machine. Beside it, in the same run:

- `mlship serve` on /v2 JSON, /v2 binary tensors and /predict, with the
  prediction log on and off (metrics are always on), and with --workers 2;
- MLflow's `mlflow models serve` (onnx flavour) and a BentoML service with its
  defaults (`bentoml.onnx`), each in its own virtual environment.

One row per request (the breast-cancer example, rotating over its 171 sample
rows), wrk over keep-alive loopback connections at concurrency 1, 16 and 64.
Every server runs for the whole benchmark, and the measurements alternate
(per round and concurrency: the bare app, then each other case), so a load
change on the shared machine hits all of them alike. Reported: median and
spread (min-max) of each figure over the rounds, and each case's ratio to
the bare app's figure of the same round and concurrency.

Also: the time from process start to the first ready health check, and the
resident memory of every process of each server.

Targets (issue 23; ratios to the bare app): /v2 JSON and /predict at c=64
>= 60% of its req/s with logging and metrics on, >= 70% with logging off;
p99 at c=64 <= 2x its p99; /v2 binary >= /v2 JSON; p50 at c=1 <= 1.5x its
p50. Issue 21: >= 3x BentoML's req/s at c=64 with p99 no worse; start to
ready <= 1 s.

    python tests/benchmarks/bench_serve.py [--duration 5] [--rounds 3] [--only REGEX] [--baseline-tree DIR]

Needs `apt-get install wrk`. The peers go in their own virtual environments:
    python3 -m venv /work/peers/mlflow-venv && /work/peers/mlflow-venv/bin/pip install mlflow onnx onnxruntime
    python3 -m venv /work/peers/bentoml-venv && /work/peers/bentoml-venv/bin/pip install bentoml onnx onnxruntime
Profile a running server with py-spy (`pip install py-spy`):
    py-spy record -o profile.svg --pid PID --duration 10 --nonblocking
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

MODEL = ROOT / "examples" / "breast-cancer" / "model.onnx"
LEVELS = (1, 16, 64)

# -- the ceiling: a bare ASGI app ------------------------------------------------

BARE_BODY = b'{"model_name":"breast-cancer","model_version":"1","outputs":[{"name":"label","data":[1]}]}'
assert len(BARE_BODY) == 90
_BARE_HEADERS = [(b"content-type", b"application/json"), (b"content-length", b"90")]


async def bare_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Read the whole body, answer the same 90 bytes: the HTTP stack's own cost."""
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    await send({"type": "http.response.start", "status": 200, "headers": _BARE_HEADERS})
    await send({"type": "http.response.body", "body": BARE_BODY})


def bare_command(port: int, workers: int = 1) -> list[str]:
    code = (f"import sys; sys.path.insert(0, {str(ROOT)!r}); import uvicorn; "
            f"uvicorn.run('tests.benchmarks.bench_serve:bare_app', host='127.0.0.1', port={port}, "
            f"http='httptools', loop='uvloop', lifespan='off', access_log=False, log_level='warning', "
            f"workers={workers})")
    return [sys.executable, "-c", code]


# -- request bodies ------------------------------------------------------------------


def lua_string(data: bytes) -> str:
    """A Lua string literal of any bytes (decimal escapes; long brackets would fold CR LF)."""
    return '"' + "".join(chr(b) if 32 <= b < 127 and b not in (34, 92) else f"\\{b:03d}" for b in data) + '"'


def wrk_script(bodies: list[bytes], path: Path, headers: dict[str, str] | None = None) -> Path:
    """A wrk script that POSTs the bodies in turn."""
    lines = ['wrk.method = "POST"']
    for key, value in {"Content-Type": "application/json", **(headers or {})}.items():
        lines.append(f'wrk.headers["{key}"] = "{value}"')
    lines.append("local bodies = {\n" + ",\n".join(lua_string(b) for b in bodies) + "\n}")
    lines.append("local i = 0\nrequest = function()\n  i = i % #bodies + 1\n"
                 "  return wrk.format(nil, nil, nil, bodies[i])\nend")
    path.write_text("\n".join(lines) + "\n")
    return path


def bodies(X: Any, names: list[str], work: Path) -> dict[str, Path]:
    """wrk scripts per request kind."""
    import numpy as np

    scripts = {
        "v2": wrk_script([json.dumps({"inputs": [{"name": "X", "shape": [1, 30], "datatype": "FP32",
                                                  "data": row.tolist()}]}).encode() for row in X], work / "v2.lua"),
        "predict": wrk_script([json.dumps({"instances": [dict(zip(names, row.tolist()))]}).encode() for row in X],
                              work / "predict.lua"),
        "mlflow": wrk_script([json.dumps({"inputs": {"X": [row.tolist()]}}).encode() for row in X],
                             work / "mlflow.lua"),
        "bentoml": wrk_script([json.dumps({"X": [row.tolist()]}).encode() for row in X], work / "bentoml.lua"),
    }
    header = json.dumps({"inputs": [{"name": "X", "shape": [1, 30], "datatype": "FP32",
                                     "parameters": {"binary_data_size": 120}}],
                         "parameters": {"binary_data_output": True}}).encode()
    binary = [header + np.ascontiguousarray(row, dtype="<f4").tobytes() for row in X]
    scripts["v2-binary"] = wrk_script(binary, work / "v2-binary.lua",
                                      {"Content-Type": "application/octet-stream",
                                       "Inference-Header-Content-Length": str(len(header))})
    return scripts


# -- load -------------------------------------------------------------------------


def run_wrk(url: str, script: Path, connections: int, seconds: int, server: "Server") -> dict[str, float]:
    """req/s, p50 and p99 from wrk, and the server's CPU time per request
    (all its processes): the cost that a loaded machine does not hide."""
    threads = min(connections, 2)
    cpu = server.cpu_s()
    out = subprocess.run(["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s", "--latency",
                          "--timeout", "10s", "-s", str(script), url], capture_output=True, text=True, check=True).stdout
    if "Non-2xx" in out:
        raise RuntimeError(f"errors from {url}:\n{out}")
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    return {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
            "p50_ms": _ms(re.search(r"\s50%\s+([\d.]+\w+)", out).group(1)),
            "p99_ms": _ms(re.search(r"\s99%\s+([\d.]+\w+)", out).group(1)),
            "cpu_us": (server.cpu_s() - cpu) / max(requests, 1) * 1e6,
            "socket_errors": sum(map(int, errors.groups())) if errors else 0}  # a slow peer's timeouts count


def _ms(text: str) -> float:
    value, unit = re.match(r"([\d.]+)(\w+)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


# -- servers ------------------------------------------------------------------------


def http_status(url: str) -> int | None:
    import http.client
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    try:
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=2)
        conn.request("GET", parts.path)
        status = conn.getresponse().status
        conn.close()
        return status
    except OSError:
        return None


class Server:
    """A server process (group) started now; `ready_s` is start to first ready health check."""

    def __init__(self, name: str, cmd: list[str], ready_url: str, env: dict[str, str] | None = None,
                 cwd: Path | None = None) -> None:
        self.name = name
        self.log = tempfile.NamedTemporaryFile(prefix="bench-serve-", suffix=".log", delete=False)
        started = time.perf_counter()
        self.process = subprocess.Popen(cmd, stdout=self.log, stderr=self.log, env=env, cwd=cwd,
                                        start_new_session=True)
        deadline = started + 180
        while http_status(ready_url) != 200:
            if self.process.poll() is not None or time.perf_counter() > deadline:
                self.stop()
                raise RuntimeError(f"{name} did not start; see {self.log.name}")
            time.sleep(0.005)
        self.ready_s = time.perf_counter() - started
        self.ready_cpu_s = self.cpu_s()  # what start-up costs, whatever else loads the machine

    def cpu_s(self) -> float:
        """CPU seconds (user + system) used so far by the group's processes."""
        total = 0
        for pid in group_pids(self.process.pid):
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
        return total / os.sysconf("SC_CLK_TCK")

    def rss_mb(self) -> list[float]:
        """Resident memory of each process in the group (MB), largest first."""
        sizes = []
        for pid in group_pids(self.process.pid):
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue
            match = re.search(r"VmRSS:\s+(\d+) kB", status)
            if match:
                sizes.append(int(match.group(1)) / 1024)
        return sorted(sizes, reverse=True)

    def stop(self) -> None:
        if self.process.poll() is None:
            strays = [pid for pid in group_pids(self.process.pid) if pid != self.process.pid]
            os.killpg(self.process.pid, signal.SIGTERM)  # the group we started (peers run children)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
            for pid in strays:  # descendants we started that left the group, if they outlived it
                try:
                    os.kill(pid, signal.SIGTERM)
                except OSError:
                    pass


def group_pids(root: int) -> list[int]:
    """The process and all its descendants (BentoML's workers leave its process group)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo += children.get(pid, [])
    return found


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def mlship_command(port: int, *args: str) -> list[str]:
    return [sys.executable, "-m", "mlship", "serve", str(MODEL), "--port", str(port), *args]


def mlflow_command(venv: Path, work: Path, port: int) -> tuple[list[str], dict[str, str]] | None:
    if not (venv / "bin" / "mlflow").exists():
        print(f"MLflow not found in {venv}: see this script's docstring", file=sys.stderr)
        return None
    model_dir = work / "mlflow-model"
    if not model_dir.exists():
        subprocess.run([str(venv / "bin" / "python"), "-c",
                        f"import onnx, mlflow.onnx; mlflow.onnx.save_model(onnx.load({str(MODEL)!r}), "
                        f"{str(model_dir)!r})"], check=True, capture_output=True)
    env = {**os.environ, "PATH": f"{venv / 'bin'}:{os.environ['PATH']}", "DO_NOT_TRACK": "1",
           "MLFLOW_DISABLE_TELEMETRY": "true"}
    return ([str(venv / "bin" / "mlflow"), "models", "serve", "-m", str(model_dir), "--env-manager", "local",
             "-h", "127.0.0.1", "-p", str(port)], env)


BENTO_SERVICE = '''\
import bentoml
import numpy as np


@bentoml.service
class BreastCancer:
    """The example model through bentoml.onnx, BentoML's defaults otherwise."""

    bento_model = bentoml.models.BentoModel("breast_cancer:latest")

    def __init__(self) -> None:
        self.session = bentoml.onnx.load_model(self.bento_model)
        self.outputs = [o.name for o in self.session.get_outputs()]

    @bentoml.api
    def predict(self, X: np.ndarray) -> dict:
        values = self.session.run(self.outputs, {"X": X.astype(np.float32)})
        return {name: value.tolist() for name, value in zip(self.outputs, values)}
'''


def bentoml_command(venv: Path, work: Path, port: int) -> tuple[list[str], dict[str, str]] | None:
    if not (venv / "bin" / "bentoml").exists():
        print(f"BentoML not found in {venv}: see this script's docstring", file=sys.stderr)
        return None
    env = {**os.environ, "PATH": f"{venv / 'bin'}:{os.environ['PATH']}", "BENTOML_HOME": str(work / "bentoml"),
           "BENTOML_DO_NOT_TRACK": "True", "DO_NOT_TRACK": "1"}
    env.pop("PYTHONPATH", None)
    service = work / "bento_service.py"
    if not service.exists():
        service.write_text(BENTO_SERVICE)
        subprocess.run([str(venv / "bin" / "python"), "-c",
                        f"import onnx, bentoml; bentoml.onnx.save_model('breast_cancer', onnx.load({str(MODEL)!r}))"],
                       check=True, capture_output=True, env=env)
    return ([str(venv / "bin" / "bentoml"), "serve", "bento_service:BreastCancer", "--host", "127.0.0.1",
             "--port", str(port)], env)


# -- the run ------------------------------------------------------------------------


def start_all(args: argparse.Namespace, work: Path) -> tuple[dict[str, Server], list[tuple[str, str, str, str]]]:
    """Every server, and the cases: (label, server, path, script)."""
    servers: dict[str, Server] = {}
    cases = []

    def start(name: str, cmd: list[str], ready: str, env: dict[str, str] | None = None) -> str | None:
        if not re.search(args.only, name):
            return None
        servers[name] = Server(name, cmd, ready, env=env, cwd=work)
        return name

    port = free_port()
    if start("bare", bare_command(port), f"http://127.0.0.1:{port}/"):
        cases.append(("bare ASGI app", "bare", f"http://127.0.0.1:{port}/", "v2"))
    infer = "/v2/models/breast-cancer/infer"
    for name, extra in (("mlship log", ["--log-dir", str(work / "logs")]), ("mlship nolog", [])):
        port = free_port()
        if start(name, mlship_command(port, *extra), f"http://127.0.0.1:{port}/v2/health/ready"):
            for path, script, label in ((infer, "v2", "/v2 JSON"), (infer, "v2-binary", "/v2 binary"),
                                        ("/predict", "predict", "/predict")):
                cases.append((f"{name}: {label}", name, f"http://127.0.0.1:{port}{path}", script))
    if args.baseline_tree:  # another checkout of mlship (an older commit), same interpreter
        port = free_port()
        env = {**os.environ, "PYTHONPATH": str(Path(args.baseline_tree).resolve())}
        if start("baseline log", mlship_command(port, "--log-dir", str(work / "logs-baseline")),
                 f"http://127.0.0.1:{port}/v2/health/ready", env=env):
            for path, script, label in ((infer, "v2", "/v2 JSON"), ("/predict", "predict", "/predict")):
                cases.append((f"baseline tree log: {label}", "baseline log", f"http://127.0.0.1:{port}{path}", script))
    if args.workers:
        port = free_port()
        if start("bare 2 workers", bare_command(port, 2), f"http://127.0.0.1:{port}/"):
            cases.append(("bare ASGI app, 2 workers", "bare 2 workers", f"http://127.0.0.1:{port}/", "v2"))
        port = free_port()
        if start("mlship log 2 workers", mlship_command(port, "--workers", "2", "--log-dir", str(work / "logs2")),
                 f"http://127.0.0.1:{port}/v2/health/ready"):
            cases.append(("mlship log, 2 workers: /v2 JSON", "mlship log 2 workers",
                          f"http://127.0.0.1:{port}{infer}", "v2"))
    port = free_port()
    mlflow = mlflow_command(Path(args.mlflow_venv), work, port)
    if mlflow and start("MLflow", mlflow[0], f"http://127.0.0.1:{port}/ping", env=mlflow[1]):
        cases.append(("MLflow models serve", "MLflow", f"http://127.0.0.1:{port}/invocations", "mlflow"))
    port = free_port()
    bento = bentoml_command(Path(args.bentoml_venv), work, port)
    if bento and start("BentoML", bento[0], f"http://127.0.0.1:{port}/readyz", env=bento[1]):
        cases.append(("BentoML service", "BentoML", f"http://127.0.0.1:{port}/predict", "bentoml"))
    return servers, cases


def startup_times(args: argparse.Namespace, work: Path) -> dict[str, list[float]]:
    """Start to first ready health check, alternating the servers, `rounds` times each."""
    times: dict[str, list[float]] = {}
    for _ in range(args.rounds):
        port = free_port()
        runs = [("mlship serve", mlship_command(port), f"http://127.0.0.1:{port}/v2/health/ready", None)]
        port = free_port()
        mlflow = mlflow_command(Path(args.mlflow_venv), work, port)
        if mlflow:
            runs.append(("MLflow models serve", mlflow[0], f"http://127.0.0.1:{port}/ping", mlflow[1]))
        port = free_port()
        bento = bentoml_command(Path(args.bentoml_venv), work, port)
        if bento:
            runs.append(("BentoML service", bento[0], f"http://127.0.0.1:{port}/readyz", bento[1]))
        for name, cmd, ready, env in runs:
            server = Server(name, cmd, ready, env=env, cwd=work)
            times.setdefault(name, []).append(server.ready_s)
            times.setdefault(f"{name} (CPU s)", []).append(server.ready_cpu_s)
            server.stop()
    return times


def summary(values: list[float]) -> str:
    """Median (min-max)."""
    def fmt(v: float) -> str:
        return f"{v:,.0f}" if v >= 100 else f"{v:.3g}"
    return f"{fmt(statistics.median(values))} ({fmt(min(values))}-{fmt(max(values))})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=5, help="seconds per measurement")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (median and spread)")
    parser.add_argument("--levels", default="1,16,64", help="concurrency levels")
    parser.add_argument("--only", default=".", help="start only servers whose name matches this regex")
    parser.add_argument("--no-workers", dest="workers", action="store_false", help="skip the 2-worker cases")
    parser.add_argument("--no-startup", dest="startup", action="store_false", help="skip start-up timing")
    parser.add_argument("--mlflow-venv", default="/work/peers/mlflow-venv")
    parser.add_argument("--bentoml-venv", default="/work/peers/bentoml-venv")
    parser.add_argument("--json-out", help="write the raw figures here")
    parser.add_argument("--baseline-tree", help="also serve from this mlship checkout (git worktree add DIR REV), "
                                                "logging on, /v2 JSON and /predict")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is missing: apt-get install wrk")
    from tests.models import sample_matrix
    from mlship.model.features import request_fields
    from mlship.model.runner import Runner

    X, _, _ = sample_matrix()
    names = request_fields(Runner.from_path(MODEL).signature)
    work = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    atexit.register(shutil.rmtree, work, True)  # its data is GBs: gone on exit
    scripts = bodies(X, names, work)
    levels = [int(c) for c in args.levels.split(",")]

    startup = startup_times(args, work) if args.startup else {}
    for name, values in startup.items():
        print(f"start to ready: {name:28s} {summary(values)}", file=sys.stderr)
    servers, cases = start_all(args, work)
    runs: dict[str, dict[int, list[dict[str, float]]]] = {label: {c: [] for c in levels} for label, *_ in cases}
    rss: dict[str, list[float]] = {}
    try:
        for r in range(args.rounds):
            for c in levels:
                for label, name, url, script in cases:
                    runs[label][c].append(run_wrk(url, scripts[script], c, args.duration, servers[name]))
                    print(f"round {r + 1} c={c:<3d} {label:36s} {runs[label][c][-1]}", file=sys.stderr)
            if args.json_out:  # after every round: a long run that fails late keeps what it measured
                Path(args.json_out).write_text(json.dumps({"runs": runs, "startup_s": startup}))
        rss = {name: server.rss_mb() for name, server in servers.items()}
    finally:
        for server in servers.values():
            server.stop()
    report(runs, levels, servers, rss, startup)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps({"runs": runs, "rss_mb": rss, "startup_s": startup,
                                                   "ready_s": {n: s.ready_s for n, s in servers.items()}}))


def report(runs: dict[str, dict[int, list[dict[str, float]]]], levels: list[int], servers: dict[str, Server],
           rss: dict[str, list[float]], startup: dict[str, list[float]]) -> None:
    bare = runs.get("bare ASGI app")
    print(f"\n{'case':38s} {'c':>3s} {'req/s median (spread)':>24s} {'p50 ms':>18s} {'p99 ms':>18s} "
          f"{'CPU us/req':>16s} {'req/s : bare':>20s} {'p50 : bare':>10s} {'p99 : bare':>10s} {'CPU : bare':>10s}")
    ratios: dict[tuple[str, int], dict[str, float]] = {}
    for label, by_level in runs.items():
        for c in levels:
            rounds = by_level[c]
            line = (f"{label:38s} {c:3d} {summary([x['rps'] for x in rounds]):>24s} "
                    f"{summary([x['p50_ms'] for x in rounds]):>18s} {summary([x['p99_ms'] for x in rounds]):>18s} "
                    f"{summary([x['cpu_us'] for x in rounds]):>16s}")
            if bare:
                per_round = {m: [x[m] / b[m] for x, b in zip(rounds, bare[c])]
                             for m in ("rps", "p50_ms", "p99_ms", "cpu_us")}
                ratios[label, c] = {m: statistics.median(v) for m, v in per_round.items()}
                line += (f" {summary([100 * v for v in per_round['rps']]) + '%':>20s} "
                         f"{ratios[label, c]['p50_ms']:9.2f}x {ratios[label, c]['p99_ms']:9.2f}x "
                         f"{ratios[label, c]['cpu_us']:9.2f}x")
            print(line)
    errors = {label: sum(x.get("socket_errors", 0) for rounds in by.values() for x in rounds)
              for label, by in runs.items()}
    if any(errors.values()):
        print("socket errors (mostly timeouts after 10 s): "
              + "; ".join(f"{label}: {n}" for label, n in errors.items() if n))
    if rss:
        print("\nresident memory per process (MB): "
              + "; ".join(f"{n}: {', '.join(f'{v:.0f}' for v in sizes)}" for n, sizes in rss.items()))
    if startup:
        print("start to first ready health check (s, median (spread)): "
              + "; ".join(f"{n}: {summary(v)}" for n, v in startup.items()))
    targets(runs, ratios, levels, startup)


def targets(runs: dict[str, Any], ratios: dict[tuple[str, int], dict[str, float]], levels: list[int],
            startup: dict[str, list[float]]) -> None:
    def verdict(ok: bool) -> str:
        return "met" if ok else "MISSED"

    def check(text: str, value: float, ok: bool) -> None:
        print(f"  {text}: {value:.2f} -> {verdict(ok)}")

    print("\ntargets (ratios of medians of per-round ratios):")
    if 64 in levels:
        for mode, floor in (("log", 0.60), ("nolog", 0.70)):
            for endpoint in ("/v2 JSON", "/predict"):
                got = ratios.get((f"mlship {mode}: {endpoint}", 64))
                if got:
                    check(f"{mode:5s} {endpoint} req/s at c=64 >= {floor:.0%} of bare", got["rps"], got["rps"] >= floor)
                    check(f"{mode:5s} {endpoint} p99 at c=64 <= 2x bare", got["p99_ms"], got["p99_ms"] <= 2)
                    print(f"  {mode:5s} {endpoint} bare's CPU per request : ours at c=64 (the req/s ratio on a "
                          f"core of its own): {1 / got['cpu_us']:.2f}")
        for mode in ("log", "nolog"):
            json_, binary = runs.get(f"mlship {mode}: /v2 JSON"), runs.get(f"mlship {mode}: /v2 binary")
            if json_ and binary:
                value = statistics.median(b["rps"] / j["rps"] for b, j in zip(binary[64], json_[64]))
                check(f"{mode:5s} /v2 binary : /v2 JSON req/s at c=64 >= 1", value, value >= 1)
        one, two = runs.get("mlship log: /v2 JSON"), runs.get("mlship log, 2 workers: /v2 JSON")
        if one and two:
            value = statistics.median(t["rps"] / o["rps"] for t, o in zip(two[64], one[64]))
            print(f"  scaling 1 -> 2 workers, /v2 JSON at c=64 (2 shared cores): {value:.2f}x")
        for peer in ("BentoML service", "MLflow models serve"):
            if peer in runs and "mlship log: /v2 JSON" in runs:
                ours, theirs = runs["mlship log: /v2 JSON"][64], runs[peer][64]
                value = statistics.median(o["rps"] / t["rps"] for o, t in zip(ours, theirs))
                p99 = statistics.median(o["p99_ms"] / t["p99_ms"] for o, t in zip(ours, theirs))
                check(f"mlship /v2 JSON : {peer} req/s at c=64 >= 3x", value, value >= 3)
                check(f"mlship /v2 JSON : {peer} p99 at c=64 <= 1x", p99, p99 <= 1)
    if 1 in levels:
        for mode in ("log", "nolog"):
            for endpoint in ("/v2 JSON", "/v2 binary", "/predict"):
                got = ratios.get((f"mlship {mode}: {endpoint}", 1))
                if got:
                    check(f"{mode:5s} {endpoint} p50 at c=1 <= 1.5x bare", got["p50_ms"], got["p50_ms"] <= 1.5)
    if "mlship serve" in startup:
        value = statistics.median(startup["mlship serve"])
        check("mlship serve start to ready <= 1 s", value, value <= 1)


if __name__ == "__main__":
    main()
