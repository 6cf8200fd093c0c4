"""`mlship demo`: the whole life cycle on one machine, with no external services.

A synthetic patient readmission-risk model (clearly labelled: generated data,
no real patients) goes through check -> edge bundle -> hybrid push (two file
targets) -> batch scoring -> serving -> shadow -> canary -> promotion -> a drift
report over a week of logs with drift injected in the last days, whose exit
code is what would trigger retraining in CI.

The data generator and the model trainer are also used by examples/readmission.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any, Callable

import numpy as np

FEATURES = ["age", "prior_admissions", "length_of_stay", "num_medications", "num_diagnoses",
            "emergency_admission", "diagnosis_group"]
DIAGNOSIS_GROUPS = ["circulatory", "respiratory", "diabetes", "injury", "other"]
LABEL = "readmitted"


# -- synthetic data ------------------------------------------------------------------


def patients(n: int, rng: np.random.Generator, *, drift: float = 0.0) -> dict[str, np.ndarray]:
    """SYNTHETIC patient stays and whether each was readmitted within 30 days.

    `drift` in [0, 1] moves the population: older patients, more prior
    admissions, longer stays (what a new referral pattern would look like)."""
    age = np.clip(rng.normal(65 + 9 * drift, 14, n), 18, 95).round()
    prior = rng.poisson(0.8 * (1 + 1.2 * drift) + 0.02 * np.clip(age - 65, 0, None))
    stay = np.round(rng.lognormal(1.3 + 0.35 * drift, 0.6, n), 1)
    meds = rng.poisson(np.clip(8 + 0.1 * (age - 65), 1, None))
    diagnoses = rng.poisson(5, n) + 1
    emergency = (rng.random(n) < 0.45 + 0.1 * drift).astype(float)
    group = rng.choice(len(DIAGNOSIS_GROUPS), n, p=[0.3, 0.2, 0.15, 0.15, 0.2]).astype(float)
    effect = np.array([0.3, 0.2, 0.4, -0.3, 0.0])[group.astype(int)]
    logit = (-3.1 + 0.025 * (age - 65) + 0.55 * prior + 0.12 * stay + 0.04 * meds + 0.05 * diagnoses
             + 0.5 * emergency + effect)
    readmitted = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    return {"age": age, "prior_admissions": prior.astype(float), "length_of_stay": stay,
            "num_medications": meds.astype(float), "num_diagnoses": diagnoses.astype(float),
            "emergency_admission": emergency, "diagnosis_group": group, LABEL: readmitted}


def matrix(columns: dict[str, np.ndarray]) -> np.ndarray:
    return np.column_stack([columns[f] for f in FEATURES]).astype(np.float32)


def write_csv(path: Path, columns: dict[str, np.ndarray], extra: dict[str, list[Any]] | None = None) -> Path:
    names = list(columns) + list(extra or {})
    n = len(next(iter(columns.values())))
    lines = [",".join(names)]
    for i in range(n):
        values = [_fmt(columns[c][i]) for c in columns] + [str(extra[c][i]) for c in extra or {}]
        lines.append(",".join(values))
    path.write_text("\n".join(lines) + "\n")
    return path


def _fmt(value: Any) -> str:
    f = float(value)
    return str(int(f)) if f.is_integer() else f"{f:.6g}"


# -- a logistic regression, trained with numpy, exported to ONNX ----------------------------


def fit_logistic(X: np.ndarray, y: np.ndarray, *, l2: float = 1e-2, balanced: bool = False,
                 iterations: int = 25) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Standardise, then Newton steps (IRLS). Returns mean, std, weights, bias."""
    X = X.astype(np.float64)
    mean, std = X.mean(axis=0), X.std(axis=0) + 1e-9
    Z = np.column_stack([(X - mean) / std, np.ones(len(X))])
    sample_w = np.ones(len(y))
    if balanced:
        pos = y.mean()
        sample_w = np.where(y == 1, 0.5 / pos, 0.5 / (1 - pos))
    beta = np.zeros(Z.shape[1])
    for _ in range(iterations):
        p = 1 / (1 + np.exp(-Z @ beta))
        grad = Z.T @ (sample_w * (p - y)) + l2 * np.r_[beta[:-1], 0]
        hess = (Z * (sample_w * p * (1 - p))[:, None]).T @ Z + l2 * np.diag(np.r_[np.ones(len(beta) - 1), 0])
        beta -= np.linalg.solve(hess, grad)
    return mean, std, beta[:-1], float(beta[-1])


