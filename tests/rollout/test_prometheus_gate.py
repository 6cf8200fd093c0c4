"""Gate metrics from a real Prometheus (Debian's) scraping both `mlship serve` processes."""

from __future__ import annotations

import time

from tests.rollout.conftest import Load, broken_model

# `or vector(0)`: no 5xx series at all means a ratio of 0, not "no data". A fixed 30 s range: on a busy
# 2-core machine scrapes lag, and rate() over the few seconds of a test step ($window) can be empty.
ERROR_RATIO = ('(sum(rate(mlship_requests_total{version="$candidate",endpoint="predict",status=~"5.."}[30s])) '
               'or vector(0)) / sum(rate(mlship_requests_total{version="$candidate",endpoint="predict"}[30s]))')
# $window is the step so far, e.g. 7s.
SCRAPED = 'sum(max_over_time(mlship_requests_total{version="$candidate",endpoint="predict"}[$window]))'


def analysis(prom_url: str) -> str:
    # The log-based error rate is off: Prometheus alone judges failures here.
    return ("{min_requests: 0, max_error_rate: null, prometheus: {url: '%s', queries: ["
            "{name: candidate_5xx_ratio, query: '%s', max: 0.05}, {name: candidate_requests, query: '%s', min: 20}]}}"
            % (prom_url, ERROR_RATIO.replace("'", "''"), SCRAPED.replace("'", "''")))


def wait_scraped(prom, version: str, count: int) -> None:
    """Until prometheus has enough samples for both queries."""
    deadline = time.monotonic() + 60
    ratio = ERROR_RATIO.replace("$candidate", version)
    total = f'sum(mlship_requests_total{{version="{version}",endpoint="predict"}})'
    while True:
        a, b = prom.query(ratio)["data"]["result"], prom.query(total)["data"]["result"]
        if a and a[0]["value"][1] != "NaN" and b and float(b[0]["value"][1]) >= count:
            return
        assert time.monotonic() < deadline, f"prometheus never saw {count} requests of {version}"
        time.sleep(0.5)


def with_prometheus(stage, prometheus_factory):
    """Prometheus scraping both servers, and the gate set to ask it."""
    prom = prometheus_factory([f"127.0.0.1:{stage.blue.port}", f"127.0.0.1:{stage.green.port}"])
    config = stage.project / "mlship.yaml"
    config.write_text(config.read_text().replace("analysis: {min_requests: 0}", "analysis: " + analysis(prom.url)))
    assert stage.rollout("start", "bc", "--candidate", "2.0.0", "--stable", "1.0.0").code == 0
    return prom


def step_under_load(stage, prom):
    load = Load(stage.port, rate=100).start()
    try:
        wait_scraped(prom, "2.0.0", 25)
        return stage.rollout("--json", "step", "bc")
    finally:
        load.stop()


def test_prometheus_queries_pass_a_healthy_candidate(stage_factory, prometheus_factory):
    stage = stage_factory(analysis="{min_requests: 0}")
    prom = with_prometheus(stage, prometheus_factory)
    result = stage.rollout("--json", "step", "bc", "--dry-run")
    assert result.code == 5, result.stdout  # nothing scraped yet: inconclusive
    result = step_under_load(stage, prom)
    assert result.code == 0, result.stdout + result.stderr
    metrics = {m["name"]: m for m in result.json()["gate"]["metrics"]}
    assert metrics["candidate_5xx_ratio"]["result"] == "pass" and metrics["candidate_5xx_ratio"]["value"] == 0
    assert metrics["candidate_requests"]["result"] == "pass" and metrics["candidate_requests"]["value"] >= 25
    assert stage.route()["weight"] == 50


def test_prometheus_query_fails_a_broken_candidate(stage_factory, prometheus_factory, tmp_path):
    stage = stage_factory(broken_model(tmp_path / "broken.onnx"), analysis="{min_requests: 0}")
    prom = with_prometheus(stage, prometheus_factory)
    result = step_under_load(stage, prom)
    assert result.code == 6, result.stdout + result.stderr
    doc = result.json()
    failed = [m["name"] for m in doc["gate"]["metrics"] if m["result"] == "fail"]
    assert failed == ["candidate_5xx_ratio"] and stage.route()["weight"] == 0
    # Prometheus gone: the gate cannot ask it -> exit 7, nothing changed.
    prom.stop()
    assert stage.rollout("start", "bc", "--candidate", "2.0.0").code == 0  # again: green serves 2.0.0
    result = stage.rollout("step", "bc")
    assert result.code == 7 and "Prometheus at" in result.stderr
    assert stage.route()["weight"] == 10 and stage.state()["step"] == 0
