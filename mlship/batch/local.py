"""The local engine: read, infer and write overlap in three threads.

Reading (pyarrow releases the GIL) and writing run beside onnxruntime, so on
a machine with spare cores the run costs little more than inference alone.
Queues between the stages hold two chunks each: memory stays bounded by the
batch size, whatever the input size.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from mlship.batch import outputs
from mlship.batch.job import Plan, PredictOptions, PredictSummary, plan_job
from mlship.batch.inputs import Chunk, iter_chunks
from mlship.data.tables import Table
from mlship.errors import InvalidInputError
from mlship.fsutil import atomic_write
from mlship.model.feeds import feeds_from_table, table_bad_rows
from mlship.model.runner import Runner
from mlship.progress import NoProgress, Progress

_DONE = object()


def run_local(options: PredictOptions, progress: Progress | None = None,
              info: Callable[[str], None] = lambda _m: None) -> PredictSummary:
    """Score every input row; see the module docstring."""
    progress = progress or NoProgress()
    started = time.perf_counter()
    runner = Runner.from_path(options.model, threads=options.threads or 1, features=options.features,
                              providers=options.providers)
    if runner.providers.fallback_note():
        info(runner.providers.fallback_note())
    fmt = outputs.output_format(options.output)
    plan = plan_job(options, runner.signature, runner.model.sha256, info)
    log = _log_writer(options)
    progress.start(plan.total_rows)
    assembler = outputs.Assembler(plan.work, fmt, options.output)
    writer = _Worker(lambda item: _store(assembler, plan.work, *item), queue.Queue(maxsize=2))
    chunks = resumed = 0

    def prepare(chunk: Chunk) -> tuple[Chunk, Table | None, dict[str, np.ndarray] | None, list[dict[str, Any]]]:
        # Runs in the reader thread: conversion overlaps inference too.
        if chunk.index in plan.done:
            return chunk, None, None, []
        table, rejects = _usable_rows(chunk, runner, options)
        feeds = feeds_from_table(table, runner.signature, allow_missing=options.allow_missing) if table.n_rows else None
        return chunk, table, feeds, rejects

    pool = ThreadPoolExecutor(max_workers=options.parallel, thread_name_prefix="mlship-infer")
    in_flight: deque[tuple[Chunk, Table | None, Any, list[dict[str, Any]], Future | None]] = deque()

    def complete(chunk: Chunk, table: Table | None, feeds: Any, rejects: list[dict[str, Any]],
                 future: Future | None) -> None:
        # In input order: the writer appends chunks in the order it gets them.
        if table is None:
            writer.put((chunk.index, None, None, True))
        else:
            scored = future.result() if future is not None else None
            keep = {c: table.column(c) for c in options.keep_columns}
            columns = outputs.prediction_columns(scored, keep) if scored is not None else None
            writer.put((chunk.index, columns, rejects, False))
            if log is not None and scored is not None:
                _log_chunk(log, options, runner, table, feeds, scored)
        progress.advance(chunk.rows)

    try:
        for chunk, table, feeds, rejects in _prefetch(
                prepare(c) for c in iter_chunks(plan.files, plan.columns, options.batch_size, plan.text_columns)):
            chunks += 1
            resumed += table is None
            # Several chunks score at once, each on one onnxruntime thread: steadier than
            # one run split across threads when reading and writing share the cores.
            future = pool.submit(runner.run, feeds) if feeds is not None else None
            in_flight.append((chunk, table, feeds, rejects, future))
            while len(in_flight) > options.parallel + 1:
                complete(*in_flight.popleft())
        while in_flight:
            complete(*in_flight.popleft())
        writer.finish()
    except BaseException:
        writer.finish(raise_errors=False)
        assembler.abort()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        if log is not None:
            log.close()
    scored_rows, reject_rows = _finish(plan, assembler, options)
    seconds = time.perf_counter() - started
    return PredictSummary(
        engine="local", input_files=len(plan.files), rows=scored_rows, rejects=reject_rows,
        chunks=chunks, resumed_chunks=resumed, seconds=round(seconds, 3),
        rows_per_s=round(scored_rows / seconds, 1) if seconds else 0.0, output=str(options.output),
        rejects_file=str(options.rejects_path) if reject_rows else None,
        log_dir=str(options.log_dir) if options.log_dir else None,
    )


def _usable_rows(chunk: Chunk, runner: Runner, options: PredictOptions) -> tuple[Table, list[dict[str, Any]]]:
    """The chunk without rows that cannot be converted (--on-error skip), and why."""
    if options.on_error == "fail":
        return chunk.table, []
    bad = table_bad_rows(chunk.table, runner.signature, allow_missing=options.allow_missing)
    if not bad:
        return chunk.table, []
    table = chunk.table
    rejects = [{"file": str(chunk.path), "row": table.first_row + i, "column": column,
                "value": value if isinstance(value, (str, int, float)) or value is None else str(value),
                "reason": reason} for i, column, value, reason in bad]
    keep = np.ones(table.n_rows, dtype=bool)
    keep[[i for i, *_ in bad]] = False
    kept = Table(table.path, {k: v[keep] for k, v in table.columns.items()}, table.first_row,
                 row_numbers=table.numbers()[keep])
    return kept, _one_per_row(rejects)


def _one_per_row(rejects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seen, unique = set(), []
    for reject in sorted(rejects, key=lambda r: r["row"]):
        if reject["row"] not in seen:
            seen.add(reject["row"])
            unique.append(reject)
    return unique


def _store(assembler: outputs.Assembler, work: Path, index: int, columns: dict[str, np.ndarray] | None,
           rejects: list[dict[str, Any]] | None, done_before: bool) -> None:
    """The writer thread's job for one chunk: rejects, part, output."""
    if done_before:
        assembler.add_done(index)
        return
    if rejects:
        outputs.write_rejects(work / f"rejects-{index:06d}.jsonl", rejects)
    assembler.add(index, columns)


