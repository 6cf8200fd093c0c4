"""Benchmark: how fast `rollout start` puts a candidate in front of users, and what `deploy` costs the live slot.

The breast-cancer example is built twice (1.0.0 and 1.1.0) with the docker builder from
the local Python base image, on a private Docker engine (host network), behind Debian's
nginx with mlship's router config; 1.0.0 serves on blue.

1. Time to first routed request: from running `mlship rollout start breast-cancer
   --candidate 1.1.0` (a new process; the docker runtime deploys 1.1.0 into green, waits
   until it is ready and reports 1.1.0, then routes 10% to it) until a request sent
   through nginx is answered by green. Clients poll nginx all along with many client
   ids (X-Client-ID), so the first one routed to green after the reload is seen.
   Target: at most 5 s. Between runs the rollout is aborted and green's containers removed,
   so every run starts a fresh container. The profile of each run: when the engine
   created the container, when green first answered /v2/health/ready (polled directly),
   when nginx first routed a request to it. Alternating with these runs, the peer: the
   same image started by hand (`docker run` through the SDK, host network, the same
   port) until /v2/health/ready answers, the floor any tool starting this image meets.
2. Failed requests while `mlship deploy breast-cancer:V --slot green` replaces green's
   container (alternating 1.0.0 and 1.1.0), green receiving no traffic: a steady loop of
   predictions through nginx (new connection each, about 50 per second) on the live slot
   blue. Target: 0 failed.

    python tests/benchmarks/bench_deploy.py [--runs 5]
"""

from __future__ import annotations

import argparse
import atexit
import http.client
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import closing
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from mlship.rollout.routers.nginx import NginxRouter  # noqa: E402
from mlship.rollout.state import Route  # noqa: E402
from tests.harness.images import BASE_TAG  # noqa: E402
from tests.harness.ports import free_port  # noqa: E402
from tests.harness.services import start_docker_engine, start_nginx  # noqa: E402
from tests.support import MODEL  # noqa: E402

NAME = "breast-cancer"
PAYLOAD = json.dumps({"inputs": [{"name": "X", "shape": [1, 30], "datatype": "FP32", "data": [0.5] * 30}]}).encode()


def mlship(config: Path, env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "mlship", "-c", str(config), *args], env=env, capture_output=True,
                          text=True, timeout=900)
    if check and proc.returncode != 0:
        raise SystemExit(f"mlship {' '.join(args)} exited {proc.returncode}: {proc.stderr[-2000:]}")
    return proc


def predict(port: int, client: str, timeout: float = 10) -> tuple[int, str | None]:
    """Status and answering slot of one prediction through nginx (a new connection)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("POST", f"/v2/models/{NAME}/infer", body=PAYLOAD,
                     headers={"Content-Type": "application/json", "X-Client-ID": client, "Connection": "close"})
        reply = conn.getresponse()
        reply.read()
        return reply.status, reply.getheader("X-Mlship-Slot")
    finally:
        conn.close()


def first_green(port: int, started: float, stop: threading.Event, seen: dict) -> None:
    """Poll nginx with rotating client ids until green answers 200; the time since `started`."""
    i = 0
    while not stop.is_set():
        i += 1
        try:
            status, slot = predict(port, f"user-{i % 400}", timeout=5)
        except OSError:
            continue
        if status == 200 and slot == "green":
            seen["s"] = time.perf_counter() - started
            return
        time.sleep(0.02)  # about 50 requests a second: traffic, not a load test competing for the 2 cores


class Loop:
    """A steady request loop through nginx (a new connection per request), counting what failed."""

    def __init__(self, port: int, per_s: float = 50) -> None:
        self.port, self.gap = port, 1 / per_s
        self.ok, self.failed, self.errors, self.slots = 0, 0, [], {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        i = 0
        while not self.stop.is_set():
            i += 1
            try:
                status, slot = predict(self.port, f"user-{i % 400}")
                self.slots[slot] = self.slots.get(slot, 0) + 1
                if status == 200:
                    self.ok += 1
                else:
                    self.failed += 1
                    self.errors.append(f"HTTP {status} from {slot}")
            except OSError as exc:
                self.failed += 1
                self.errors.append(repr(exc))
            time.sleep(self.gap)


def ready_at(port: int, started: float, stop: threading.Event, seen: dict, key: str = "ready_s") -> None:
    """Poll http://127.0.0.1:PORT/v2/health/ready until it answers 200; the time since `started`."""
    while not stop.is_set():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        try:
            conn.request("GET", "/v2/health/ready", headers={"Connection": "close"})
            reply = conn.getresponse()
            reply.read()
            if reply.status == 200:
                seen[key] = time.perf_counter() - started
                return
        except OSError:
            pass
        finally:
            conn.close()
        time.sleep(0.05)


