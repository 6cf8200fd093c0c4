"""One served model: runner, micro-batcher, cache, prediction log, metrics."""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from typing import Any, Awaitable, Sequence

import numpy as np

from mlship.model.load import load_model
from mlship.model.runner import Runner
from mlship.model.signature import Signature
from mlship.predlog.entries import LineFormat, LogEntry, SentRows
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
            on_run=self._log_run,
            on_fail=self._log_failure,
            on_lone=self._log_lone,
        )
        self.cache = LRUCache(settings.cache_size) if settings.cache_size else None
        self.log = None
        self._line = LineFormat(self.name, self.version, self.variant, self.signature.features)
        self._held: list[tuple[Any, ...]] = []  # lone requests' records, made together (_held_back)
        self._held_timer: asyncio.TimerHandle | None = None
        # At most half the log's queue held (the writer wakes at half full): a batch of lines
        # is queued whole or dropped whole, and never alone overfills a small queue.
        self._hold_rows = min(HOLD_ROWS, max(1, settings.log_queue_size // 2))
        self._log_all = settings.log_sample_rate >= 1.0  # no draw per request
        if settings.log_dir is not None:
            self.log = LogWriter(settings.log_dir, prefix=f"predictions-{self.name}-{self.variant}",
                                 max_bytes=settings.log_max_bytes, max_age_s=settings.log_max_age_s,
                                 queue_size=settings.log_queue_size)
            self.metrics.log_counts = lambda: {"written": self.log.written, "dropped": self.log.dropped,
                                               "failed": self.log.failed}

    def predict(self, feeds: dict[str, np.ndarray], alone: bool = False, request_id: str | None = None,
                started: float = 0.0, instances: list[dict[str, Any]] | None = None) -> Awaitable[dict[str, Any]]:
        """The outputs for these feeds, to await (`alone`: no other request is in
        flight; see MicroBatcher.submit).

        With a `request_id`, the answered prediction is logged too (`instances`:
        the rows as sent, logged instead of the feeds): a run's requests
        together, in one call for the batch (`_log_run`). Without a cache this
        is the batcher's own coroutine: no frame of its own on every request."""
        if self.cache is not None:
            return self._predict_cached(feeds, alone, request_id, started, instances)
        return self.batcher.submit(feeds, alone, self._tag(request_id, started, instances))

    def predict_to(self, feeds: dict[str, np.ndarray], alone: bool, request_id: str | None, started: float,
                   instances: list[dict[str, Any]] | None, reply: Any) -> None:
        """`predict` without a coroutine (no cache): `reply(outputs, None)` or
        `reply(None, error)`, once (MicroBatcher.submit_to)."""
        self.batcher.submit_to(feeds, alone, self._tag(request_id, started, instances), reply)

    def _tag(self, request_id: str | None, started: float, instances: list[dict[str, Any]] | None) -> Any:
        """What the batcher hands to `_log_run` for a request to log (None: not logged; sampled)."""
        # `_log_all or`: the usual rate of 1 without a method call on every request
        if request_id is None or self.log is None or not (self._log_all or self._sampled()):
            return None
        return request_id, started, instances

    def _sampled(self) -> bool:
        """Whether to log this request (--log-sample-rate)."""
        return self._log_all or random.random() < self.settings.log_sample_rate

    async def _predict_cached(self, feeds: dict[str, np.ndarray], alone: bool, request_id: str | None,
                              started: float, instances: list[dict[str, Any]] | None) -> dict[str, Any]:
        key = feeds_key(feeds)
        hit = self.cache.get(key)
        if hit is not None:
            self.metrics.count_rows(len(next(iter(feeds.values()))), cached=True)
            if request_id is not None:
                self.log_predictions(request_id, started, feeds=feeds if instances is None else None,
                                     instances=instances, outputs=hit, cached=True)
            return hit
        outputs = await self.batcher.submit(feeds, alone, self._tag(request_id, started, instances))
        self.cache.put(key, outputs)
        return outputs

    def _log_run(self, tags: list[tuple[str, float, Any]], feeds: dict[str, np.ndarray],
                 outputs: dict[str, Any]) -> None:
        """Log a run's requests (`predict`'s tags; several: one row each, in the
        batch's order): their lines made together, else one by one."""
        if len(tags) == 1:
            self._log_lone(tags[0], feeds, outputs)
            return
        now, when = time.perf_counter(), time.time()
        try:
            ids, starts, sent = zip(*tags)
            latencies = [round((now - started) * 1000.0, 3) for started in starts]
            unsent = sent.count(None)
            lines = None
            if not unsent or unsent == len(sent):  # all the rows as sent, or all feeds
                lines = self._line.batch(list(ids), latencies, when, feeds, _first_rows(sent) if not unsent else None,
                                         outputs)
            if lines is not None:
                self.log.submit_lines(lines)
                return
            for i, (request_id, _, rows) in enumerate(tags):  # a mixed or unusual batch: each request's own
                self._log_records(request_id, latencies[i], when, {n: v[i:i + 1] for n, v in feeds.items()}
                                  if rows is None else None, rows, {n: v[i:i + 1] for n, v in outputs.items()})
        except Exception:  # a record that cannot be made is counted, never an error for the request
            self.log.count_failed(len(tags))

    def _log_lone(self, tag: tuple[str, float, Any], feeds: dict[str, np.ndarray], outputs: dict[str, Any]) -> None:
        """Log a request run on its own (the batcher's `on_lone`: once its answer has gone
        out; or a run of one): its record held back (`_held_back`), else made now."""
        now, when = time.perf_counter(), time.time()
        request_id, started, instances = tag
        try:
            latency_ms = round((now - started) * 1000.0, 3)
            if not self._held_back((request_id, latency_ms, when, feeds, instances, outputs)):
                self._log_records(request_id, latency_ms, when, feeds if instances is None else None, instances,
                                  outputs)
        except Exception:  # a record that cannot be made is counted, never an error for the request
            self.log.count_failed(1)

    def _held_back(self, record: tuple[Any, ...]) -> bool:
        """Hold a lone one-row request's record back, to be made with the next ones
        (`_write_held`: a lone request's line alone costs ~9 us of the event loop, in a
        batch ~2 us a row), for at most HOLD_S or HOLD_ROWS requests. False: make it now
        (off the event loop, or not one row)."""
        feeds, instances = record[3], record[4]
        if len(next(iter(feeds.values()), ())) != 1 or (instances is not None and len(instances) != 1):
            return False
        loop = asyncio._get_running_loop()
        if loop is None:  # the runner's thread (a slow model): its batches are made there
            return False
        held = self._held
        held.append(record)
        if len(held) >= self._hold_rows:
            self._write_held()
        elif self._held_timer is None:
            self._held_timer = loop.call_later(HOLD_S, self._write_held)
        return True

    def _write_held(self) -> None:
        """The held-back records: all as one batch of lines when they are alike (the
        usual case, `_held_lines`), else one batch per run of alike requests."""
        if self._held_timer is not None:
            self._held_timer.cancel()
            self._held_timer = None
        held, self._held = self._held, []
        lines = self._held_lines(held) if len(held) > 1 else None
        if lines is not None:
            self.log.submit_lines(lines)
            return
        for _, alike in itertools.groupby(held, key=_held_key):
            self._write_alike(list(alike))

    def _held_lines(self, held: list[tuple[Any, ...]]) -> list[bytes] | None:
        """The lines of these held records as one batch, or None when they are not all
        alike (rows as sent or feeds in each, one-row arrays of the same names, dtypes
        and trailing shapes) or LineFormat does not take them: then each run of alike
        ones is made on its own (`_held_key`), as before, so nothing is lost here."""
        try:
            ids, latencies, whens, feeds, sent, outputs = map(list, zip(*held))
            unsent = sent.count(None)
            if unsent == len(sent):
                inputs, rows = _stacked(feeds), None
                if inputs is None:
                    return None
            elif unsent:
                return None
            else:
                inputs, rows = None, _first_rows(sent)
            stacked = _stacked(outputs)
            return None if stacked is None else self._line.batch(ids, latencies, whens, inputs, rows, stacked)
        except Exception:  # not alike after all (the shapes or names differ)
            return None

    def _write_alike(self, group: list[tuple[Any, ...]]) -> None:
        try:
            lines = self._held_lines(group) if len(group) > 1 else None
            if lines is not None:
                self.log.submit_lines(lines)
                return
            for request_id, latency_ms, when, feeds, instances, outputs in group:
                self._log_records(request_id, latency_ms, when, feeds if instances is None else None,
                                  instances, outputs)
        except Exception:  # a record that cannot be made is counted, never an error for the request
            self.log.count_failed(len(group))

    def _log_failure(self, tags: list[tuple[str, float, Any]], exc: Exception) -> None:
        """Log a failed run's requests (status 500) before they are answered, so gates count them."""
        now, when = time.perf_counter(), time.time()
        error = f"{type(exc).__name__}: {exc}"[:500]
        for request_id, started, _ in tags:
            self._log_entry(request_id, round((now - started) * 1000.0, 3), when, None, None, None, False, 500, error)

    def log_predictions(self, request_id: str, started: float, *, feeds: dict[str, np.ndarray] | None = None,
                        instances: list[dict[str, Any]] | None = None, outputs: dict[str, Any] | None = None,
                        cached: bool = False, status: int = 200, error: str | None = None) -> None:
        """Queue this request's records (never blocks; honours the sample rate).

        The per-row split happens later, in the log writer's thread."""
        if self.log is None or not self._sampled():
            return
        latency_ms, when = round((time.perf_counter() - started) * 1000.0, 3), time.time()
        if outputs is not None and status == 200:
            self._log_records(request_id, latency_ms, when, feeds, instances, outputs, cached)
        else:
            self._log_entry(request_id, latency_ms, when, feeds, instances, outputs, cached, status, error)

    def _log_records(self, request_id: str, latency_ms: float, when: float, feeds: dict[str, np.ndarray] | None,
                     instances: list[dict[str, Any]] | None, outputs: dict[str, Any], cached: bool = False) -> None:
        """An answered request's records: its line when LineFormat takes it, else an entry for the writer."""
        line = self._line.line(request_id, latency_ms, when, feeds, instances, outputs, cached)
        if line is not None:
            self.log.submit(line)
        else:
            self._log_entry(request_id, latency_ms, when, feeds, instances, outputs, cached, 200, None)

    def _log_entry(self, request_id: str, latency_ms: float, when: float, feeds: dict[str, np.ndarray] | None,
                   instances: list[dict[str, Any]] | None, outputs: dict[str, Any] | None, cached: bool,
                   status: int, error: str | None) -> None:
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
            self._write_held()
            self.log.close()


# A lone one-row request's log record waits this long, or for this many more, to be made
# with the others in one batch of lines (ModelService._held_back).
HOLD_S = 0.01
HOLD_ROWS = 64


def _held_key(record: tuple[Any, ...]) -> tuple[Any, ...]:
    """What held-back records made in one batch share: inputs and outputs alike, rows as sent or not."""
    _, _, _, feeds, instances, outputs = record
    return (tuple((n, v.dtype, v.shape[1:]) for n, v in feeds.items()), instances is None,
            tuple((n, type(v), getattr(v, "dtype", None), getattr(v, "shape", (0,))[1:]) for n, v in outputs.items()))


def _stacked(columns: list[dict[str, Any]]) -> dict[str, np.ndarray] | None:
    """Dicts of one-row arrays, stacked by name (row i from dict i); None unless each has
    the first one's names, every value is an array of one row and its name's dtype (never
    promoted: another dtype raises, as another trailing shape does)."""
    first = columns[0]
    if set(map(len, columns)) != {len(first)}:
        return None
    stacked = {}
    for name, value in first.items():
        column = [c[name] for c in columns]
        if type(value) is not np.ndarray or set(map(type, column)) != {np.ndarray} or set(map(len, column)) != {1}:
            return None
        stacked[name] = np.concatenate(column, dtype=value.dtype, casting="no")
    return stacked


def is_batchable(signature: Signature) -> bool:
    """Requests can be stacked when every input and output has a dynamic first axis."""
    for spec in (*signature.inputs, *signature.outputs):
        if not spec.is_tensor:
            return False
        if spec.shape is not None and (not spec.shape or isinstance(spec.shape[0], int)):
            return False
    return True


def _first_rows(sent: Sequence[Any]) -> Any:
    """Each one-row request's row as sent, together (SentRows when they all are)."""
    return SentRows.first_rows(sent) or [s[0] for s in sent]
