"""ServeMetrics: the request path's plain counters read back as Prometheus metrics at scrape."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from mlship.serve.metrics import ServeMetrics


def samples(metrics: ServeMetrics) -> dict[tuple, float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(metrics.render()) for s in family.samples}


def test_latency_buckets_sums_and_counts_per_endpoint_survive_two_scrapes():
    metrics = ServeMetrics("bc", "1", "stable", "abc")
    for seconds in (0.0004, 0.0005, 0.003, 0.2, 7.0):
        metrics.observe_request("infer", 200, seconds)
    metrics.observe_request("health", 200, 0.0001)
    base = (("model", "bc"), ("variant", "stable"), ("version", "1"))

    def bucket(endpoint, le):
        return got[("mlship_request_duration_seconds_bucket", tuple(sorted(base + (("endpoint", endpoint), ("le", le)))))]

    got = samples(metrics)
    assert [bucket("infer", le) for le in ("0.0005", "0.001", "0.005", "0.25", "5", "+Inf")] == [2, 2, 3, 4, 4, 5]
    assert bucket("health", "0.0005") == 1
    key = tuple(sorted(base + (("endpoint", "infer"),)))
    assert got[("mlship_request_duration_seconds_count", key)] == 5
    assert abs(got[("mlship_request_duration_seconds_sum", key)] - 7.2039) < 1e-9
    metrics.observe_request("infer", 400, 0.01)
    got = samples(metrics)
    assert got[("mlship_request_duration_seconds_count", key)] == 6 and bucket("infer", "0.01") == 4
    assert got[("mlship_requests_total", tuple(sorted(base + (("endpoint", "infer"), ("status", "400")))))] == 1