def by_hand(engine, image: str, port: int, listen: int) -> float:
    """The peer: `docker run` of the image on green's port (host network) until it is ready; seconds.
    The same requests go through nginx meanwhile (all to blue) as during mlship's runs."""
    seen, stop = {}, threading.Event()
    traffic = threading.Thread(target=first_green, args=(listen, time.perf_counter(), stop, {}), daemon=True)
    traffic.start()
    with closing(engine.client()) as client:
        started = time.perf_counter()
        container = client.containers.run(image, detach=True, network_mode="host", name="bench-by-hand",
                                          environment={"MLSHIP_SERVE_HOST": "127.0.0.1",
                                                       "MLSHIP_SERVE_PORT": str(port)})
        try:
            ready_at(port, started, stop, seen)
        finally:
            stop.set()
            container.remove(force=True)
    traffic.join()
    return seen["ready_s"]


def created_s(engine, started_wall: float) -> float:
    """When the engine created green's container, seconds after `started_wall` (time.time())."""
    from datetime import datetime

    with closing(engine.client()) as client:
        container = client.containers.get(f"mlship-{NAME}-green")
        created = container.attrs["Created"]
    stamp = datetime.fromisoformat(created[:26].rstrip("Z") + "+00:00").timestamp()
    return stamp - started_wall


