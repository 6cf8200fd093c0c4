"""Prometheus metrics in the text exposition format (version 0.0.4).

A small registry of counters and histograms keyed by label values; the
server is one event loop, and the log writer's counts are read at scrape
time, so no locking is needed here. The request path only bumps plain
counters (`observe_request`, `count_rows`, `observe_batch`); labels, bucket
sums and text are made when /metrics is scraped.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections import defaultdict
from typing import Callable

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


class Counter:
    def __init__(self, name: str, help_text: str, labels: tuple[str, ...]) -> None:
        self.name, self.help, self.labels = name, help_text, labels
        self.values: dict[tuple[str, ...], float] = defaultdict(float)

    def inc(self, *label_values: str, amount: float = 1.0) -> None:
        self.values[label_values] += amount

    def render(self) -> list[str]:
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} counter"]
        lines += [f"{self.name}{_labels(self.labels, k)} {_num(v)}" for k, v in sorted(self.values.items())]
        return lines


class Gauge(Counter):
    def set(self, *label_values: str, value: float) -> None:
        self.values[label_values] = value

    def render(self) -> list[str]:
        return [line.replace(" counter", " gauge", 1) if line.startswith("# TYPE") else line
                for line in super().render()]


class Histogram:
    def __init__(self, name: str, help_text: str, labels: tuple[str, ...], buckets: tuple[float, ...]) -> None:
        self.name, self.help, self.labels, self.buckets = name, help_text, labels, buckets
        self.counts: dict[tuple[str, ...], list[int]] = {}
        self.sums: dict[tuple[str, ...], float] = defaultdict(float)

    def observe(self, value: float, *label_values: str) -> None:
        counts = self.counts.get(label_values) or self.counts.setdefault(label_values, [0] * (len(self.buckets) + 1))
        counts[bisect_left(self.buckets, value)] += 1  # the first bound >= value; past the last: +Inf
        self.sums[label_values] += value

    def render(self) -> list[str]:
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} histogram"]
        for key, counts in sorted(self.counts.items()):
            running = 0
            for bound, count in zip((*self.buckets, math.inf), counts):
                running += count
                le = "+Inf" if bound == math.inf else _num(bound)
                lines.append(f"{self.name}_bucket{_labels(self.labels + ('le',), key + (le,))} {running}")
            lines.append(f"{self.name}_sum{_labels(self.labels, key)} {_num(self.sums[key])}")
            lines.append(f"{self.name}_count{_labels(self.labels, key)} {running}")
        return lines


class ServeMetrics:
    """Every metric `mlship serve` exposes, labelled by model, version and variant."""

    BASE = ("model", "version", "variant")

    def __init__(self, model: str, version: str, variant: str, sha256: str) -> None:
        self.base = (model, version, variant)
        labels = self.BASE
        self.info = Gauge("mlship_model_info", "The served model (value is always 1).", labels + ("sha256",))
        self.info.set(*self.base, sha256, value=1)
        self.requests = Counter("mlship_requests_total", "HTTP requests by endpoint and status.",
                                labels + ("endpoint", "status"))
        self.latency = Histogram("mlship_request_duration_seconds", "Request latency by endpoint.",
                                 labels + ("endpoint",), LATENCY_BUCKETS)
        self.batch = Histogram("mlship_batch_size", "Rows per onnxruntime run (micro-batches).",
                               labels, BATCH_BUCKETS)
        self.rows = Counter("mlship_predictions_total", "Rows predicted.", labels + ("cached",))
        self.inflight = Gauge("mlship_inflight_requests", "Requests being served now.", labels)
        self.inflight_now: Callable[[], int] = lambda: 0
        self.log_counts: Callable[[], dict[str, int]] = lambda: {}
        self._requests: dict[tuple[str, int], int] = {}
        self._latency: dict[str, list[float]] = {}  # per endpoint: a count per bucket, then the sum
        self._rows = [0, 0]  # not cached, cached
        self._batch = [0] * (len(BATCH_BUCKETS) + 2)  # a count per bucket, then the sum

    def observe_request(self, endpoint: str, status: int, seconds: float) -> None:
        key = (endpoint, status)
        self._requests[key] = self._requests.get(key, 0) + 1
        counts = self._latency.get(endpoint)
        if counts is None:
            counts = self._latency[endpoint] = [0] * (len(LATENCY_BUCKETS) + 2)
        counts[bisect_left(LATENCY_BUCKETS, seconds)] += 1  # the first bound >= seconds; past the last: +Inf
        counts[-1] += seconds

    def count_rows(self, rows: int, cached: bool) -> None:
        self._rows[cached] += rows

    def observe_batch(self, rows: int) -> None:
        """A run of `rows` rows: the batch size, and as many rows predicted (not cached)."""
        self._rows[0] += rows
        counts = self._batch
        counts[bisect_left(BATCH_BUCKETS, rows)] += 1
        counts[-1] += rows

    def _fold(self) -> None:
        """Move the request path's plain counters into the labelled metrics."""
        for (endpoint, status), count in list(self._requests.items()):
            self.requests.values[(*self.base, endpoint, str(status))] = count
        for endpoint, counts in list(self._latency.items()):
            self.latency.counts[(*self.base, endpoint)] = [int(c) for c in counts[:-1]]
            self.latency.sums[(*self.base, endpoint)] = counts[-1]
        if any(self._batch[:-1]):
            self.batch.counts[self.base] = self._batch[:-1]
            self.batch.sums[self.base] = self._batch[-1]
        for cached, count in (("false", self._rows[0]), ("true", self._rows[1])):
            if count:
                self.rows.values[(*self.base, cached)] = count
        self.inflight.set(*self.base, value=self.inflight_now())

    def render(self) -> str:
        self._fold()
        log = Counter("mlship_log_records_total", "Prediction-log records by outcome (written, dropped, failed).",
                      self.BASE + ("outcome",))
        for outcome, count in self.log_counts().items():
            log.inc(*self.base, outcome, amount=count)
        lines: list[str] = []
        for metric in (self.info, self.requests, self.latency, self.batch, self.rows, self.inflight, log):
            lines += metric.render()
        dropped = self.log_counts().get("dropped", 0)
        lines += ["# HELP mlship_log_records_dropped_total Prediction-log records dropped (queue full).",
                  "# TYPE mlship_log_records_dropped_total counter",
                  f"mlship_log_records_dropped_total{_labels(self.BASE, self.base)} {dropped}"]
        return "\n".join(lines) + "\n"


def _labels(names: tuple[str, ...], values: tuple[str, ...]) -> str:
    if not names:
        return ""
    pairs = ",".join(f'{n}="{_escape(v)}"' for n, v in zip(names, values))
    return "{" + pairs + "}"


def _escape(value: str) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))
