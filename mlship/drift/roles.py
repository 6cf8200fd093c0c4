"""Identifier and time columns: recognised while profiling, left out of drift.

A row id (unique per row, or whole numbers increasing row by row) or a time
stamp changes between any two samples by construction: judged as a feature
it always "drifts". Profiles keep a few signals per column (`RoleSignals`,
mergeable like the rest of the profile); `infer_role` reads them, and
`monitoring.columns.NAME.role` overrides the inference either way. A time
column can also drive `--window` when the records have no `ts`.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone
from typing import Any, Optional

import numpy as np

from mlship.drift.sketch import DistinctSketch

MIN_VALUES = 50  # fewer values than this: too few to call a column an identifier
UNIQUE_SHARE = 0.9  # distinct values / values at which a column counts as unique per row
TIME_SAMPLE = 5  # text values per chunk checked for being timestamps


class RoleSignals:
    """What tells an identifier or a time column from a feature, in bounded memory."""

    def __init__(self) -> None:
        self.integral = True  # every number so far a whole number
        self.increasing: Optional[bool] = None  # numbers strictly increasing row by row (None: no numbers yet)
        self.first = self.last = math.nan
        self.distinct: Optional[DistinctSketch] = DistinctSketch()  # None once a value repeats
        self.time_text: Optional[bool] = None  # text values parse as timestamps (None: no text yet)

    def add_numbers(self, values: np.ndarray, known: dict[str, int] | None) -> None:
        """Finite numbers in row order; `known` the whole-number codes counted before them."""
        if not len(values):
            return
        self.integral = self.integral and bool(np.all(values == np.floor(values)))
        if not self.integral:
            self.increasing, self.distinct = False, None  # measurements, not ids
            return
        ordered = bool(np.all(np.diff(values) > 0)) and not (values[0] <= self.last)
        self.increasing = ordered if self.increasing is None else self.increasing and ordered
        self.first = values[0] if math.isnan(self.first) else self.first
        self.last = float(values[-1])
        if self.distinct is not None:
            keys, counts = np.unique(values, return_counts=True)
            if counts.max() > 1 or (known and any(str(int(k)) in known for k in keys.tolist())):
                self.distinct = None
            else:
                self.distinct.add_numbers(keys)

    def add_texts(self, keys: list[str], counts: list[int], known: dict[str, int], sample: list[str]) -> None:
        """A chunk's distinct text values and counts; `known` the categories counted before them."""
        self.increasing = False
        if self.time_text is not False:
            self.time_text = all(not math.isnan(parse_time(v)) for v in sample[:TIME_SAMPLE])
        if self.distinct is not None:
            if max(counts) > 1 or any(k in known for k in keys):
                self.distinct = None
            else:
                self.distinct.add_texts(keys)

    def merge(self, other: "RoleSignals") -> None:
        """The signals of this piece followed by `other`'s rows."""
        self.integral = self.integral and other.integral
        if other.increasing is not None:
            ordered = other.increasing and not (other.first <= self.last)
            self.increasing = ordered if self.increasing is None else self.increasing and ordered
            self.first = other.first if math.isnan(self.first) else self.first
            self.last = other.last
        self.distinct = None if self.distinct is None or other.distinct is None else _merged(self.distinct,
                                                                                           other.distinct)
        if other.time_text is not None:
            self.time_text = other.time_text if self.time_text is None else self.time_text and other.time_text

    def to_json(self) -> dict[str, Any]:
        return {"integral": self.integral, "increasing": self.increasing,
                "first": None if math.isnan(self.first) else self.first,
                "last": None if math.isnan(self.last) else self.last,
                "distinct": self.distinct.to_json() if self.distinct is not None else None,
                "time_text": self.time_text}

    @classmethod
    def from_json(cls, doc: dict[str, Any] | None) -> "RoleSignals":
        """Signals from a saved profile; a profile made before them has none (every column a feature)."""
        signals = cls()
        if not doc:
            signals.integral, signals.increasing, signals.distinct = False, False, None
            return signals
        signals.integral, signals.increasing, signals.time_text = doc["integral"], doc["increasing"], doc["time_text"]
        signals.first = math.nan if doc["first"] is None else float(doc["first"])
        signals.last = math.nan if doc["last"] is None else float(doc["last"])
        signals.distinct = DistinctSketch.from_json(doc["distinct"]) if doc["distinct"] is not None else None
        return signals


def _merged(a: DistinctSketch, b: DistinctSketch) -> DistinctSketch:
    merged = DistinctSketch(a.hashes)
    merged.merge(b)
    return merged


def infer_role(signals: RoleSignals, values: int, numbers: int) -> tuple[str, str] | None:
    """("identifier" or "time", why) for a column of `values` present values (`numbers` of
    them numbers), or None for a feature."""
    if signals.time_text and not numbers:
        return "time", "time: values are timestamps"
    if values < MIN_VALUES:
        return None
    if signals.increasing and signals.integral and numbers == values:
        return "identifier", "identifier: whole numbers increasing row by row"
    if signals.distinct is not None and signals.distinct.estimate() >= UNIQUE_SHARE * values:
        return "identifier", "identifier: unique per row"
    return None


def parse_time(value: Any) -> float:
    """Epoch seconds of an ISO 8601 timestamp (no zone: UTC), or NaN."""
    if not isinstance(value, str) or not 8 <= len(value) <= 40 or not value[:4].isdigit():
        return math.nan
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return math.nan
    return (moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)).timestamp()


def column_times(values: np.ndarray) -> np.ndarray:
    """A time column as epoch seconds: timestamps parsed, numbers taken as epoch seconds."""
    if values.dtype.kind == "f":
        return values.astype(np.float64)
    return np.array([parse_time(v) if isinstance(v, str) else float(v) if isinstance(v, (int, float)) else math.nan
                     for v in values.tolist()], dtype=np.float64)
