"""The checks beyond single columns, run on the rows `run_drift` kept: multivariate
drift (mlship/drift/multivariate.py) and performance estimation (mlship/drift/cbpe.py).

They join the report as its `multivariate` and `estimated_performance`
sections; with `monitoring.multivariate.verdict`, a multivariate flag means
dataset drift, overall and in the window it flags.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mlship.drift.cbpe import EstimatedPerformance, estimate_performance
from mlship.drift.multivariate import MultivariateDrift, multivariate_drift
from mlship.drift.samples import Collector
from mlship.drift.settings import DriftOptions


@dataclass
class Together:
    multivariate: MultivariateDrift | None
    estimated: EstimatedPerformance | None

    @property
    def dataset_drift(self) -> bool:
        """A multivariate check flagged all current rows and counts in the verdict."""
        mv = self.multivariate
        return mv is not None and mv.verdict and mv.drifted

    @property
    def flagged_by(self) -> list[str]:
        """The multivariate checks that decided dataset drift (none when they do not count)."""
        return self.multivariate.flagged_by if self.dataset_drift else []

    def fields(self) -> dict[str, Any]:
        """The report's sections (only those found)."""
        found = {"multivariate": self.multivariate, "estimated_performance": self.estimated}
        return {k: v for k, v in found.items() if v is not None}


def beyond_columns(reference: Collector, current: Collector, columns: list[Any], windows: list[Any],
                   keys: list[float], options: DriftOptions) -> Together:
    """Both checks, with each window's multivariate flags (and verdict, per settings) set on `windows`."""
    plan = [(key, w.label, w.insufficient) for key, w in zip(keys, windows)]
    mv = None
    if reference.features is not None and current.features is not None:
        mv = multivariate_drift(reference.features, current.features, features(columns, options), plan,
                                options.multivariate, options.min_rows)
    if mv is not None:
        for i, window in enumerate(windows):
            flags = mv.window_flags(i)
            if flags:
                window.multivariate = flags
                window.dataset_drift = window.dataset_drift or mv.verdict
    estimated = None
    if reference.scores is not None and current.scores is not None:
        estimated = estimate_performance(reference.scores, current.scores, plan, options.min_rows)
        named = options.performance.score
        if estimated is None and named is not None and "score" not in current.scores.rows():
            estimated = EstimatedPerformance(reference_rows=0, chunk_rows=0, chunks=0, reference={},
                                             note=f"monitoring.performance.score: no column {named!r} in the "
                                             "current data")
    return Together(mv, estimated)


def features(columns: list[Any], options: DriftOptions) -> dict[str, str]:
    """The judged input features (name -> kind, by name): not outputs, identifiers, times, ignored columns,
    nor the columns performance settings name (score, prediction, label, id)."""
    named = set(options.performance.model_dump(exclude={"estimate"}).values())
    return {c.name: c.kind for c in sorted(columns, key=lambda c: c.name)
            if c.role == "feature" and c.judged and c.kind in ("numeric", "categorical") and c.name not in named}