def _finish(plan: Plan, assembler: outputs.Assembler, options: PredictOptions) -> tuple[int, int]:
    """Rename the output and the rejects into place; remove the work directory."""
    import shutil

    reject_files = sorted(plan.work.glob("rejects-*.jsonl"))
    rejects = [line for f in reject_files for line in f.read_bytes().splitlines() if line]
    if rejects:
        atomic_write(options.rejects_path, b"\n".join(rejects) + b"\n")
    rows = assembler.close()
    if rows == 0:
        raise InvalidInputError(f"no row of {options.input} could be scored",
                                hint=f"See {options.rejects_path} for why" if rejects else None)
    shutil.rmtree(plan.work)
    return rows, len(rejects)


def _log_writer(options: PredictOptions):
    if options.log_dir is None:
        return None
    from mlship.predlog.writer import LogWriter

    return LogWriter(options.log_dir, prefix=f"predictions-{options.name}-batch", queue_size=8, block=True)


def _log_chunk(log, options: PredictOptions, runner: Runner, table: Table, feeds: dict[str, np.ndarray],
               scored: dict[str, Any]) -> None:
    from mlship.predlog.entries import LogEntry

    name = Path(table.path).name
    ids = [f"{name}:{n}" for n in table.numbers().tolist()]
    entry = LogEntry(base={"model": options.name, "version": options.version, "variant": "batch", "latency_ms": 0.0,
                           "status": 200, "error": None}, when=time.time(), feeds=feeds, instances=None,
                     outputs=scored, cached=False, features=runner.signature.features, request_ids=ids)
    log.submit(entry, rows=entry.rows)


def _prefetch(chunks: Iterator[Any], depth: int = 3) -> Iterator[Chunk]:
    """Read the next chunks in a background thread while this one is scored."""
    items: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def read() -> None:
        try:
            for chunk in chunks:
                if stop.is_set():
                    return
                items.put(chunk)
        except BaseException as exc:  # handed to the consumer, raised there
            items.put(exc)
            return
        items.put(_DONE)

    thread = threading.Thread(target=read, name="mlship-reader", daemon=True)
    thread.start()
    try:
        while True:
            item = items.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while thread.is_alive():  # unblock a reader waiting on a full queue
            try:
                items.get_nowait()
            except queue.Empty:
                thread.join(0.05)


class _Worker:
    """A thread that applies `fn` to queued items; errors surface in `finish`."""

    def __init__(self, fn: Callable[[Any], None], items: queue.Queue) -> None:
        self._fn, self._items, self._error = fn, items, None
        self._thread = threading.Thread(target=self._run, name="mlship-writer", daemon=True)
        self._thread.start()

    def put(self, item: Any) -> None:
        if self._error is not None:
            raise self._error
        self._items.put(item)

    def finish(self, raise_errors: bool = True) -> None:
        if self._thread.is_alive():
            self._items.put(_DONE)
            self._thread.join()
        if raise_errors and self._error is not None:
            raise self._error

    def _run(self) -> None:
        while (item := self._items.get()) is not _DONE:
            if self._error is None:
                try:
                    self._fn(item)
                except BaseException as exc:
                    self._error = exc
