"""Two real `mlship serve` processes behind a real nginx, and steady client load."""

from __future__ import annotations

import http.client
import json
import random
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mlship.rollout.routers.nginx import NginxRouter
from mlship.rollout.state import Route
from tests.harness.ports import free_port
from tests.serve.server_process import ServerProcess, start_server
from tests.support import EXAMPLE, MODEL, SAMPLE, run, run_process

MLP = EXAMPLE / "model-mlp.onnx"


def sample_rows() -> tuple[list[str], np.ndarray]:
    header = SAMPLE.read_text().splitlines()[0].split(",")[:-1]
    return header, np.loadtxt(SAMPLE, delimiter=",", skiprows=1)[:, :-1].astype(np.float32)


def broken_model(path: Path) -> Path:
    """Loads and declares X[N, 30], then fails every run (a Gather index out of range)."""
    from onnx import TensorProto, helper, numpy_helper

    names, _ = sample_rows()
    graph = helper.make_graph(
        [helper.make_node("Gather", ["X", "idx"], ["g"], axis=1),
         helper.make_node("ReduceSum", ["g", "axes"], ["s"], keepdims=0),
         helper.make_node("Cast", ["s"], ["label"], to=TensorProto.INT64)],
        "broken", [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["N", 30])],
        [helper.make_tensor_value_info("label", TensorProto.INT64, ["N"])],
        [numpy_helper.from_array(np.array([100], dtype=np.int64), "idx"),
         numpy_helper.from_array(np.array([1], dtype=np.int64), "axes")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    helper.set_model_props(model, {"mlship.feature_names": json.dumps(names)})
    path.write_bytes(model.SerializeToString())
    return path


@dataclass
class Reply:
    t: float
    status: int
    slot: str | None
    variant: str | None
    request_id: str | None
    client: str
    row: int
    body: dict[str, Any] | None


@dataclass
class Load:
    """Steady client traffic through nginx: `rate` requests/s, a new connection each."""

    port: int
    rate: float = 200.0
    clients: int = 2000
    replies: list[Reply] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def start(self, workers: int = 4) -> "Load":
        names, rows = sample_rows()
        self._payloads = [json.dumps({"instances": [dict(zip(names, map(float, r)))]}).encode() for r in rows]
        for i in range(workers):
            thread = threading.Thread(target=self._run, args=(i, workers), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def _run(self, index: int, workers: int) -> None:
        rng = random.Random(index)
        interval = workers / self.rate
        next_at = time.monotonic()
        while not self._stop.is_set():
            client = f"user-{rng.randrange(self.clients)}"
            row = rng.randrange(len(self._payloads))
            self.replies.append(self.send(client, row))
            next_at += interval
            time.sleep(max(0.0, next_at - time.monotonic()))

    def send(self, client: str, row: int) -> Reply:
        t = time.monotonic()
        try:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
            conn.request("POST", "/predict", body=self._payloads[row],
                         headers={"Content-Type": "application/json", "X-Client-ID": client, "Connection": "close"})
            resp = conn.getresponse()
            data = resp.read()
            conn.close()
            body = json.loads(data) if resp.status == 200 else None
            return Reply(t, resp.status, resp.getheader("X-Mlship-Slot"), resp.getheader("x-mlship-variant"),
                         resp.getheader("x-request-id"), client, row, body)
        except OSError as exc:
            self.errors.append(f"{type(exc).__name__}: {exc}")
            return Reply(t, 0, None, None, None, client, row, None)

    def since(self, t: float) -> list[Reply]:
        return [r for r in list(self.replies) if r.t >= t]

    def wait_for(self, t: float, count: int, timeout: float = 60) -> list[Reply]:
        deadline = time.monotonic() + timeout
        while len(self.since(t)) < count:
            assert time.monotonic() < deadline, f"only {len(self.since(t))} replies since the mark"
            time.sleep(0.1)
        return self.since(t)[:count]

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(15)


@dataclass
class Stage:
    """blue (stable) and green (candidate) servers, nginx in front, and a project dir with mlship.yaml."""

    project: Path
    blue: ServerProcess
    green: ServerProcess
    nginx: Any
    port: int
    conf: Path

    def rollout(self, *args: str):
        return run("-c", str(self.project / "mlship.yaml"), "rollout", *args)

    def rollout_process(self, *args: str):
        return run_process("-c", str(self.project / "mlship.yaml"), "rollout", *args)

    def route(self) -> dict[str, Any]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        conn.request("GET", "/.mlship/route")
        doc = json.loads(conn.getresponse().read())
        conn.close()
        return doc

    def state(self) -> dict[str, Any]:
        return json.loads((self.project / ".mlship" / "rollouts" / "bc.json").read_text())


def write_config(project: Path, nginx, port: int, conf: Path, blue: str, green: str, *,
                 analysis: str = "{min_requests: 50, max_error_rate: 0.01}", extra: str = "") -> None:
    (project / "mlship.yaml").write_text(f"""name: bc
rollout:
  router:
    type: nginx
    config: {conf}
    upstreams: {{blue: "{blue}", green: "{green}"}}
    listen: 127.0.0.1:{port}
    main_config: {nginx.conf_path}
    prefix: {nginx.prefix}
{extra}  steps: [10, 50, 100]
  logs: [{project}/blue, {project}/green]
  analysis: {analysis}
""")


@pytest.fixture
def stage_factory(tmp_path, nginx_factory):
    started: list[ServerProcess] = []

    def make(candidate_model: Path = MLP, *, analysis: str | None = None, green_addr: str | None = None,
             extra: str = "", stable_model: Path = MODEL) -> Stage:
        project = tmp_path / "project"
        project.mkdir(exist_ok=True)
        blue = start_server(stable_model, project / "blue", "--name", "bc", "--model-version", "1.0.0", "--variant", "blue")
        started.append(blue)
        green = start_server(candidate_model, project / "green", "--name", "bc", "--model-version", "2.0.0",
                             "--variant", "green")
        started.append(green)
        port = free_port()
        conf = project / "nginx" / "bc.conf"
        router = NginxRouter(name="bc", config=str(conf), listen=f"127.0.0.1:{port}",
                             upstreams={"blue": f"127.0.0.1:{blue.port}", "green": f"127.0.0.1:{green.port}"})
        conf.parent.mkdir()
        conf.write_text(router.render(Route(stable="blue"))[0])  # what an operator sets up once
        nginx = nginx_factory(f"    include {conf};\n")
        kwargs = {"analysis": analysis} if analysis else {}
        write_config(project, nginx, port, conf, f"127.0.0.1:{blue.port}",
                     green_addr or f"127.0.0.1:{green.port}", extra=extra, **kwargs)
        return Stage(project, blue, green, nginx, port, conf)

    yield make
    for server in started:
        server.terminate()


def slow_model(path: Path, width: int = 2048, layers: int = 30) -> Path:
    """Same signature as the example, several ms a row: a stack of wide matrix products."""
    from onnx import TensorProto, helper, numpy_helper

    names, _ = sample_rows()
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array((rng.standard_normal((30, width)) * 0.01).astype(np.float32), "w0"),
             numpy_helper.from_array((rng.standard_normal((width, width)) / width).astype(np.float32), "w"),
             numpy_helper.from_array(np.array([1], dtype=np.int64), "axes"),
             numpy_helper.from_array(np.array([0.0], dtype=np.float32), "zero")]
    nodes = [helper.make_node("MatMul", ["X", "w0"], ["h0"])]
    for i in range(layers):
        nodes += [helper.make_node("MatMul", [f"h{i}", "w"], [f"m{i}"]),
                  helper.make_node("Relu", [f"m{i}"], [f"h{i + 1}"])]
    nodes += [helper.make_node("ReduceSum", [f"h{layers}", "axes"], ["s"], keepdims=0),
              helper.make_node("Greater", ["s", "zero"], ["g"]),
              helper.make_node("Cast", ["g"], ["label"], to=TensorProto.INT64)]
    graph = helper.make_graph(nodes, "slow", [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["N", 30])],
                              [helper.make_tensor_value_info("label", TensorProto.INT64, ["N"])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    helper.set_model_props(model, {"mlship.feature_names": json.dumps(names)})
    path.write_bytes(model.SerializeToString())
    return path
