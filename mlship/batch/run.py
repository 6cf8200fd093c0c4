"""Choosing the engine for a batch-scoring job."""

from __future__ import annotations

from typing import Callable

from mlship.batch.job import PredictOptions, PredictSummary
from mlship.progress import Progress


def run_predict(options: PredictOptions, progress: Progress | None = None,
                info: Callable[[str], None] = lambda _m: None) -> PredictSummary:
    """Run the job on the local engine or on Ray, once the outputs are known
    to be writable (a bad --output fails before any scoring, exit 2)."""
    from mlship.batch.outputs import check_output

    check_output(options.output)
    if options.on_error == "skip":
        check_output(options.rejects_path, "--rejects", predictions=False)
    if options.engine == "ray":
        from mlship.batch.ray_engine import run_ray

        return run_ray(options, progress, info)
    from mlship.batch.local import run_local

    return run_local(options, progress, info)
