"""One served model: runner, micro-batcher, cache, prediction log, metrics."""

from __future__ import annotations

import random
import time
from typing import Any

import numpy as np

from mlship.model.load import load_model
from mlship.model.runner import Runner
from mlship.model.signature import Signature
from mlship.predlog.entries import LineFormat, LogEntry
from mlship.predlog.writer import LogWriter
from mlship.serve.batching import MicroBatcher
from mlship.serve.cache import LRUCache, feeds_key
from mlship.serve.metrics import ServeMetrics
from mlship.serve.settings import ServeSettings


class ModelService:
    """Loads the model at construction (errors before any port is bound)."""

    def __init__(self, settings: ServeSettings) -> None:
        self.settings = settings
        self.name, self.version, self.variant = settings.name, settings.version, settings.variant
        model = load_model(settings.model_path)
        # One intra-op thread unless asked: concurrent requests are batched, workers
        # scale across cores, and a one-thread run never waits for pool threads.
        self.runner = Runner(model, threads=settings.threads or 1, features=settings.features,
                             providers=settings.providers, spinning=False)
        self.signature: Signature = self.runner.signature
        self.output_names = self.runner.output_names
        self.metrics = ServeMetrics(self.name, self.version, self.variant, model.sha256)
        self.batcher = MicroBatcher(
            self.runner.run,
            max_batch=settings.max_batch,
            max_wait_ms=settings.max_wait_ms,
            batchable=is_batchable(self.signature),
            on_batch=self.metrics.observe_batch,
        )
        self.cache = LRUCache(settings.cache_size) if settings.cache_size else None
        self.log = None
        self._line = LineFormat(self.name, self.version, self.variant, self.signature.features)
        if settings.log_dir is not None:
            self.log = LogWriter(settings.log_dir, prefix=f"predictions-{self.name}-{self.variant}",
                                 max_bytes=settings.log_max_bytes, max_age_s=settings.log_max_age_s,
                                 queue_size=settings.log_queue_size)
            self.metrics.log_counts = lambda: {"written": self.log.written, "dropped": self.log.dropped,
                                               "failed": self.log.failed}

    async def predict(self, feeds: dict[str, np.ndarray], alone: bool = False) -> tuple[dict[str, Any], bool]:
        """Outputs for these feeds, and whether they came from the cache
        (`alone`: no other request is in flight; see MicroBatcher.submit)."""
        rows = len(next(iter(feeds.values())))
        if self.cache is not None:
            key = feeds_key(feeds)
            hit = self.cache.get(key)
            if hit is not None:
                self.metrics.count_rows(rows, cached=True)
                return hit, True
        outputs = await self.batcher.submit(feeds, alone)
        if self.cache is not None:
            self.cache.put(key, outputs)
        self.metrics.count_rows(rows, cached=False)
        return outputs, False

    def log_predictions(self, request_id: str, started: float, *, feeds: dict[str, np.ndarray] | None = None,
                        instances: list[dict[str, Any]] | None = None, outputs: dict[str, Any] | None = None,
                        cached: bool = False, status: int = 200, error: str | None = None) -> None:
        """Queue this request's records (never blocks; honours the sample rate).

        The per-row split happens later, in the log writer's thread."""
        if self.log is None:
            return
        rate = self.settings.log_sample_rate
        if rate < 1.0 and random.random() >= rate:
            return
        latency_ms, when = round((time.perf_counter() - started) * 1000.0, 3), time.time()
        if outputs is not None and status == 200:
            line = self._line.line(request_id, latency_ms, when, feeds, instances, outputs, cached)
            if line is not None:
                self.log.submit(line)
                return
        entry = LogEntry(
            base={"request_id": request_id, "model": self.name, "version": self.version, "variant": self.variant,
                  "latency_ms": latency_ms, "status": status, "error": error},
            when=when, feeds=feeds, instances=instances, outputs=outputs, cached=cached,
            features=self.signature.features,
        )
        self.log.submit(entry, rows=entry.rows)

    def close(self) -> None:
        """Finish running batches and write every accepted log record."""
        self.batcher.close()
        if self.log is not None:
            self.log.close()


def is_batchable(signature: Signature) -> bool:
    """Requests can be stacked when every input and output has a dynamic first axis."""
    for spec in (*signature.inputs, *signature.outputs):
        if not spec.is_tensor:
            return False
        if spec.shape is not None and (not spec.shape or isinstance(spec.shape[0], int)):
            return False
    return True
