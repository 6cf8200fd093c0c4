"""Micro-batching: concurrent requests share one onnxruntime run.

One drain task per model runs batches one after another on a worker thread.
While a batch runs, new requests queue up; the next batch takes all of them
(up to `max_batch` rows) that have the same trailing shapes and dtypes, so
batching costs a lone request nothing. `max_wait_ms` > 0 additionally holds a
small batch open that long for more requests. Each caller gets exactly its
own rows back, split by offsets.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

Feeds = dict[str, np.ndarray]
Outputs = dict[str, Any]


@dataclass
class _Pending:
    feeds: Feeds
    rows: int
    key: tuple
    future: asyncio.Future
    arrived: float = field(default_factory=time.perf_counter)


class MicroBatcher:
    """Coalesces `submit` calls into batched `run` calls."""

    def __init__(
        self,
        run: Callable[[Feeds], Outputs],
        *,
        max_batch: int = 64,
        max_wait_ms: float = 0.0,
        batchable: bool = True,
        on_batch: Callable[[int], None] = lambda rows: None,
    ) -> None:
        self._run = run
        self.max_batch = max_batch
        self.max_wait_s = max_wait_ms / 1000.0
        self.batchable = batchable
        self._on_batch = on_batch
        self._pending: deque[_Pending] = deque()
        self._wakeup: asyncio.Event | None = None
        self._drainer: asyncio.Task | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mlship-runner")

    async def submit(self, feeds: Feeds) -> Outputs:
        """Run `feeds` (possibly together with others); outputs for these rows only."""
        loop = asyncio.get_running_loop()
        rows = len(next(iter(feeds.values()))) if feeds else 1
        key = tuple((n, v.dtype.str, v.shape[1:]) for n, v in sorted(feeds.items()))
        item = _Pending(feeds, rows, key, loop.create_future())
        self._pending.append(item)
        if self._wakeup is not None:
            self._wakeup.set()
        if self._drainer is None or self._drainer.done():
            self._drainer = loop.create_task(self._drain())
        return await item.future

    def close(self) -> None:
        self._executor.shutdown(wait=True)

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        while self._pending:
            await self._hold_open()
            batch = self._take()
            try:
                if len(batch) == 1:
                    results = [await loop.run_in_executor(self._executor, self._run, batch[0].feeds)]
                else:
                    results = await loop.run_in_executor(self._executor, self._run_many, batch)
            except Exception as exc:  # give every caller the error, keep serving
                for item in batch:
                    if not item.future.done():
                        item.future.set_exception(exc)
                continue
            self._on_batch(sum(item.rows for item in batch))
            for item, result in zip(batch, results):
                if not item.future.done():
                    item.future.set_result(result)

    async def _hold_open(self) -> None:
        """Wait up to max_wait for more rows when the batch is not full."""
        if not (self.batchable and self.max_wait_s > 0):
            return
        deadline = self._pending[0].arrived + self.max_wait_s
        self._wakeup = asyncio.Event()
        try:
            while sum(p.rows for p in self._pending) < self.max_batch:
                remaining = deadline - time.perf_counter()
                if remaining <= 0:
                    break
                self._wakeup.clear()
                try:
                    await asyncio.wait_for(self._wakeup.wait(), remaining)
                except asyncio.TimeoutError:
                    break
        finally:
            self._wakeup = None

    def _take(self) -> list[_Pending]:
        """The first pending request plus later ones of the same shape, up to max_batch rows."""
        first = self._pending.popleft()
        batch, rows = [first], first.rows
        if not self.batchable:
            return batch
        keep: deque[_Pending] = deque()
        while self._pending:
            item = self._pending.popleft()
            if item.key == first.key and rows + item.rows <= self.max_batch:
                batch.append(item)
                rows += item.rows
            else:
                keep.append(item)
        self._pending.extendleft(reversed(keep))
        return batch

    def _run_many(self, batch: list[_Pending]) -> list[Outputs]:
        names = batch[0].feeds.keys()
        merged = {n: np.concatenate([item.feeds[n] for item in batch]) for n in names}
        outputs = self._run(merged)
        total = sum(item.rows for item in batch)
        offsets = np.cumsum([0] + [item.rows for item in batch])
        results: list[Outputs] = [{} for _ in batch]
        for name, value in outputs.items():
            if not (isinstance(value, np.ndarray) and value.ndim and value.shape[0] == total):
                # An output without a batch axis cannot be split: run one by one.
                return [self._run(item.feeds) for item in batch]
            for i in range(len(batch)):
                results[i][name] = value[offsets[i]:offsets[i + 1]]
        return results
