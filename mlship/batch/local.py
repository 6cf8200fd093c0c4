"""The local engine: read, infer and write overlap in a pipeline of threads.

The reader thread starts reading and converting the input's first chunks
while onnxruntime loads the model. Then it reads and converts chunk N+1 while
chunk N is scored in `parallel` parts at once (row ranges, each on one
onnxruntime thread: steadier than one run split across threads when reading
and writing share the cores; an explicit --threads is kept), and a writer
thread encodes and appends chunk N-2. Scoring a chunk in parts rather than
`parallel` whole chunks at once keeps every core busy from the first chunk
to the last (whole chunks left one core idle while the other scored the
last chunk alone); the parts' outputs are joined in row order, and a row's
prediction does not depend on the rows run beside it. pyarrow and
onnxruntime release the GIL, so the stages overlap on a machine with spare
cores. Chunks reach the writer in input order. Every queue is bounded
(`in_flight_limit` chunks at most between reading and writing), so memory
stays bounded by the batch size, whatever the input size.
"""

from __future__ import annotations

import gc
import queue
import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from mlship.batch import outputs
from mlship.batch.job import Plan, PredictOptions, PredictSummary, plan_job, resolve_inputs, text_columns
from mlship.batch.inputs import Chunk, iter_chunks
from mlship.data.arrow import steady_memory_pool
from mlship.data.tables import Table
from mlship.errors import InvalidInputError
from mlship.fsutil import atomic_write
from mlship.model.feeds import feeds_from_table, table_bad_rows
from mlship.model.features import apply_features
from mlship.model.load import load_model
from mlship.model.runner import Runner, runner_signature
from mlship.model.signature import Signature
from mlship.model.wire import quick_signature
from mlship.progress import NoProgress, Progress

_DONE = object()
READ_AHEAD = 3  # chunks read and converted before the scorer takes them
WRITE_QUEUE = 2  # scored chunks waiting for the writer
MIN_PART_ROWS = 2048  # a chunk is scored in parts only when each part has at least this many rows


def in_flight_limit(parallel: int) -> int:
    """The most chunks read but not yet written: the reader's one and its queue, the
    scored and waiting ones, the writer's queue and the one it writes."""
    return 1 + READ_AHEAD + (parallel + 2) + WRITE_QUEUE + 1


def run_local(options: PredictOptions, progress: Progress | None = None,
              info: Callable[[str], None] = lambda _m: None) -> PredictSummary:
    """Score every input row; see the module docstring."""
    started = time.perf_counter()
    # What the process holds by now (the CLI's modules) lives as long as the job: frozen, the
    # collector no longer walks it. Importing pyarrow and onnxruntime set off a full collection
    # of it (~25-40 ms of the GIL) while the first chunk was being read.
    gc.freeze()
    runner, plan, reader = _start(options, info)
    log = None
    try:
        log = _log_writer(options)
        assembler = outputs.Assembler(plan.work, outputs.output_format(options.output), options.output,
                                      plan.done)
        chunks, resumed = _score(options, progress or NoProgress(), runner, plan, reader, assembler, log)
    finally:
        reader.close()
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


def _score(options: PredictOptions, progress: Progress, runner: Runner, plan: Plan, reader: "_Prefetch",
           assembler: outputs.Assembler, log: Any) -> tuple[int, int]:
    """Score the reader's chunks, `parallel` at once, and hand them to the writer in
    input order; (chunks, chunks an interrupted run had finished)."""
    progress.start(plan.total_rows)
    writer = _Worker(lambda item: _store(assembler, plan.work, *item), queue.Queue(maxsize=WRITE_QUEUE))
    chunks = resumed = 0
    pool = ThreadPoolExecutor(max_workers=options.parallel, thread_name_prefix="mlship-infer")
    parts = options.parallel if _in_parts(runner) else 1
    in_flight: deque[tuple[Chunk, Table | None, Any, list[dict[str, Any]], list[tuple[Future, int]] | None]] = deque()

    def complete(chunk: Chunk, table: Table | None, feeds: Any, rejects: list[dict[str, Any]],
                 futures: list[tuple[Future, int]] | None) -> None:
        if table is None:
            writer.put((chunk.index, None, None, True))
        else:
            scored = _joined(futures, runner, feeds) if futures is not None else None
            keep = {c: table.column(c) for c in options.keep_columns}
            columns = outputs.prediction_columns(scored, keep) if scored is not None else None
            writer.put((chunk.index, columns, rejects, False))
            if log is not None and scored is not None:
                _log_chunk(log, options, runner, table, feeds, scored)
        progress.advance(chunk.rows)

    try:
        for chunk, table, feeds, rejects in reader:
            chunks += 1
            resumed += table is None
            futures = _submit(pool, runner, feeds, parts) if feeds is not None else None
            in_flight.append((chunk, table, feeds, rejects, futures))
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
    return chunks, resumed


