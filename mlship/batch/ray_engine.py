"""The Ray engine: the same job on Ray Data, for data that outgrows one machine.

read (Parquet, CSV, JSON Lines, NPY) -> map_batches with an actor class that
holds one onnxruntime session -> predictions stream back to the driver, which
writes the output exactly as the local engine does (same columns, same
conversion rules, same atomic file). `--address` joins an existing cluster;
without it a local Ray starts with this machine's CPUs.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from mlship.batch import outputs
from mlship.batch.job import Plan, PredictOptions, PredictSummary, resolve_inputs
from mlship.batch.workdir import work_dir
from mlship.data.tables import FORMATS, NPY_COLUMN, Table
from mlship.errors import InvalidInputError, MlshipError, ServiceError, UsageError
from mlship.extras import require
from mlship.progress import NoProgress, Progress

REJECT = "_mlship_reject"


class RayScorer:
    """A Ray actor: one onnxruntime session, scoring pyarrow batches."""

    def __init__(self, model: list[Any], on_error: str, keep: list[str], fmt: str, threads: int | None,
                 allow_missing: bool = False, features: dict | None = None, providers: dict | None = None) -> None:
        import ray

        from mlship.model.features import DeclaredFeatures
        from mlship.model.providers import ProviderRequest
        from mlship.model.runner import Runner

        # The model travels through the object store as a nested reference, so
        # the actor's own arguments stay small (and restartable).
        handle, path = tempfile.mkstemp(suffix=".onnx")
        with os.fdopen(handle, "wb") as fh:
            fh.write(ray.get(model[0]))
        self.runner = Runner.from_path(path, threads=threads or 1, features=features and DeclaredFeatures(**features),
                                       providers=providers and ProviderRequest(**providers))
        os.unlink(path)  # the session holds the model now
        self.on_error, self.keep, self.fmt = on_error, keep, fmt
        self.allow_missing = allow_missing

    def __call__(self, batch: Any) -> dict[str, np.ndarray]:
        from mlship.model.feeds import feeds_from_table, table_bad_rows

        from mlship.model.feeds import needed_columns

        names = [n for n in batch.column_names if n != "path"]
        table = _batch_table(batch, self.fmt, frozenset(self.keep) - frozenset(needed_columns(self.runner.signature, names)))
        rejects: list[dict[str, Any]] = []
        if self.on_error == "skip":
            bad = table_bad_rows(table, self.runner.signature, allow_missing=self.allow_missing)
            if bad:
                rows = sorted({i for i, *_ in bad})
                first = {i: (column, value, reason) for i, column, value, reason in reversed(bad)}
                rejects = [{"file": str(table.path), "row": None, "column": first[i][0],
                            "value": first[i][1] if isinstance(first[i][1], (str, int, float)) else str(first[i][1]),
                            "reason": first[i][2]} for i in rows]
                keep = np.ones(table.n_rows, dtype=bool)
                keep[rows] = False
                table = Table(table.path, {k: v[keep] for k, v in table.columns.items()})
        columns: dict[str, np.ndarray] = {}
        if table.n_rows:
            scored = self.runner.run(feeds_from_table(table, self.runner.signature, allow_missing=self.allow_missing))
            columns = outputs.prediction_columns(scored, {c: table.column(c) for c in self.keep})
        n = table.n_rows
        columns[REJECT] = np.array([""] * n + [json.dumps(r) for r in rejects], dtype=object)  # "": scored
        for name in list(columns):
            if name != REJECT and rejects:
                columns[name] = np.concatenate([columns[name], np.zeros(len(rejects), dtype=columns[name].dtype)])
        return columns


def _batch_table(batch: Any, fmt: str, text_columns: frozenset[str] = frozenset()) -> Table:
    """A pyarrow batch as the local engine's Table (same conversion rules)."""
    from mlship.data.chunks import arrow_column, csv_table

    paths = batch.column("path").to_pylist() if "path" in batch.column_names else ["?"]
    label = f"{paths[0] if paths else '?'} (a Ray batch)"
    data = batch.drop_columns(["path"]) if "path" in batch.column_names else batch
    if fmt == "csv":
        return csv_table(label, data, 1, text_columns)
    columns = {name: arrow_column(data.column(name).combine_chunks()) for name in data.column_names}
    if fmt == "npy" and "data" in columns:
        columns[NPY_COLUMN] = np.asarray(data.column("data").to_numpy(zero_copy_only=False).tolist())
        del columns["data"]
    return Table(label, columns)