def logistic_onnx(mean: np.ndarray, std: np.ndarray, weights: np.ndarray, bias: float, *, doc: str) -> bytes:
    """X[N, 7] -> label (int64 [N]) and probabilities (float [N, 2]), like skl2onnx without ZipMap."""
    from onnx import TensorProto, helper, numpy_helper

    f32 = np.float32
    inits = [numpy_helper.from_array(mean.astype(f32), "mean"), numpy_helper.from_array(std.astype(f32), "std"),
             numpy_helper.from_array(weights.astype(f32).reshape(-1, 1), "w"),
             numpy_helper.from_array(np.array([bias], f32), "b"), numpy_helper.from_array(np.array([0.5], f32), "half"),
             numpy_helper.from_array(np.array([1.0], f32), "one"), numpy_helper.from_array(np.array([1], np.int64), "axis")]
    nodes = [
        helper.make_node("Sub", ["X", "mean"], ["centred"]),
        helper.make_node("Div", ["centred", "std"], ["z"]),
        helper.make_node("MatMul", ["z", "w"], ["zw"]),
        helper.make_node("Add", ["zw", "b"], ["logit"]),
        helper.make_node("Sigmoid", ["logit"], ["p1"]),
        helper.make_node("Sub", ["one", "p1"], ["p0"]),
        helper.make_node("Concat", ["p0", "p1"], ["probabilities"], axis=1),
        helper.make_node("Squeeze", ["p1", "axis"], ["p"]),
        helper.make_node("Greater", ["p", "half"], ["positive"]),
        helper.make_node("Cast", ["positive"], ["label"], to=TensorProto.INT64),
    ]
    graph = helper.make_graph(
        nodes, "readmission", [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["N", len(FEATURES)])],
        [helper.make_tensor_value_info("label", TensorProto.INT64, ["N"]),
         helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 2])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="mlship-demo")
    model.ir_version = 8
    model.doc_string = doc
    helper.set_model_props(model, {"mlship.feature_names": json.dumps(FEATURES),
                                   "mlship.labels": "0=not readmitted,1=readmitted within 30 days",
                                   "mlship.data": "synthetic"})
    return model.SerializeToString()


def train_models(directory: Path, seed: int = 11) -> dict[str, Path]:
    """train.csv (reference), sample.csv (labelled hold-out), history.csv, and two model versions."""
    rng = np.random.default_rng(seed)
    train, sample, history = patients(6000, rng), patients(800, rng), patients(5000, rng)
    directory.mkdir(parents=True, exist_ok=True)
    write_csv(directory / "train.csv", train)
    write_csv(directory / "sample.csv", sample)
    ids = [f"stay-{i:06d}" for i in range(len(history[LABEL]))]
    write_csv(directory / "history.csv", {k: v for k, v in history.items() if k != LABEL}, {"stay_id": ids})
    X, y = matrix(train), train[LABEL]
    first = fit_logistic(X[:2000], y[:2000], l2=5.0)
    second = fit_logistic(X, y, l2=1e-2, balanced=True)
    paths = {}
    for version, params, note in (("1.0.0", first, "2,000 stays, strong regularisation"),
                                  ("1.1.0", second, "6,000 stays, balanced classes")):
        doc = f"SYNTHETIC readmission-risk model {version} (mlship demo; logistic regression, {note})"
        path = directory / f"model-{version}.onnx"
        path.write_bytes(logistic_onnx(*params, doc=doc))
        paths[version] = path
    return paths


# -- the demo -------------------------------------------------------------------------


class DemoError(Exception):
    pass


