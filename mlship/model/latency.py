"""Latency and throughput of a Runner, measured after warm-up."""

from __future__ import annotations

import time

import numpy as np
from pydantic import BaseModel

from mlship.model.runner import Runner


class LatencyStats(BaseModel):
    """Per-call latency at one batch size."""

    batch_size: int
    runs: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    mean_ms: float
    rows_per_s: float


def measure_latency(
    runner: Runner,
    feeds: dict[str, np.ndarray],
    *,
    warmup: int = 10,
    min_runs: int = 50,
    max_runs: int = 2000,
    budget_s: float = 1.0,
) -> LatencyStats:
    """Time `runner.run(feeds)`: warm up, then run until the time budget is
    spent (at least `min_runs`, at most `max_runs` calls)."""
    for _ in range(warmup):
        runner.run(feeds)
    times: list[float] = []
    deadline = time.perf_counter() + budget_s
    while len(times) < max_runs and (len(times) < min_runs or time.perf_counter() < deadline):
        start = time.perf_counter()
        runner.run(feeds)
        times.append(time.perf_counter() - start)
    ms = np.array(times) * 1000.0
    rows = len(next(iter(feeds.values()))) if feeds else 1
    p50, p95, p99 = np.percentile(ms, [50, 95, 99])
    return LatencyStats(
        batch_size=rows,
        runs=len(ms),
        p50_ms=round(float(p50), 4),
        p95_ms=round(float(p95), 4),
        p99_ms=round(float(p99), 4),
        mean_ms=round(float(ms.mean()), 4),
        rows_per_s=round(float(rows * len(ms) / (ms.sum() / 1000.0)), 1),
    )