def run_ray(options: PredictOptions, progress: Progress | None = None,
            info: Callable[[str], None] = lambda _m: None) -> PredictSummary:
    """Score the input on Ray; the driver writes the output atomically."""
    if options.resume or options.log_dir:
        raise UsageError("--resume and --log-dir work with --engine local only", hint="Run again without them")
    ray = require("ray")
    from mlship.batch.local import _finish, _store
    from mlship.model.load import load_model
    from mlship.model.runner import Runner

    progress = progress or NoProgress()
    started = time.perf_counter()
    # Checks the model (and its providers) before any cluster work.
    runner = Runner(load_model(options.model), features=options.features, providers=options.providers)
    fmt = outputs.output_format(options.output)
    files, columns, total = resolve_inputs(options, runner.signature)
    in_fmt = FORMATS[files[0].suffix.lower()]
    work = work_dir(options.output)
    import shutil

    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    _init_ray(ray, options)
    progress.start(total)
    dataset = _read(ray, files, columns, in_fmt)
    scored = dataset.map_batches(
        RayScorer, batch_size=options.batch_size, batch_format="pyarrow",
        compute=ray.data.ActorPoolStrategy(size=_actors(ray, options)), num_cpus=1, fn_constructor_kwargs={"model": [ray.put(Path(options.model).read_bytes())], "on_error": options.on_error,
                                           "keep": options.keep_columns, "fmt": in_fmt, "threads": options.threads,
                                           "allow_missing": options.allow_missing,
                                           "features": options.features and options.features.model_dump(),
                                           "providers": options.providers and options.providers.model_dump()},
    )
    _quiet_ray_logs()
    assembler = outputs.Assembler(work, fmt, options.output)
    rows = rejects = chunks = 0
    try:
        for index, batch in enumerate(scored.iter_batches(batch_size=None, batch_format="numpy")):
            marks = batch.pop(REJECT)
            rejected = np.array([bool(m) for m in marks], dtype=bool)
            bad = [json.loads(m) for m in marks[rejected]]
            good = {k: v[~rejected] for k, v in batch.items()}
            kept = int((~rejected).sum())
            _store(assembler, work, index, good if kept else None, bad, False)
            rows, rejects, chunks = rows + kept, rejects + len(bad), chunks + 1
            progress.advance(len(rejected))
    except Exception as exc:
        assembler.abort()
        raise _unwrap(exc) from None
    scored_rows, reject_rows = _finish(Plan(files, columns, total, work), assembler, options)
    seconds = time.perf_counter() - started
    return PredictSummary(
        engine="ray", input_files=len(files), rows=scored_rows, rejects=reject_rows, chunks=chunks, resumed_chunks=0,
        seconds=round(seconds, 3), rows_per_s=round(scored_rows / seconds, 1) if seconds else 0.0,
        output=str(options.output), rejects_file=str(options.rejects_path) if reject_rows else None,
        log_dir=None,
    )


def start_ray(ray: Any, address: str | None, num_cpus: int | None = None) -> bool:
    """Join the Ray cluster at `address`, or start a local one on loopback with `num_cpus`
    (this machine's CPUs by default); True when this call started it (the caller shuts it down)."""
    import logging

    if address and address != "auto":
        _check_reachable(address)  # also when this process is joined to a cluster already: the one asked for must answer
    if ray.is_initialized():
        return False
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no reports to the internet
    local = {} if address else {"num_cpus": num_cpus or os.cpu_count(), "_node_ip_address": "127.0.0.1"}
    try:
        ray.init(address=address, include_dashboard=False, log_to_driver=False,
                 logging_level=logging.ERROR, ignore_reinit_error=True, **local)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise ServiceError(f"cannot start or reach Ray{f' at {address}' if address else ''}: {exc}") from None
    return True


def _check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """Fail fast (exit 7) when nothing listens at a cluster's HOST:PORT: ray.init would retry
    for minutes."""
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(address if "://" in address else f"ray://{address}")
    try:
        host, port = parts.hostname, parts.port
    except ValueError:
        host, port = None, None
    if not host or not port:
        raise UsageError(f"--address {address!r}: use HOST:PORT (or ray://HOST:PORT)")
    try:
        socket.create_connection((host, port), timeout=timeout_s).close()
    except OSError as exc:
        raise ServiceError(f"cannot reach Ray at {address}: {exc.strerror or exc}",
                           hint="Start the cluster (ray start --head) or fix --address") from None


def _init_ray(ray: Any, options: PredictOptions) -> None:
    import logging

    start_ray(ray, options.address)
    logging.getLogger("ray.data").setLevel(logging.ERROR)
    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True  # output rows in input order, like the local engine
    context.enable_progress_bars = False


def _actors(ray: Any, options: PredictOptions) -> int:
    """One actor per CPU of the cluster but one, which is left for the read tasks
    (actors holding every CPU would starve the reads)."""
    return max(1, int(ray.cluster_resources().get("CPU", 2)) - 1)


def _read(ray: Any, files: list[Path], columns: list[str], fmt: str) -> Any:
    paths = [str(f) for f in files]
    if fmt == "parquet":
        return ray.data.read_parquet(paths, include_paths=True).select_columns(columns + ["path"])
    if fmt == "csv":
        import pyarrow as pa
        import pyarrow.csv as pacsv

        return ray.data.read_csv(paths, include_paths=True, convert_options=pacsv.ConvertOptions(
            include_columns=columns, column_types={c: pa.string() for c in columns}))
    if fmt == "jsonl":
        return ray.data.read_json(paths, include_paths=True).select_columns(columns + ["path"])
    if fmt == "npy":
        return ray.data.read_numpy(paths, include_paths=True)
    raise InvalidInputError(f"{files[0]}: {fmt} input is not supported by the Ray engine")


def _unwrap(exc: BaseException) -> BaseException:
    """Ray wraps an actor's exception; find mlship's own error inside."""
    seen = exc
    for _ in range(10):
        if isinstance(seen, MlshipError):
            return seen
        cause = getattr(seen, "cause", None) or seen.__cause__
        if cause is None:
            break
        seen = cause
    if isinstance(exc, MlshipError):
        return exc
    return ServiceError(f"the Ray job failed: {str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}")


def _quiet_ray_logs() -> None:
    """Ray Data logs its plan and progress at INFO; mlship's own output is enough."""
    import logging

    import importlib

    importlib.import_module("ray.data._internal.execution.streaming_executor")  # creates its logger

    for name in list(logging.Logger.manager.loggerDict):
        if name.startswith("ray"):
            logging.getLogger(name).setLevel(logging.ERROR)
