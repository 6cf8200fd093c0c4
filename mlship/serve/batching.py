"""Micro-batching: concurrent requests share one onnxruntime run.

Requests queue up; a batch takes all of them (up to `max_batch` rows) that
have the same trailing shapes and dtypes, so batching costs a lone request
nothing. Each caller gets exactly its own rows back, split by offsets.

Where a batch runs depends on the model's measured run time. A fast model
(runs under `inline_max_ms`, the usual tabular model) runs on the event loop
itself, in a callback scheduled after the requests that arrived together
have queued: a hand-off to a thread and back costs more than such a run, and
everything the loop read in one turn becomes one batch. A slower model runs
on a worker thread, one batch after another, so the loop keeps reading
requests (and answering health checks) meanwhile. `max_wait_ms` > 0 holds a
small batch open that long for more requests (always on the thread path).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

import numpy as np

Feeds = dict[str, np.ndarray]
Outputs = dict[str, Any]


class _Pending:
    __slots__ = ("feeds", "rows", "key", "future", "arrived", "tag")

    def __init__(self, feeds: Feeds, rows: int, key: tuple, future: Any, tag: Any) -> None:
        self.feeds, self.rows, self.key, self.future, self.tag = feeds, rows, key, future, tag
        self.arrived = 0.0  # set when a batch may be held open for more (max_wait_ms)


class _Reply:
    """What a `submit_to` caller is answered through, in place of a future."""

    __slots__ = ("call",)

    def __init__(self, call: Callable[[Outputs | None, Exception | None], None]) -> None:
        self.call = call

    @staticmethod
    def done() -> bool:  # a batch answers each request once
        return False

    def set_result(self, outputs: Outputs) -> None:
        self.call(outputs, None)

    def set_exception(self, exc: Exception) -> None:
        self.call(None, exc)


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
        inline_max_ms: float = 1.0,
        on_run: Callable[[list[Any], Feeds, Outputs], None] | None = None,
        on_fail: Callable[[list[Any], Exception], None] | None = None,
        on_lone: Callable[[Any, Feeds, Outputs], None] | None = None,
    ) -> None:
        self._run = run
        self._on_run, self._on_fail = on_run, on_fail
        # A lone request run at once: its tag alone, once its answer has gone out (it must not
        # raise); without one, `on_run` gets it as a run of one.
        self._on_lone = on_lone if on_lone is not None or on_run is None else self._lone_run
        self.max_batch = max_batch
        self.max_wait_s = max_wait_ms / 1000.0
        self.batchable = batchable
        self._on_batch = on_batch
        self._pending: deque[_Pending] = deque()
        self._wakeup: asyncio.Event | None = None
        self._drainer: asyncio.Task | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mlship-runner")
        self.inline_max_s = inline_max_ms / 1000.0
        # Moving average of one run's duration: decides inline or thread. The
        # first runs go to the thread, so an unknown model never blocks the loop long.
        self._run_s = self.inline_max_s
        self._inline_scheduled = False
        self._lone = 0

    async def submit(self, feeds: Feeds, alone: bool = False, tag: Any = None) -> Outputs:
        """Run `feeds` (possibly together with others); outputs for these rows only.

        `alone`: the caller knows no other request is in flight, so none can
        join a batch: a fast model runs at once, on the loop, with no turn of
        the loop waited for others (what a lone client's latency is made of).
        `tag`: handed to `on_run` with the outputs after a successful run (the
        prediction log: one call for a whole batch of one-row requests; a lone
        request run at once: to `on_lone`), or to `on_fail` with the error of a
        failed one, before the caller gets it."""
        if alone and self._at_once():
            outputs = self._run_alone(feeds, tag)
            if tag is not None and self._on_lone is not None:  # after this request's answer has gone out
                asyncio.get_running_loop().call_soon(self._on_lone, tag, feeds, outputs)
            return outputs
        future = asyncio.get_running_loop().create_future()
        self._queue(feeds, tag, future)
        return await future

    def submit_to(self, feeds: Feeds, alone: bool, tag: Any, reply: Callable[[Outputs | None, Exception | None], None]) -> None:
        """`submit` for a caller that is not a coroutine: `reply(outputs, None)`
        or `reply(None, error)` is called once, at once for a lone request run
        on the loop, else when its batch has run. `reply` must not raise."""
        if alone and self._at_once():
            try:
                outputs = self._run_alone(feeds, tag)
            except Exception as exc:
                reply(None, exc)
                return
            reply(outputs, None)  # its answer written: what is logged after it is not in its latency
            if tag is not None and self._on_lone is not None:
                self._on_lone(tag, feeds, outputs)
            return
        self._queue(feeds, tag, _Reply(reply))

    def _at_once(self) -> bool:
        """Whether a lone request runs now, on the loop: a fast model and nothing pending or held."""
        return not self._pending and self.max_wait_s == 0 and self._run_s < self.inline_max_s \
            and not self._inline_scheduled and (self._drainer is None or self._drainer.done())

    def _run_alone(self, feeds: Feeds, tag: Any) -> Outputs:
        # Timed one run in 8 (reading the process's CPU clock is a system call: ~2 us a
        # run, a lone request's latency); nothing waits on the loop while it runs.
        self._lone = (self._lone + 1) & 7
        try:
            outputs = self._run(feeds) if self._lone else self._timed(self._run, feeds)
        except Exception as exc:
            self._log_failure([tag], exc)
            raise
        self._on_batch(len(next(iter(feeds.values()))) if feeds else 1)
        return outputs

    def _queue(self, feeds: Feeds, tag: Any, future: Any) -> None:
        """Queue a request for the next batch (its `future`: an asyncio future or a _Reply)."""
        if len(feeds) == 1:  # the usual model: one input
            ((name, value),) = feeds.items()
            rows, key = len(value), (name, value.dtype, value.shape[1:])
        else:
            rows = len(next(iter(feeds.values()))) if feeds else 1
            key = tuple((n, v.dtype, v.shape[1:]) for n, v in sorted(feeds.items()))
        item = _Pending(feeds, rows, key, future, tag)
        if self.max_wait_s:
            item.arrived = time.perf_counter()
        self._pending.append(item)
        if self._drainer is not None and not self._drainer.done():
            if self._wakeup is not None:
                self._wakeup.set()
        elif self.max_wait_s == 0 and self._run_s < self.inline_max_s:
            if not self._inline_scheduled:
                self._inline_scheduled = True
                asyncio.get_running_loop().call_soon(self._drain_inline)
        elif not self._inline_scheduled:
            self._drainer = asyncio.get_running_loop().create_task(self._drain())

    def _drain_inline(self) -> None:
        """One batch of what is pending, run here on the loop (a fast model)."""
        self._inline_scheduled = False
        if not self._pending:
            return
        batch = self._take()
        try:
            results = [self._run_one(batch[0])] if len(batch) == 1 else self._run_many(batch)
        except Exception as exc:
            self._fail(batch, exc)
        else:
            self._finish(batch, results)
        if self._pending:  # more than max_batch rows, or another shape: next turn
            self._inline_scheduled = True
            asyncio.get_running_loop().call_soon(self._drain_inline)

    def close(self) -> None:
        self._executor.shutdown(wait=True)

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        while self._pending:
            await self._hold_open()
            batch = self._take()
            try:
                if len(batch) == 1:
                    results = [await loop.run_in_executor(self._executor, self._run_one, batch[0], time.thread_time)]
                else:
                    results = await loop.run_in_executor(self._executor, self._run_many, batch, time.thread_time)
            except Exception as exc:
                self._fail(batch, exc)
                continue
            self._finish(batch, results)

    def _run_one(self, item: _Pending, clock: Callable[[], float] = time.process_time) -> Outputs:
        outputs = self._timed(self._run, item.feeds, clock)
        if item.tag is not None:
            self._ran([item.tag], item.feeds, outputs)
        return outputs

    def _ran(self, tags: list[Any], feeds: Feeds, outputs: Outputs) -> None:
        """Hand a successful run to `on_run`: on the event loop, once the answers
        it would hold up have gone out (two turns of the loop: the callers' tasks,
        woken after this, run in the next one); on the worker thread, at once."""
        if self._on_run is not None:
            loop = asyncio._get_running_loop()
            if loop is not None:
                loop.call_soon(loop.call_soon, self._hand_on, tags, feeds, outputs)
            else:
                self._hand_on(tags, feeds, outputs)

    def _lone_run(self, tag: Any, feeds: Feeds, outputs: Outputs) -> None:
        self._hand_on([tag], feeds, outputs)

    def _hand_on(self, tags: list[Any], feeds: Feeds, outputs: Outputs) -> None:
        try:
            self._on_run(tags, feeds, outputs)
        except Exception:  # the service counts its own failures (log records lost); the callers have their outputs
            pass

    def _timed(self, run: Callable[[Feeds], Outputs], feeds: Feeds,
               clock: Callable[[], float] = time.process_time) -> Outputs:
        # CPU time, not wall-clock time: onnxruntime lets go of the GIL during a
        # run, and waiting to get it back (from the log writer's thread), or
        # another process on the core, would count as run time and send a fast
        # model to the thread. On the loop, the process's (onnxruntime's pool
        # threads included); on the worker thread, its own.
        started = clock()
        try:
            return run(feeds)
        finally:
            self._run_s = 0.8 * self._run_s + 0.2 * (clock() - started)

    def _finish(self, batch: list[_Pending], results: list[Outputs]) -> None:
        self._on_batch(sum(item.rows for item in batch))
        for item, result in zip(batch, results):
            if not item.future.done():
                item.future.set_result(result)

    def _fail(self, batch: list[_Pending], exc: Exception) -> None:
        """Every caller of the batch gets the error (`on_fail` first); serving goes on."""
        self._log_failure([item.tag for item in batch], exc)
        for item in batch:
            if not item.future.done():
                item.future.set_exception(exc)

    def _log_failure(self, tags: list[Any], exc: Exception) -> None:
        """Hand a failed run's tagged requests to `on_fail`."""
        tags = [tag for tag in tags if tag is not None]
        if tags and self._on_fail is not None:
            try:
                self._on_fail(tags, exc)
            except Exception:  # the service counts its own failures
                pass

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

    def _run_many(self, batch: list[_Pending], clock: Callable[[], float] = time.process_time) -> list[Outputs]:
        names = batch[0].feeds.keys()
        merged = {n: np.concatenate([item.feeds[n] for item in batch]) for n in names}
        outputs = self._timed(self._run, merged, clock)
        total = sum(item.rows for item in batch)
        offsets = [0]
        for item in batch:
            offsets.append(offsets[-1] + item.rows)
        results: list[Outputs] = [{} for _ in batch]
        for name, value in outputs.items():
            if not (isinstance(value, np.ndarray) and value.ndim and value.shape[0] == total):
                # An output without a batch axis cannot be split: run one by one.
                return [self._run_one(item, clock) for item in batch]
            for i in range(len(batch)):
                results[i][name] = value[offsets[i]:offsets[i + 1]]
        tags = [item.tag for item in batch]
        if total == len(batch) and None not in tags:  # one row per request: one call for the batch
            self._ran(tags, merged, outputs)
        else:
            for item, result in zip(batch, results):
                if item.tag is not None:
                    self._ran([item.tag], item.feeds, result)
        return results
