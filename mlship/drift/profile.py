"""Column profiles: compact, mergeable summaries of a data set.

A profile holds, per column, missing counts, a numeric sketch, category
counts (capped, with an "other" bucket) and the distinct whole numbers seen
while there are few of them (so 0/1 or code columns read as categorical).
Profiles of pieces merge into the profile of the whole.
"""

from __future__ import annotations

import itertools
import json
import math
from collections import Counter
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from mlship.drift.roles import TIME_SAMPLE, RoleSignals
from mlship.drift.sketch import NumericSketch
from mlship.errors import InvalidInputError
from mlship.fsutil import atomic_write

SCHEMA = "mlship.profile/v1"
CATEGORY_CAP = 1000  # distinct categories kept per column; the rest count as "other"
FEW_CODES = 10  # whole-number columns with at most this many values are categorical
PSI_BINS = 10


class ColumnProfile:
    """Everything drift needs to know about one column."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.missing = 0
        self.numeric = NumericSketch()
        self.categories: dict[str, int] = {}
        self.other = 0  # categories beyond CATEGORY_CAP
        self.non_numeric = 0
        self.codes: dict[str, int] | None = {}  # whole numbers seen, while few
        self.frozen_edges: list[float] | None = None  # PSI bins of a loaded profile
        self.signals = RoleSignals()  # identifier and time columns (roles.py)

    @property
    def count(self) -> int:
        return self.missing + self.numeric.n + self.non_numeric

    @property
    def kind(self) -> str:
        """numeric, or categorical (text, booleans, or a few whole-number codes)."""
        if self.non_numeric:
            return "categorical"
        if self.codes is not None and self.numeric.n and len(self.codes) <= FEW_CODES:
            return "categorical"
        return "numeric"

    def category_counts(self) -> dict[str, int]:
        """Counts per category, numeric codes included."""
        counts = dict(self.categories)
        for code, n in (self.codes or {}).items():
            counts[code] = counts.get(code, 0) + n
        if self.other:
            counts["(other)"] = self.other
        return counts

    def add(self, values: np.ndarray) -> None:
        """Add a column of a chunk: float64 (NaN missing) or object values."""
        if values.dtype.kind in "iu":
            values = values.astype(np.float64)
        if values.dtype.kind == "b":
            values = values.astype(object)
        if values.dtype.kind == "f":
            self._numbers(values.astype(np.float64, copy=False))
            return
        items = values.tolist()
        if self._texts(items):
            return
        numbers, texts = [], []
        for v in items:
            if v is None or (isinstance(v, float) and math.isnan(v)):
                self.missing += 1
            elif isinstance(v, bool):
                texts.append(str(v).lower())
            elif isinstance(v, str) and v.lower() in ("true", "false"):
                texts.append(v.lower())  # CSV's True/False and JSON's true/false are one category
            elif isinstance(v, (int, float)):
                numbers.append(float(v))
            else:
                texts.append(v if isinstance(v, str) else json.dumps(v, sort_keys=True))
        if numbers:
            self._numbers(np.asarray(numbers, dtype=np.float64))
        if texts:
            self.non_numeric += len(texts)
            keys, counts = np.unique(np.asarray(texts, dtype=object).astype(str), return_counts=True)
            self.signals.add_texts(keys.tolist(), counts.tolist(), self.categories, texts)
            self._count_categories(dict(zip(keys.tolist(), counts.tolist())))

    def add_coded(self, values: np.ndarray, codes: np.ndarray, categories: list[str]) -> None:
        """Add a text column that came dictionary-encoded: `values` decoded, `codes` each row's
        index into `categories` (-1: missing). Counted by code: what `add` counts, ~50x faster."""
        counts = np.bincount(codes + 1, minlength=len(categories) + 1).tolist()
        found: dict[Any, int] = {None: counts[0]} if counts[0] else {}
        for category, n in zip(categories, counts[1:]):
            if n:
                found[category] = found.get(category, 0) + n
        self._text_counts(found, values)

    def _texts(self, items: list[Any]) -> bool:
        """A column of text and missing values only (the usual categorical column), counted
        in one pass in C; False, touching nothing, when it holds anything else."""
        try:
            counts = Counter(items)
        except TypeError:  # unhashable values (lists, objects): the general path
            return False
        return self._text_counts(counts, items)

    def _text_counts(self, counts: dict[Any, int], items: Iterable[Any]) -> bool:
        """Add the counts of a text column's values (None: missing) whose rows are `items`;
        False, touching nothing, when a value is not text."""
        if not all(type(k) is str or k is None for k in counts):
            return False
        counts = dict(counts)
        self.missing += counts.pop(None, 0)
        merged: dict[str, int] = {}
        for key, n in counts.items():
            key = key.lower() if key.lower() in ("true", "false") else key
            merged[key] = merged.get(key, 0) + n
        if not merged:
            return True
        keys = sorted(merged)
        self.non_numeric += sum(merged.values())
        sample = list(itertools.islice((v for v in items if v is not None), TIME_SAMPLE))
        self.signals.add_texts(keys, [merged[k] for k in keys], self.categories, sample)
        self._count_categories({k: merged[k] for k in keys})
        return True

    def _numbers(self, values: np.ndarray) -> None:
        finite = np.isfinite(values)
        self.missing += int((~finite).sum())
        values = values[finite]
        self.signals.add_numbers(values, self.codes)
        self.numeric.add(values)
        if self.codes is not None and len(values):
            if not np.all(values == np.floor(values)):
                self.codes = None
                return
            keys, counts = whole_counts(values)
            if len(keys) > CATEGORY_CAP:
                self.codes = None
                return
            for k, c in zip(keys.tolist(), counts.tolist()):
                key = str(int(k))
                self.codes[key] = self.codes.get(key, 0) + c
            if len(self.codes) > CATEGORY_CAP:  # kept up to the cap, so kind: categorical can be declared
                self.codes = None

    def _count_categories(self, counts: dict[str, int]) -> None:
        for key, n in counts.items():
            if key in self.categories or len(self.categories) < CATEGORY_CAP:
                self.categories[key] = self.categories.get(key, 0) + n
            else:
                self.other += n

    def merge(self, other: "ColumnProfile") -> None:
        self.missing += other.missing
        self.non_numeric += other.non_numeric
        self.numeric.merge(other.numeric)
        self._count_categories(other.categories)
        self.other += other.other
        self.signals.merge(other.signals)
        if self.codes is None or other.codes is None:
            self.codes = None
        else:
            for k, n in other.codes.items():
                self.codes[k] = self.codes.get(k, 0) + n
            if len(self.codes) > CATEGORY_CAP:
                self.codes = None

    def psi_edges(self) -> list[float]:
        """Inner edges of PSI_BINS reference-quantile bins (the end bins are open)."""
        values, weights = self.numeric.weighted()
        if not len(values):
            return []
        cumulative = np.cumsum(weights) / weights.sum()
        qs = np.arange(1, PSI_BINS) / PSI_BINS
        edges = values[np.minimum(np.searchsorted(cumulative, qs, side="left"), len(values) - 1)]
        return sorted(set(float(e) for e in edges))

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "missing": self.missing, "non_numeric": self.non_numeric,
                "numeric": self.numeric.to_json(), "categories": self.categories, "other": self.other,
                "codes": self.codes, "psi_edges": self.psi_edges() if self.numeric.n else [],
                "signals": self.signals.to_json()}

    @classmethod
    def from_json(cls, name: str, doc: dict[str, Any]) -> "ColumnProfile":
        col = cls(name)
        col.missing, col.non_numeric, col.other = doc["missing"], doc["non_numeric"], doc["other"]
        col.numeric = NumericSketch.from_json(doc["numeric"])
        col.categories = {str(k): int(v) for k, v in doc["categories"].items()}
        col.codes = None if doc["codes"] is None else {str(k): int(v) for k, v in doc["codes"].items()}
        col.frozen_edges = doc.get("psi_edges")  # bins as frozen when the profile was made
        col.signals = RoleSignals.from_json(doc.get("signals"))
        return col


def whole_counts(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """np.unique(values, return_counts=True) of whole numbers, by counting when their span is narrow."""
    lo, hi = values.min(), values.max()
    if hi - lo > 4 * len(values) + 1024:
        return np.unique(values, return_counts=True)
    counts = np.bincount((values - lo).astype(np.int64))
    at = np.flatnonzero(counts)
    return at + lo, counts[at]


class Profile:
    """Column profiles of one data set (reference, or a window of current data)."""

    def __init__(self) -> None:
        self.columns: dict[str, ColumnProfile] = {}
        self.rows = 0

    def add_frame(self, columns: dict[str, np.ndarray], rows: int,
                  coded: dict[str, tuple[np.ndarray, list[str]]] | None = None) -> None:
        """A chunk's columns; `coded`: those that came dictionary-encoded, as (codes, categories)."""
        for name, values in columns.items():
            col = self.columns.get(name)
            if col is None:
                col = self.columns[name] = ColumnProfile(name)
                col.missing += self.rows  # rows before the column first appeared
            if coded and name in coded:
                col.add_coded(values, *coded[name])
            else:
                col.add(values)
        for name, col in self.columns.items():
            if name not in columns:
                col.missing += rows
        self.rows += rows

    def merge(self, other: "Profile") -> None:
        for name, col in other.columns.items():
            if name in self.columns:
                self.columns[name].merge(col)
            else:
                mine = self.columns[name] = ColumnProfile(name)
                mine.missing += self.rows
                mine.merge(col)
        for name, col in self.columns.items():
            if name not in other.columns:
                col.missing += other.rows
        self.rows += other.rows

    def to_json(self) -> dict[str, Any]:
        return {"schema": SCHEMA, "rows": self.rows,
                "columns": {name: col.to_json() for name, col in sorted(self.columns.items())}}

    @classmethod
    def from_json(cls, doc: Any, source: str = "profile") -> "Profile":
        """A profile from its JSON document; a document of any other shape is
        refused with InvalidInputError naming the field (see profile_schema)."""
        from mlship.drift.profile_schema import check_profile

        check_profile(doc, source, SCHEMA)
        profile = cls()
        profile.rows = int(doc["rows"])
        profile.columns = {name: ColumnProfile.from_json(name, c) for name, c in doc["columns"].items()}
        return profile


def save_profile(profile: Profile, path: Path) -> None:
    """Write atomically (temporary file, fsync, rename)."""
    atomic_write(path, json.dumps(profile.to_json(), separators=(",", ":")).encode())


def load_profile(path: Path) -> Profile:
    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, ValueError, RecursionError) as exc:  # ValueError: bad JSON or UTF-8
        raise InvalidInputError(f"{path}: cannot read profile: {exc}") from None
    return Profile.from_json(doc, str(path))


def is_profile_file(path: str | Path) -> bool:
    """A saved profile: a .json file starting with the profile schema."""
    p = Path(str(path))
    if p.suffix != ".json" or not p.is_file():
        return False
    try:
        with p.open("rb") as fh:
            return SCHEMA.encode() in fh.read(200)
    except OSError:
        return False  # unreadable: read as data, whose reader names the problem


def merge_profiles(paths: list[str | Path]) -> Profile:
    """Saved profiles of pieces, merged into the profile of the whole."""
    merged = Profile()
    for path in paths:
        if not is_profile_file(path):
            raise InvalidInputError(f"{path}: not a saved profile (mlship profile DATA -o FILE.json)")
        merged.merge(load_profile(Path(path)))
    return merged