def run_demo(directory: Path, say: Callable[[str], None], *, seconds_per_step: float = 2.0) -> dict[str, Any]:
    """Every stage through the same use cases the commands call; the summary `mlship demo` prints."""
    from mlship.config import load_config

    directory = directory.resolve()
    directory.mkdir(parents=True, exist_ok=True)
    summary: dict[str, Any] = {"directory": str(directory)}
    started = time.perf_counter()

    say("1/8 data and models: synthetic patient stays (generated, no real patients), two model versions")
    models = train_models(directory / "data")
    config_path = directory / "mlship.yaml"
    config_path.write_text(_config(directory, models))
    cfg = load_config(config_path)

    say("2/8 check 1.1.0: validity, smoke run, latency, quality floor, agreement with 1.0.0")
    summary["check"] = _check(cfg, models)
    metrics = summary["check"]["metrics"]
    if metrics:
        say(f"    accuracy {metrics.get('accuracy', 0):.3f}, ROC AUC {metrics.get('roc_auc', 0):.3f}")

    say("3/8 edge bundle, pushed to two targets at once (hybrid), channel stable")
    summary["bundle"] = _ship_bundle(cfg, models["1.1.0"], directory / "dist")

    say("4/8 batch scoring of 5,000 historical stays")
    summary["scored"] = _score(cfg, models["1.0.0"], directory / "data" / "history.csv",
                               directory / "dist" / "history-scored.csv")

    say("5/8 serving 1.0.0 (blue, stable) and 1.1.0 (green, candidate) with prediction logs")
    servers = [_Server(models["1.0.0"], "1.0.0", "blue", directory), _Server(models["1.1.0"], "1.1.0", "green", directory)]
    try:
        for server in servers:
            server.start()
        config_path.write_text(_config(directory, models, servers))
        traffic = _Traffic(directory / "route.json", {s.slot: s.url for s in servers}, directory / "data" / "sample.csv")
        say("6/8 rollout: shadow, then canary 20 -> 50 -> 100, each step behind the analysis gate")
        summary.update(_roll_out(load_config(config_path), traffic, say, seconds_per_step))
    finally:
        for server in servers:
            server.stop()

    say("7/8 a week of prediction logs from 1.1.0, with drift injected in the last two days")
    week = directory / "logs" / "week"
    write_week(models["1.1.0"], week)

    say("8/8 drift report per day against the training data")
    summary["drift"] = _drift(cfg, directory / "data" / "train.csv", week, directory / "reports", models["1.1.0"])
    summary["seconds"] = round(time.perf_counter() - started, 1)
    return summary


def _check(cfg: Any, models: dict[str, Path]) -> dict[str, Any]:
    """Check 1.1.0 against its quality floor and against 1.0.0; a failed check stops the demo."""
    from mlship.check import CheckOptions, run_check

    report = run_check(CheckOptions(model=models["1.1.0"], sample=cfg.resolve(cfg.sample), labels=cfg.check.labels,
                                    baseline=models["1.0.0"], tolerance=1.0, min_agreement=0.6,
                                    min_metric=cfg.check.min_metric))
    if not report.passed:
        raise DemoError(f"check failed: {'; '.join(f'{c.name}: {c.detail}' for c in report.failures())}")
    return {"exit_code": 0, "metrics": report.quality.metrics if report.quality else {}}


def _ship_bundle(cfg: Any, model: Path, output_dir: Path) -> str:
    """Build the edge bundle, push it to every configured target, point `stable` at it in each."""
    from mlship.bundles.service import BundleRequest, build_edge_bundle
    from mlship.targets.service import PushRequest, promote_channel, push_artifacts

    built = build_edge_bundle(BundleRequest.from_config(cfg, model, cfg.name, "1.1.0", output_dir=output_dir))
    bundle = built.bundle.path
    report = push_artifacts(PushRequest(artifact=Path(bundle), name=cfg.name, version="1.1.0",
                                        targets=list(cfg.targets), configured=cfg.targets))
    failure = report.failure()
    if failure is not None:
        raise DemoError(failure.one_line())
    for target in cfg.targets:
        promote_channel(cfg.name, "1.1.0", "stable", target, cfg.targets)
    return bundle


def _score(cfg: Any, model: Path, source: Path, output: Path) -> str:
    """Score the historical stays into a CSV that keeps each stay's id."""
    from mlship.batch.job import PredictOptions
    from mlship.batch.run import run_predict

    run_predict(PredictOptions(model=model, input=str(source), output=output, keep_columns=["stay_id"],
                               name=cfg.name, version=cfg.version))
    return str(output)


