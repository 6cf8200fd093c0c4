"""One served model: runner, micro-batcher, cache, prediction log, metrics."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from mlship.model.load import load_model
from mlship.model.runner import Runner
from mlship.model.signature import Signature
from mlship.predlog.schema import utc_timestamp
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
        self.runner = Runner(model, threads=settings.threads)
        self.signature: Signature = self.runner.signature
        self.output_names = self.runner.output_names
        self.metrics = ServeMetrics(self.name, self.version, self.variant, model.sha256)
        self.batcher = MicroBatcher(
            self.runner.run,
            max_batch=settings.max_batch,
            max_wait_ms=settings.max_wait_ms,
            batchable=is_batchable(self.signature),
            on_batch=lambda rows: self.metrics.batch.observe(rows, *self.metrics.base),
        )
        self.cache = LRUCache(settings.cache_size) if settings.cache_size else None
        self.log = None
        if settings.log_dir is not None:
            self.log = LogWriter(settings.log_dir, prefix=f"predictions-{self.name}-{self.variant}",
                                 max_bytes=settings.log_max_bytes, max_age_s=settings.log_max_age_s,
                                 queue_size=settings.log_queue_size)
            self.metrics.log_counts = lambda: {"written": self.log.written, "dropped": self.log.dropped}

    async def predict(self, feeds: dict[str, np.ndarray]) -> tuple[dict[str, Any], bool]:
        """Outputs for these feeds, and whether they came from the cache."""
        rows = len(next(iter(feeds.values())))
        if self.cache is not None:
            key = feeds_key(feeds)
            hit = self.cache.get(key)
            if hit is not None:
                self.metrics.rows.inc(*self.metrics.base, "true", amount=rows)
                return hit, True
        outputs = await self.batcher.submit(feeds)
        if self.cache is not None:
            self.cache.put(key, outputs)
        self.metrics.rows.inc(*self.metrics.base, "false", amount=rows)
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
        entry = _LogEntry(
            base={"request_id": request_id, "model": self.name, "version": self.version, "variant": self.variant,
                  "latency_ms": round((time.perf_counter() - started) * 1000.0, 3), "status": status,
                  "error": error},
            when=time.time(), feeds=feeds, instances=instances, outputs=outputs, cached=cached,
            feature_names=self.signature.feature_names,
        )
        self.log.submit(entry, rows=entry.rows)

    def close(self) -> None:
        """Finish running batches and write every accepted log record."""
        self.batcher.close()
        if self.log is not None:
            self.log.close()


@dataclass
class _LogEntry:
    """One request's worth of log records, expanded in the writer thread."""

    base: dict[str, Any]
    when: float
    feeds: dict[str, np.ndarray] | None
    instances: list[dict[str, Any]] | None
    outputs: dict[str, Any] | None
    cached: bool
    feature_names: list[str] | None

    @property
    def rows(self) -> int:
        if self.instances is not None:
            return len(self.instances)
        if self.feeds:
            return len(next(iter(self.feeds.values())))
        return 1

    def records(self) -> list[dict[str, Any]]:
        rows = self.rows
        inputs = self.instances if self.instances is not None else input_rows(self.feeds, self.feature_names)
        outputs = row_outputs(self.outputs, rows) if self.outputs is not None else [{}] * rows
        ts = utc_timestamp(self.when)
        records = []
        for i in range(rows):
            record = {"ts": ts, **self.base, "inputs": inputs[i] if inputs else {}, "outputs": outputs[i]}
            if self.cached:
                record["cached"] = True
            if rows > 1:
                record["row"] = i
            records.append(record)
        return records


def input_rows(feeds: dict[str, np.ndarray] | None, feature_names: list[str] | None) -> list[dict[str, Any]]:
    """Inputs per row; named features when the model lists them for its one 2-D input."""
    if not feeds:
        return []
    rows = len(next(iter(feeds.values())))
    if feature_names and len(feeds) == 1:
        matrix = next(iter(feeds.values())).reshape(rows, -1)
        if matrix.shape[1] == len(feature_names):
            return [dict(zip(feature_names, row)) for row in matrix]
    columns = {n: [_scalar(v) for v in value] for n, value in feeds.items()}
    return [{n: columns[n][i] for n in columns} for i in range(rows)]


def row_outputs(outputs: dict[str, Any], rows: int) -> list[dict[str, Any]]:
    """Split batch outputs into one dict per row (outputs without a batch axis are repeated)."""
    per_row: list[dict[str, Any]] = [{} for _ in range(rows)]
    for name, value in outputs.items():
        array = np.asarray(value)
        if array.ndim and array.shape[0] == rows:
            for i in range(rows):  # NumPy values: JSON writes float32 at its own precision
                per_row[i][name] = _scalar(array[i])
        else:
            for i in range(rows):
                per_row[i][name] = array
    return per_row


def is_batchable(signature: Signature) -> bool:
    """Requests can be stacked when every input and output has a dynamic first axis."""
    for spec in (*signature.inputs, *signature.outputs):
        if not spec.is_tensor:
            return False
        if spec.shape is not None and (not spec.shape or isinstance(spec.shape[0], int)):
            return False
    return True


def _scalar(value: Any) -> Any:
    """[x] -> x, so [N, 1] features log as plain values."""
    if isinstance(value, (list, np.ndarray)) and len(value) == 1:
        return value[0]
    return value