def remove_green(engine) -> None:
    with closing(engine.client()) as client:
        for c in client.containers.list(all=True, filters={"label": f"io.mlship.deploy.name={NAME}"}):
            if c.labels.get("io.mlship.deploy.slot") == "green":
                c.remove(force=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-deploy-"))
    atexit.register(shutil.rmtree, work, True)  # its data is GBs: gone on exit
    engine = start_docker_engine()
    nginx = None
    try:
        env = {**os.environ, **engine.env()}
        base = subprocess.run(["bash", str(ROOT / "tests" / "images" / "make-base.sh"), BASE_TAG], env=env,
                              capture_output=True, text=True, timeout=900)
        assert base.returncode == 0, base.stderr[-2000:]
        blue, green, listen = free_port(), free_port(), free_port()
        conf = work / "nginx" / f"{NAME}.conf"
        conf.parent.mkdir()
        upstreams = {"blue": f"127.0.0.1:{blue}", "green": f"127.0.0.1:{green}"}
        conf.write_text(NginxRouter(name=NAME, config=str(conf), listen=f"127.0.0.1:{listen}",
                                    upstreams=upstreams).render(Route(stable="blue"))[0])
        nginx = start_nginx(f"    include {conf};\n")
        shutil.copy(MODEL, work / "model.onnx")
        config = work / "mlship.yaml"

        def write(version: str) -> None:
            config.write_text(
                f"name: {NAME}\nversion: {version}\nmodel: model.onnx\n"
                f"build:\n  image: {{builder: docker, base: '{BASE_TAG}'}}\n"
                f"rollout:\n  router: {{type: nginx, config: {conf}, listen: '127.0.0.1:{listen}', "
                f"main_config: {nginx.conf_path}, prefix: {nginx.prefix}, "
                f"upstreams: {{blue: '127.0.0.1:{blue}', green: '127.0.0.1:{green}'}}}}\n"
                f"  steps: [10, 50, 100]\n"
                f"deploy:\n  runtime: docker\n  docker: {{host: '{engine.host}', ready_timeout_s: 120}}\n")

        for version in ("1.0.0", "1.1.0"):
            write(version)
            started = time.perf_counter()
            mlship(config, env, "build", "--image")
            print(f"built {NAME}:{version} in {time.perf_counter() - started:.0f} s", flush=True)
        mlship(config, env, "deploy", f"{NAME}:1.0.0", "--slot", "blue")

        # 1. rollout start -> first request green answers through nginx; the peer alternating
        to_first, command_s, profile, peer = [], [], [], []
        image = json.loads(mlship(config, env, "--json", "versions", "show", f"{NAME}:1.1.0").stdout)["artifact"]
        for run in range(args.runs):
            remove_green(engine)
            stop, seen = threading.Event(), {}
            started, started_wall = time.perf_counter(), time.time()
            pollers = [threading.Thread(target=first_green, args=(listen, started, stop, seen), daemon=True),
                       threading.Thread(target=ready_at, args=(green, started, stop, seen), daemon=True)]
            for poller in pollers:
                poller.start()
            mlship(config, env, "rollout", "start", NAME, "--candidate", "1.1.0", "--stable", "1.0.0")
            command_s.append(time.perf_counter() - started)
            for poller in pollers:
                poller.join(timeout=60)
            stop.set()
            to_first.append(seen.get("s", float("nan")))
            profile.append({"created_s": round(created_s(engine, started_wall), 2),
                            "ready_s": round(seen.get("ready_s", float("nan")), 2),
                            "routed_s": round(to_first[-1], 2), "command_s": round(command_s[-1], 2)})
            print(f"run {run + 1}: rollout start took {command_s[-1]:.2f} s; container created at "
                  f"{profile[-1]['created_s']:.2f} s, ready at {profile[-1]['ready_s']:.2f} s, first request "
                  f"answered by green through nginx at {to_first[-1]:.2f} s", flush=True)
            mlship(config, env, "rollout", "abort", NAME, check=False)  # exit 6: traffic back on blue
            remove_green(engine)
            peer.append(by_hand(engine, image, green, listen))
            print(f"peer {run + 1}: docker run by hand, ready after {peer[-1]:.2f} s", flush=True)

        # 2. deploy replaces green (no traffic) under a steady loop on blue
        loop = Loop(listen)
        loop.thread.start()
        time.sleep(2)
        replace_s = []
        for i in range(args.runs):
            version = ("1.0.0", "1.1.0")[i % 2]
            started = time.perf_counter()
            mlship(config, env, "deploy", f"{NAME}:{version}", "--slot", "green")
            replace_s.append(time.perf_counter() - started)
        time.sleep(2)
        loop.stop.set()
        loop.thread.join()
    finally:
        if nginx is not None:
            nginx.stop()
        with closing(engine.client()) as client:
            for c in client.containers.list(all=True, filters={"label": f"io.mlship.deploy.name={NAME}"}):
                c.remove(force=True)
        engine.stop()
    figures = {
        "runs": args.runs,
        "start_to_first_green_request_s": {"median": statistics.median(to_first), "min": min(to_first),
                                           "max": max(to_first)},
        "rollout_start_command_s": {"median": statistics.median(command_s), "min": min(command_s),
                                    "max": max(command_s)},
        "peer_docker_run_ready_s": {"median": statistics.median(peer), "min": min(peer), "max": max(peer)},
        "profile": profile,
        "replacements": len(replace_s), "replace_s_median": statistics.median(replace_s),
        "loop_requests": loop.ok + loop.failed, "loop_failed": loop.failed, "loop_slots": loop.slots,
        "loop_errors": loop.errors[:5],
    }
    print(f"rollout start -> first request answered by the candidate: median {figures['start_to_first_green_request_s']['median']:.2f} s "
          f"(min {min(to_first):.2f}, max {max(to_first):.2f}; target <= 5 s); the same image by hand "
          f"(docker run until ready): median {statistics.median(peer):.2f} s (min {min(peer):.2f}, max {max(peer):.2f})")
    print(f"{len(replace_s)} replacements of green's container ({statistics.median(replace_s):.1f} s median each): "
          f"{loop.failed} of {loop.ok + loop.failed} requests on blue failed (target 0)")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