def _roll_out(cfg: Any, traffic: "_Traffic", say: Callable[[str], None], seconds_per_step: float) -> dict[str, Any]:
    """Shadow 1.1.0 beside 1.0.0, then promote it to a canary and step it to 100% behind the gate."""
    from mlship.rollout import engine
    from mlship.rollout.service import open_rollout

    def verb(what: str, action: Callable[..., Any], **options: Any) -> dict[str, Any]:
        rollout = open_rollout(cfg, "readmission")
        engine.take_view(rollout)  # as the command does: what this verb moves on from
        doc = action(rollout, **options).to_json()  # the document `mlship rollout ... --json` prints
        if doc["exit_code"] != 0:
            raise DemoError(f"rollout {what} exited {doc['exit_code']}, expected 0: {doc['message']}")
        return doc

    verb("start", engine.start, strategy="shadow", candidate="1.1.0", stable="1.0.0")
    traffic.run(seconds_per_step)
    doc = verb("step (shadow)", engine.step)
    shadow = (doc.get("gate") or {}).get("shadow") or {}
    if shadow.get("agreement") is not None:
        say(f"    shadow: {shadow['joined']} requests seen by both versions, {shadow['agreement']:.1%} same answer")
    doc = verb("promote", engine.promote)
    while True:
        say(f"    {doc['message']}")
        traffic.run(seconds_per_step)
        doc = verb("step", engine.step)
        if doc["rollout"]["phase"] == "Healthy":
            say(f"    {doc['message']}")
            break
    if traffic.failed:
        raise DemoError(f"{traffic.failed} of {traffic.sent} requests failed during the rollout")
    return {"shadow": shadow, "rollout": {"phase": doc["rollout"]["phase"], "stable": doc["rollout"]["stable"],
                                          "requests": traffic.sent, "failed": traffic.failed}}


def _drift(cfg: Any, reference: Path, current: Path, reports: Path, model: Path) -> dict[str, Any]:
    """A drift report per day, in HTML and Markdown, judged as `--fail-on window` judges it
    (exit code 4 when a day drifted: what starts retraining in CI); the model scores the
    training data once, so the logged outputs are judged too (prediction drift)."""
    from mlship.drift import run
    from mlship.errors import ExitCode

    options = run.drift_options(cfg.monitoring.overridden(reference=str(reference)), current=str(current), window="1d",
                                model=model)
    request = run.DriftRequest(options=options, html=reports / "drift.html", markdown=reports / "drift.md",
                               fail_on=["window"])
    run.prepare(request)
    report = run.analyse(request)
    verdict = run.act(request, report)
    windows = report.document()["windows"]
    drifted = [w.get("label") or w.get("start") for w in windows if w.get("dataset_drift")]
    code = ExitCode.CHECK_FAILED if verdict.failed else ExitCode.OK
    outputs = [c.name for c in report.columns if c.role == "output" and c.judged]
    return {"exit_code": int(code), "report": str(request.html), "windows": len(windows), "drifted_windows": drifted,
            "verdict": report.verdict.text, "outputs_judged": outputs}


def _config(directory: Path, models: dict[str, Path], servers: list["_Server"] | None = None) -> str:
    upstreams = {s.slot: s.url for s in servers} if servers else {"blue": "http://127.0.0.1:1", "green": "http://127.0.0.1:2"}
    return f"""# Written by `mlship demo`. SYNTHETIC data: generated patients, not real ones.
name: readmission
version: 1.1.0
model: data/model-1.1.0.onnx
sample: data/sample.csv
check:
  labels: {LABEL}
  min_metric: {{accuracy: 0.6, roc_auc: 0.65}}
targets:
  cloud: {{type: file, url: "file://{directory / 'targets' / 'cloud'}"}}
  onprem: {{type: file, url: "file://{directory / 'targets' / 'onprem'}"}}
rollout:
  router: {{type: file, path: route.json, upstreams: {json.dumps(upstreams)}}}
  steps: [20, 50, 100]
  logs: [logs/blue, logs/green]
  analysis: {{min_requests: 40, max_error_rate: 0.01, max_p99_latency_ms: 250, max_disagreement: 0.5}}
monitoring:
  reference: data/train.csv
"""


