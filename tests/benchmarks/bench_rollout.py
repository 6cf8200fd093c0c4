"""Benchmark: latency added by the nginx router, and failed requests during reloads under load.

Two `mlship serve` processes (the breast-cancer example as stable, its MLP as
candidate) behind Debian's nginx with mlship's rendered config at a 50/50
canary. Measures single-request latency (one client, keep-alive) straight to
a server and through nginx, then sends steady load (200 requests/s, a new
connection each, plus one keep-alive client) while mlship's nginx router
applies 20 consecutive weight changes (each: render, `nginx -t`, `nginx -s
reload`, verify the live route).

    python tests/benchmarks/bench_rollout.py
"""

from __future__ import annotations

import atexit
import http.client
import json
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from mlship.rollout.routers.nginx import NginxRouter  # noqa: E402
from mlship.rollout.state import Route  # noqa: E402
from tests.harness.ports import free_port  # noqa: E402
from tests.harness.services import start_nginx  # noqa: E402
from tests.rollout.conftest import MLP, Load, sample_rows  # noqa: E402
from tests.serve.server_process import start_server  # noqa: E402
from tests.support import MODEL  # noqa: E402


def latencies(port: int, payload: bytes, n: int = 3000) -> np.ndarray:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    out = []
    for i in range(n + 200):
        start = time.perf_counter()
        conn.request("POST", "/predict", body=payload, headers={"Content-Type": "application/json",
                                                                 "X-Client-ID": f"user-{i % 500}"})
        resp = conn.getresponse()
        resp.read()
        assert resp.status == 200, resp.status
        if i >= 200:
            out.append(time.perf_counter() - start)
    conn.close()
    return np.asarray(out) * 1000


def keepalive_client(port: int, payload: bytes, stop: threading.Event, result: dict) -> None:
    """One keep-alive connection. nginx closes idle keep-alive connections when old workers exit after a
    reload; like urllib3, Go and browsers, the client resends a request once when a reused connection was
    closed before any byte of the answer came back (`closed_idle`). Anything else counts as failed."""
    conn, used = http.client.HTTPConnection("127.0.0.1", port, timeout=10), False
    while not stop.is_set():
        for attempt in (1, 2):
            try:
                conn.request("POST", "/predict", body=payload, headers={"Content-Type": "application/json"})
                resp = conn.getresponse()
                resp.read()
                result["ok" if resp.status == 200 else "failed"] += 1
                used = True
                break
            except (ConnectionResetError, BrokenPipeError, http.client.RemoteDisconnected) as exc:
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                if attempt == 1 and used:
                    result["closed_idle"] += 1
                    used = False
                    continue
                result["failed"] += 1
                result.setdefault("errors", []).append(repr(exc))
        time.sleep(0.005)


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-rollout-"))
    atexit.register(shutil.rmtree, work, True)  # its data is GBs: gone on exit
    blue = start_server(MODEL, work / "blue", "--name", "bc", "--model-version", "1", "--variant", "blue", log=False)
    green = start_server(MLP, work / "green", "--name", "bc", "--model-version", "2", "--variant", "green", log=False)
    port = free_port()
    conf = work / "bc.conf"
    router = NginxRouter(name="bc", config=str(conf), listen=f"127.0.0.1:{port}",
                         upstreams={"blue": f"127.0.0.1:{blue.port}", "green": f"127.0.0.1:{green.port}"})
    conf.write_text(router.render(Route(stable="blue", candidate="green", weight=50))[0])
    nginx = start_nginx(f"    include {conf};\n")
    router.main_config, router.prefix = str(nginx.conf_path), str(nginx.prefix)
    try:
        names, rows = sample_rows()
        payload = json.dumps({"instances": [dict(zip(names, map(float, rows[0])))]}).encode()
        direct = latencies(blue.port, payload)
        routed = latencies(port, payload)
        load = Load(port).start()
        stop, ka = threading.Event(), {"ok": 0, "failed": 0, "closed_idle": 0}
        thread = threading.Thread(target=keepalive_client, args=(port, payload, stop, ka), daemon=True)
        thread.start()
        time.sleep(1)
        reload_s = []
        for i in range(20):
            start = time.perf_counter()
            router.apply(Route(stable="blue", candidate="green", weight=5 + 5 * (i % 19)))
            reload_s.append(time.perf_counter() - start)
        time.sleep(1)
        load.stop()
        stop.set()
        thread.join()
        failed = [r for r in load.replies if r.status != 200]
        figures = {
            "direct_p50_ms": float(np.percentile(direct, 50)), "direct_p99_ms": float(np.percentile(direct, 99)),
            "nginx_p50_ms": float(np.percentile(routed, 50)), "nginx_p99_ms": float(np.percentile(routed, 99)),
            "reloads": 20, "reload_apply_p50_s": float(np.median(reload_s)),
            "new_connection_requests": len(load.replies), "new_connection_failed": len(failed) + len(load.errors),
            "keepalive_requests": ka["ok"] + ka["failed"], "keepalive_failed": ka["failed"],
            "keepalive_closed_idle_resent": ka["closed_idle"],
        }
    finally:
        nginx.stop()
        blue.terminate()
        green.terminate()
    print(f"{'':22s} {'p50 ms':>8s} {'p99 ms':>8s}")
    print(f"{'direct to mlship serve':22s} {figures['direct_p50_ms']:8.3f} {figures['direct_p99_ms']:8.3f}")
    print(f"{'through nginx router':22s} {figures['nginx_p50_ms']:8.3f} {figures['nginx_p99_ms']:8.3f}")
    print(f"20 reloads (each {figures['reload_apply_p50_s']:.2f} s p50 incl. nginx -t and verification): "
          f"{figures['new_connection_failed']} of {figures['new_connection_requests']} new-connection requests failed, "
          f"{figures['keepalive_failed']} of {figures['keepalive_requests']} keep-alive requests failed "
          f"({figures['keepalive_closed_idle_resent']} resent after nginx closed an idle connection)")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