def _in_parts(runner: Runner) -> bool:
    """Whether a chunk may be scored in parts: on the CPU (a GPU wants whole batches) and
    when no input fixes its batch size."""
    return runner.providers.chosen == "CPUExecutionProvider" and all(
        not spec.shape or not isinstance(spec.shape[0], int) for spec in runner.signature.inputs)


def _submit(pool: ThreadPoolExecutor, runner: Runner, feeds: dict[str, np.ndarray],
            parts: int) -> list[tuple[Future, int]]:
    """Score `feeds` in up to `parts` row ranges at once (views, not copies), each with its
    row count; one run when the chunk is small or an input has no row axis."""
    rows = {len(v) if getattr(v, "ndim", 0) else -1 for v in feeds.values()}
    count = min(parts, max(rows) // MIN_PART_ROWS) if len(rows) == 1 else 1
    if count < 2:
        return [(pool.submit(runner.run, feeds), -1)]
    cuts = [max(rows) * i // count for i in range(count + 1)]
    return [(pool.submit(runner.run, {k: v[a:b] for k, v in feeds.items()}), b - a) for a, b in zip(cuts, cuts[1:])]


def _joined(parts: list[tuple[Future, int]], runner: Runner, feeds: dict[str, np.ndarray]) -> dict[str, Any]:
    """The outputs of a chunk scored in parts, joined in row order. An output without a
    row per input row (so not to be joined) has the chunk scored again in one run."""
    results = [future.result() for future, _ in parts]
    if len(results) == 1:
        return results[0]
    if any(getattr(value, "ndim", 1) == 0 or len(value) != rows
           for result, (_, rows) in zip(results, parts) for value in result.values()):
        return runner.run(feeds)
    return {name: np.concatenate([r[name] for r in results]) if isinstance(results[0][name], np.ndarray)
            else [row for r in results for row in r[name]] for name in results[0]}


def _start(options: PredictOptions, info: Callable[[str], None]) -> tuple[Runner, Plan, "_Prefetch"]:
    """The session, the plan and the reader: the reader thread starts reading and
    converting the first chunks (pyarrow decodes without the GIL) while this
    thread parses the model, imports onnxruntime and makes the session. Which
    columns to read comes from the model's signature read straight from its bytes
    (`quick_signature`: no protobuf import first); the full parse follows, and
    should its signature differ the reader starts over with it. The work directory
    is made only once the session runs, and a model that cannot be parsed or that
    onnxruntime cannot load is the error reported, as when they came first."""
    steady_memory_pool()  # before pyarrow is imported
    model, signature, runner = None, _quick_signature(options), None
    if signature is None:
        model = load_model(options.model, light=True)
        signature = runner_signature(model, options.features)

    def start_session() -> Runner:
        nonlocal model, signature
        if model is None:
            model = load_model(options.model, light=True)
            signature = runner_signature(model, options.features)
        return Runner(model, threads=options.threads or 1, providers=options.providers, signature=signature)

    inputs = None
    try:
        inputs = resolve_inputs(options, signature)
    except BaseException:
        read_with = signature
        runner = start_session()  # its error comes first
        if signature == read_with:
            raise
    if inputs is None:  # the parse's signature names other columns than the bytes' did
        inputs = resolve_inputs(options, signature)
    done: Future[dict[int, Any]] = Future()  # the chunks an interrupted run finished, once planned

    def read(signature: Signature, columns: list[str]) -> _Prefetch:
        return _Prefetch((_prepare(chunk, signature, options, done) for chunk in iter_chunks(
            inputs[0], columns, options.batch_size, text_columns(options, signature, columns))))

    reader = read(signature, inputs[1])
    try:
        read_with = signature
        runner = runner or start_session()
        if signature != read_with:  # the bytes gave another signature than the parse: read with the parse's
            reader.close()
            inputs = resolve_inputs(options, signature)
            reader = read(signature, inputs[1])
        if runner.providers.fallback_note():
            info(runner.providers.fallback_note())
        plan = plan_job(options, model.sha256, info, inputs)
    except BaseException as exc:
        done.set_exception(exc)  # a reader waiting for the plan stops
        reader.close()
        raise
    done.set_result(plan.done)
    return runner, plan, reader


def _quick_signature(options: PredictOptions) -> Signature | None:
    """The signature read straight from the model's bytes, with the declared features;
    None when unsure (the full parse then comes first, with its errors)."""
    quick = quick_signature(options.model)
    try:
        return apply_features(quick, options.features) if quick is not None else None
    except Exception:  # the features do not fit: the full parse's signature says how
        return None


def _prepare(chunk: Chunk, signature: Signature, options: PredictOptions,
             done: Future[dict[int, Any]]) -> tuple[Chunk, Table | None, dict[str, np.ndarray] | None, list[dict[str, Any]]]:
    """A chunk as the scorer takes it (in the reader thread: conversion overlaps inference);
    a chunk an interrupted run finished is not converted. Without --resume no chunk is
    finished, so the first ones are converted while the session starts, not after it."""
    if options.resume and chunk.index in done.result():
        return chunk, None, None, []
    table, rejects = _usable_rows(chunk, signature, options)
    feeds = feeds_from_table(table, signature, allow_missing=options.allow_missing) if table.n_rows else None
    # The features are in `feeds` now: the chunk keeps only the columns written beside the
    # predictions, so pyarrow's buffers for the others go back to its pool for the next reads
    # instead of staying until the chunk is written (a 1M-row run touched ~100 MB of fresh
    # memory, its first touch ~1/3 of reading's CPU).
    kept = Table(table.path, {c: table.column(c) for c in options.keep_columns}, table.first_row,
                 row_numbers=table.numbers() if table.row_numbers is not None or not options.keep_columns else None)
    return Chunk(chunk.index, chunk.path, kept), kept, feeds, rejects


def _usable_rows(chunk: Chunk, signature: Signature, options: PredictOptions) -> tuple[Table, list[dict[str, Any]]]:
    """The chunk without rows that cannot be converted (--on-error skip), and why."""
    if options.on_error == "fail":
        return chunk.table, []
    bad = table_bad_rows(chunk.table, signature, allow_missing=options.allow_missing)
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


class _Prefetch:
    """The items of an iterator, made in a background thread from now on, at most
    READ_AHEAD ahead of the consumer; its errors are raised to the consumer."""

    def __init__(self, items: Iterator[Any]) -> None:
        self._items: queue.Queue[Any] = queue.Queue(maxsize=READ_AHEAD)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, args=(items,), name="mlship-reader", daemon=True)
        self._thread.start()

    def _read(self, items: Iterator[Any]) -> None:
        try:
            for item in items:
                if self._stop.is_set():
                    return
                self._items.put(item)
        except BaseException as exc:  # handed to the consumer, raised there
            self._items.put(exc)
            return
        self._items.put(_DONE)

    def __iter__(self) -> Iterator[Any]:
        while (item := self._items.get()) is not _DONE:
            if isinstance(item, BaseException):
                raise item
            yield item

    def close(self) -> None:
        """Stop reading; returns once the thread has ended."""
        self._stop.set()
        while self._thread.is_alive():  # unblock a reader waiting on a full queue
            try:
                self._items.get_nowait()
            except queue.Empty:
                self._thread.join(0.05)


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