class _Server:
    def __init__(self, model: Path, version: str, slot: str, directory: Path) -> None:
        self.model, self.version, self.slot, self.directory = model, version, slot, directory
        self.process: subprocess.Popen | None = None
        self.url = ""

    def start(self) -> None:
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        err = open(self.directory / f"serve-{self.slot}.log", "wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "mlship", "serve", str(self.model), "--name", "readmission", "--model-version",
             self.version, "--variant", self.slot, "--port", str(port), "--log-dir",
             str(self.directory / "logs" / self.slot)],
            stdout=subprocess.DEVNULL, stderr=err, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(self.url + "/v2/health/ready", timeout=1) as reply:
                    if reply.status == 200:
                        return
            except OSError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise DemoError(f"mlship serve {self.model.name} did not start; see {err.name}")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class _Traffic:
    """Generated patients, routed client-side by the route file (split by client id, mirrored for shadows)."""

    def __init__(self, route_file: Path, urls: dict[str, str], sample: Path) -> None:
        from mlship.data import read_table

        self.route_file, self.urls = route_file, urls
        table = read_table(sample)
        rows = np.column_stack([np.asarray(table.columns[f], dtype=float) for f in FEATURES])
        self.bodies = [json.dumps({"instances": [dict(zip(FEATURES, map(float, r)))]}).encode() for r in rows]
        self.sent = self.failed = 0
        self._lock = threading.Lock()

    def run(self, seconds: float, workers: int = 4) -> None:
        stop = time.monotonic() + seconds
        threads = [threading.Thread(target=self._worker, args=(i, stop), daemon=True) for i in range(workers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    def _worker(self, index: int, stop: float) -> None:
        from mlship.rollout.routers.file import pick_slot

        rng = np.random.default_rng(index)
        while time.monotonic() < stop:
            route = json.loads(self.route_file.read_text())
            client = f"patient-app-{rng.integers(500)}"
            body = self.bodies[int(rng.integers(len(self.bodies)))]
            rid = uuid.uuid4().hex
            slot = pick_slot(route, client)
            ok = self._post(self.urls[slot], body, rid)
            if route.get("mirror") and route.get("candidate"):
                self._post(self.urls[route["candidate"]], body, rid)  # the candidate's answer is dropped
            with self._lock:
                self.sent += 1
                self.failed += not ok
            time.sleep(0.004)

    @staticmethod
    def _post(url: str, body: bytes, rid: str) -> bool:
        request = urllib.request.Request(url + "/predict", data=body, method="POST",
                                         headers={"Content-Type": "application/json", "X-Request-ID": rid})
        try:
            with urllib.request.urlopen(request, timeout=5) as reply:
                reply.read()
                return reply.status == 200
        except OSError:
            return False


def write_week(model: Path, directory: Path, per_day: int = 1500, seed: int = 5) -> None:
    """Seven days of prediction logs ending now; days 6 and 7 come from a drifted population."""
    from mlship.model.runner import Runner
    from mlship.predlog.schema import utc_timestamp

    directory.mkdir(parents=True, exist_ok=True)
    runner = Runner.from_path(model)
    rng = np.random.default_rng(seed)
    midnight = time.time() // 86400 * 86400  # whole UTC days, so `--window 1d` sees each day alone
    for day in range(7):
        drift = 0.0 if day < 5 else 1.0
        cols = patients(per_day, rng, drift=drift)
        X = matrix(cols)
        out = runner.run({"X": X})
        labels, probs = np.asarray(out["label"]), np.asarray(out["probabilities"])
        start = midnight - (7 - day) * 86400
        lines = []
        for i in range(per_day):
            lines.append(json.dumps({
                "ts": utc_timestamp(start + i * 86400 / per_day), "request_id": uuid.uuid4().hex,
                "model": "readmission", "version": "1.1.0", "variant": "green",
                # the values as a client sends them (the CSV's), not the model's float32 copies: 2.4 is
                # not 2.4000000953674316, which a domain classifier would tell from the reference
                "inputs": {f: float(cols[f][i]) for f in FEATURES},
                "outputs": {"label": int(labels[i]), "probabilities": [round(float(p), 6) for p in probs[i]]},
                "latency_ms": round(float(rng.gamma(2, 0.2)), 3), "status": 200, "error": None}))
        (directory / f"predictions-day{day + 1}.jsonl").write_text("\n".join(lines) + "\n")


def default_directory() -> Path:
    return Path(os.environ.get("MLSHIP_DEMO_DIR", "mlship-demo"))
