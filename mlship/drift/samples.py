"""Rows kept for the checks that need whole rows, not column profiles: multivariate
drift (mlship/drift/multivariate.py) and performance estimation (mlship/drift/cbpe.py).

Profiles summarise each column on its own; a change in how columns move
together, or a model's expected accuracy, needs rows. `RowSample` keeps a
uniform sample of bounded size per window (bottom-k of a random key, so the
sample is the same whatever the chunk size), in the data's order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mlship.drift.settings import DriftOptions

LABEL = "__label__"  # the ground truth of a row, when known
ALL = -math.inf  # the window key of all rows (the overall comparison)
REFERENCE_ROWS = 20_000  # reference rows kept for the multivariate checks (a uniform sample)
# Log outputs that hold a predicted class or the positive class's probability (first found wins).
PREDICTION_COLUMNS = ("outputs.label", "outputs.prediction", "outputs.predicted_label", "outputs.class",
                      "outputs.output_label")
SCORE_COLUMNS = ("outputs.probabilities_1", "outputs.probability_1", "outputs.probability", "outputs.score")


@dataclass
class _Kept:
    keys: np.ndarray = field(default_factory=lambda: np.empty(0))
    order: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    columns: dict[str, np.ndarray] = field(default_factory=dict)


class RowSample:
    """At most `cap` rows per window (`cap_all` of all rows), uniformly sampled, in reading order."""

    def __init__(self, cap: int, cap_all: int | None = None, seed: int = 0) -> None:
        self.cap = cap
        self.cap_all = cap_all or cap
        self.rng = np.random.default_rng(seed)
        self.kept: dict[float, _Kept] = {}
        self.seen = 0

    def add(self, columns: dict[str, np.ndarray], mask: np.ndarray, keys: np.ndarray | None = None) -> None:
        """The rows of one chunk where `mask` holds; `keys` are their windows (None: no windows)."""
        order = np.arange(self.seen, self.seen + len(mask))
        self.seen += len(mask)
        random = self.rng.random(len(mask))
        self._keep(ALL, columns, mask, order, random)
        if keys is not None:
            for key in np.unique(keys[mask & ~np.isnan(keys)]):
                self._keep(float(key), columns, mask & (keys == key), order, random)

    def _keep(self, key: float, columns: dict[str, np.ndarray], mask: np.ndarray, order: np.ndarray,
              random: np.ndarray) -> None:
        kept = self.kept.setdefault(key, _Kept())
        cap = self.cap_all if key == ALL else self.cap
        if len(kept.keys) >= cap:  # full: only rows under its largest key can enter (same sample, fewer copies)
            mask = mask & (random < kept.keys.max())
        if not mask.any():
            return
        names = set(kept.columns) | set(columns)
        n_old = len(kept.keys)
        merged = {n: _concat(kept.columns.get(n), n_old, columns.get(n), mask) for n in names}
        keys = np.concatenate([kept.keys, random[mask]])
        rows = np.concatenate([kept.order, order[mask]])
        if len(keys) > cap:
            pick = np.sort(np.argpartition(keys, cap)[:cap])  # sorted: reading order stays
            keys, rows, merged = keys[pick], rows[pick], {n: v[pick] for n, v in merged.items()}
        kept.keys, kept.order, kept.columns = keys, rows, merged

    def rows(self, key: float = ALL) -> dict[str, np.ndarray]:
        """The rows kept for one window (or all), column by column."""
        kept = self.kept.get(key)
        return dict(kept.columns) if kept else {}

    def count(self, key: float = ALL) -> int:
        kept = self.kept.get(key)
        return len(kept.keys) if kept else 0


def _concat(old: np.ndarray | None, n_old: int, new: np.ndarray | None, mask: np.ndarray) -> np.ndarray:
    """A column's kept values followed by the chunk's masked ones (missing on the side without it)."""
    n_new = int(mask.sum())
    old = old if old is not None else np.full(n_old, np.nan)
    new = new[mask] if new is not None else np.full(n_new, np.nan)
    if old.dtype.kind == "f" and new.dtype.kind == "f":
        return np.concatenate([old, new])
    return np.concatenate([old.astype(object), new.astype(object)])


def chunk_rows(current: "RowSample", windows: list[tuple[float, str, bool]], reference_rows: int,
               min_chunks: int = 10) -> int:
    """Rows per reference chunk for bands: a typical window's (or all current rows'), small enough
    that the reference gives `min_chunks` chunks; bands scale from it to each window's row count."""
    sizes = [current.count(key) for key, _, small in windows if not small] or [current.count()]
    return max(1, min(int(np.median(sizes)), reference_rows // min_chunks))


def floats(values: np.ndarray) -> np.ndarray:
    """Values as float64: numbers as they are, anything else NaN."""
    if values.dtype.kind in "fiu":
        return values.astype(np.float64)
    return np.array([v if isinstance(v, (int, float)) and not isinstance(v, bool) else np.nan
                     for v in values.tolist()], dtype=np.float64)


def row_labels(columns: dict[str, np.ndarray], meta: dict[str, np.ndarray], n: int,
               labels: dict[str, Any] | None, options: DriftOptions) -> np.ndarray | None:
    """Each row's ground truth (None where unknown): the data's `performance.label` column, else
    --labels joined on the log's request_id (or the data's `performance.id` column), else the log
    record's own label."""
    from mlship.metrics import label_text

    settings = options.performance
    if settings.label is not None and settings.label in columns:
        return np.asarray(columns[settings.label], dtype=object)[:n]
    ids = meta.get("request_id")
    if ids is None and settings.id is not None:
        ids = columns.get(settings.id)
    own = meta.get("label")
    if labels is not None and ids is not None:  # the record's own label where the file has none
        joined = [labels.get(label_text(v)) for v in ids.tolist()]
        mine = own.tolist() if own is not None else [None] * n
        return np.array([j if j is not None else m for j, m in zip(joined, mine)], dtype=object)
    return None if own is None else np.asarray(own, dtype=object)[:n]


def score_column(names: Any, options: DriftOptions) -> str | None:
    """The column with the positive class's probability: the configured one, else a log output."""
    if options.performance.score is not None:
        return options.performance.score if options.performance.score in names else None
    found = next((n for n in SCORE_COLUMNS if n in names), None)
    if found is not None and found.endswith("_1") and found[:-1] + "2" in names:
        return None  # a third class: CBPE here is for binary classifiers
    return found


def prediction_column(names: Any, options: DriftOptions) -> str | None:
    """The column with the predicted class: the configured one, else a log output."""
    if options.performance.prediction is not None:
        return options.performance.prediction if options.performance.prediction in names else None
    return next((n for n in PREDICTION_COLUMNS if n in names), None)


class Collector:
    """What one `mlship drift` keeps of the rows it reads: feature rows for the multivariate
    checks and (score, prediction, label) for performance estimation, per window."""

    def __init__(self, options: DriftOptions, *, feature_cap: int = 5_000, feature_cap_all: int = 20_000,
                 score_cap: int = 500_000) -> None:
        self.options = options
        self.features = RowSample(feature_cap, feature_cap_all) if options.multivariate.checks else None
        self.scores = RowSample(score_cap, seed=1) if options.performance.estimate else None

    def add(self, columns: dict[str, np.ndarray], meta: dict[str, np.ndarray], mask: np.ndarray,
            keys: np.ndarray | None, labels: dict[str, Any] | None) -> None:
        """One chunk: its rows where `mask` holds, in the windows `keys` (None: no windows)."""
        n = len(mask)
        if self.features is not None:
            self.features.add(columns, mask, keys)
        if self.scores is None:
            return
        picked = {}
        score, prediction = score_column(columns, self.options), prediction_column(columns, self.options)
        if score is not None:
            picked["score"] = columns[score]
        if prediction is not None:
            picked["prediction"] = columns[prediction]
        truth = row_labels(columns, meta, n, labels, self.options)
        if truth is not None:
            picked[LABEL] = truth
        if picked:
            self.scores.add(picked, mask, keys)
