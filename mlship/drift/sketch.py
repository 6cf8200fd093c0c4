"""Numeric distributions that merge exactly: exact values up to a cap, then a
DDSketch-style log-bucket histogram.

Bucket boundaries depend only on the value (relative accuracy ALPHA), never
on the data seen so far, so a profile built in pieces and merged has exactly
the counts of one built in a single pass. Below EXACT_CAP values the column
keeps its values, and statistics equal SciPy's on them.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

ALPHA = 0.002  # relative accuracy of a bucket's representative value
GAMMA = (1 + ALPHA) / (1 - ALPHA)
LOG_GAMMA = math.log(GAMMA)
MIN_ABS = 1e-12  # |x| below this counts as zero
EXACT_CAP = 2000


class NumericSketch:
    """Values (exact while few), with count, mean, M2, min and max."""

    def __init__(self) -> None:
        self.n = 0
        self.mean = 0.0
        self.m2 = 0.0
        self.min = math.inf
        self.max = -math.inf
        self.exact: list[float] | None = []
        self.pos = _Buckets()
        self.neg = _Buckets()
        self.zero = 0

    def add(self, values: np.ndarray) -> None:
        """Add finite float64 values."""
        if not len(values):
            return
        self._moments(len(values), float(values.mean()), float(((values - values.mean()) ** 2).sum()),
                      float(values.min()), float(values.max()))
        if self.exact is not None and len(self.exact) + len(values) <= EXACT_CAP:
            self.exact.extend(values.tolist())
            return
        if self.exact is not None:
            self._to_buckets(np.asarray(self.exact, dtype=np.float64))
            self.exact = None
        self._to_buckets(values)

    def merge(self, other: "NumericSketch") -> None:
        self._moments(other.n, other.mean, other.m2, other.min, other.max, values_added=False)
        if self.exact is not None and other.exact is not None and len(self.exact) + len(other.exact) <= EXACT_CAP:
            self.exact.extend(other.exact)
            return
        if self.exact is not None:
            self._to_buckets(np.asarray(self.exact, dtype=np.float64))
            self.exact = None
        if other.exact is not None:
            self._to_buckets(np.asarray(other.exact, dtype=np.float64))
        else:
            self.pos.add(*other.pos.items())
            self.neg.add(*other.neg.items())
            self.zero += other.zero

    @property
    def std(self) -> float:
        return math.sqrt(self.m2 / self.n) if self.n else 0.0

    def weighted(self) -> tuple[np.ndarray, np.ndarray]:
        """(sorted values, weights): the exact values, or bucket representatives."""
        if self.exact is not None:
            return np.sort(np.asarray(self.exact, dtype=np.float64)), np.ones(len(self.exact))
        neg_k, neg_c = self.neg.items()
        pos_k, pos_c = self.pos.items()
        values = np.concatenate([-_representative(neg_k[::-1]), [0.0] if self.zero else [], _representative(pos_k)])
        weights = np.concatenate([neg_c[::-1], [self.zero] if self.zero else [], pos_c]).astype(np.float64)
        return values, weights

    def bucketed_weighted(self) -> tuple[np.ndarray, np.ndarray]:
        """weighted() as if the values were sketched: what exact values are compared as
        against a sketched side (bucket representatives on both sides, or a 0.2% rounding
        alone would look like drift where values crowd, e.g. probabilities near 1)."""
        if self.exact is None:
            return self.weighted()
        sketch = NumericSketch()
        sketch.exact = None
        sketch._to_buckets(np.asarray(self.exact, dtype=np.float64))
        return sketch.weighted()

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"n": self.n, "mean": self.mean, "m2": self.m2,
                               "min": self.min if self.n else None, "max": self.max if self.n else None}
        if self.exact is not None:
            doc["exact"] = self.exact
        else:
            doc["buckets"] = {"pos": self.pos.pairs(), "neg": self.neg.pairs(), "zero": self.zero}
        return doc

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> "NumericSketch":
        sketch = cls()
        sketch.n, sketch.mean, sketch.m2 = doc["n"], doc["mean"], doc["m2"]
        sketch.min = doc["min"] if doc["min"] is not None else math.inf
        sketch.max = doc["max"] if doc["max"] is not None else -math.inf
        if "exact" in doc:
            sketch.exact = list(doc["exact"])
        else:
            sketch.exact = None
            sketch.pos = _Buckets.from_pairs(doc["buckets"]["pos"])
            sketch.neg = _Buckets.from_pairs(doc["buckets"]["neg"])
            sketch.zero = int(doc["buckets"]["zero"])
        return sketch

    def _moments(self, n: int, mean: float, m2: float, lo: float, hi: float, values_added: bool = True) -> None:
        """Chan et al.'s parallel update: merging moments is exact up to rounding."""
        if n == 0:
            return
        total = self.n + n
        delta = mean - self.mean
        self.mean += delta * n / total
        self.m2 += m2 + delta * delta * self.n * n / total
        self.n = total
        self.min, self.max = min(self.min, lo), max(self.max, hi)

    def _to_buckets(self, values: np.ndarray) -> None:
        if not len(values):
            return
        # One log for both signs (log|x| is the same number either way), in place: this runs
        # over every value read.
        with np.errstate(divide="ignore"):
            keys = np.log(np.abs(values))
        keys /= LOG_GAMMA
        np.ceil(keys, out=keys)
        if values.min() >= MIN_ABS:  # all positive: the usual case, no masks
            self.pos.add(keys)
            return
        pos, neg = values >= MIN_ABS, values <= -MIN_ABS
        self.zero += len(values) - int(pos.sum()) - int(neg.sum())
        self.pos.add(keys[pos])
        self.neg.add(keys[neg])


def _representative(keys: np.ndarray) -> np.ndarray:
    """The value a bucket stands for: within ALPHA of every value in it."""
    return 2.0 * np.power(GAMMA, keys.astype(np.float64)) / (GAMMA + 1.0)


class _Buckets:
    """Counts per bucket key: an array over the keys' span while that is narrow (a
    chunk's keys counted by np.bincount, no Python loop per key), a dict beyond it."""

    DENSE_SPAN = 1 << 16  # keys; values over ~10^57 orders of magnitude go sparse

    def __init__(self) -> None:
        self.offset = 0
        self.dense = np.zeros(0, dtype=np.int64)
        self.sparse: dict[int, int] | None = None

    def add(self, keys: np.ndarray, counts: np.ndarray | None = None) -> None:
        """Count `keys` (whole numbers, int64 or float: bucket keys come as ceil()'s floats and
        are converted once, offset by the dense range), once each or `counts` times."""
        if not len(keys):
            return
        lo, hi = int(keys.min()), int(keys.max()) + 1
        if self.sparse is None:
            if len(self.dense):
                lo, hi = min(lo, self.offset), max(hi, self.offset + len(self.dense))
            if hi - lo <= self.DENSE_SPAN:
                self._widen(lo, hi)
                at = (keys - lo).astype(np.intp)
                if counts is None:
                    self.dense += np.bincount(at, minlength=hi - lo)
                else:
                    np.add.at(self.dense, at, counts)
                return
            old_keys, old_counts = self.items()
            self.sparse = dict(zip(old_keys.tolist(), old_counts.tolist()))
        keys = keys.astype(np.int64)
        if counts is None:
            keys, counts = np.unique(keys, return_counts=True)
        for k, c in zip(keys.tolist(), np.asarray(counts).tolist()):
            self.sparse[k] = self.sparse.get(k, 0) + c

    def items(self) -> tuple[np.ndarray, np.ndarray]:
        """(keys ascending, their counts), buckets with a count only."""
        if self.sparse is not None:
            keys = np.array(sorted(self.sparse), dtype=np.int64)
            return keys, np.array([self.sparse[k] for k in keys.tolist()], dtype=np.int64)
        at = np.flatnonzero(self.dense)
        return at.astype(np.int64) + self.offset, self.dense[at]

    def pairs(self) -> list[list[int]]:
        keys, counts = self.items()
        return [[k, c] for k, c in zip(keys.tolist(), counts.tolist())]

    @classmethod
    def from_pairs(cls, pairs: list[list[int]]) -> "_Buckets":
        buckets = cls()
        if pairs:
            keys, counts = np.array(pairs, dtype=np.int64).reshape(-1, 2).T
            buckets.add(keys, counts)
        return buckets

    def _widen(self, lo: int, hi: int) -> None:
        if len(self.dense) and lo == self.offset and hi == self.offset + len(self.dense):
            return
        dense = np.zeros(hi - lo, dtype=np.int64)
        if len(self.dense):
            dense[self.offset - lo:self.offset - lo + len(self.dense)] = self.dense
        self.offset, self.dense = lo, dense


DISTINCT_K = 512  # hashes kept: distinct counts within about 5% (1/sqrt(K))
_MASK = np.uint64(0xFFFFFFFFFFFFFFFF)


class DistinctSketch:
    """A K-minimum-values sketch of distinct values: exact below K, an estimate above,
    mergeable. Hashes are stable across processes (saved profiles merge)."""

    def __init__(self, hashes: np.ndarray | None = None) -> None:
        self.hashes = np.zeros(0, dtype=np.uint64) if hashes is None else hashes

    def add_numbers(self, values: np.ndarray) -> None:
        self._keep(_mix(np.ascontiguousarray(values, dtype=np.float64).view(np.uint64)))

    def add_texts(self, values: list[str]) -> None:
        import hashlib

        self._keep(np.fromiter((int.from_bytes(hashlib.blake2b(v.encode(), digest_size=8).digest(), "little")
                                for v in values), dtype=np.uint64, count=len(values)))

    def merge(self, other: "DistinctSketch") -> None:
        self._keep(other.hashes)

    def estimate(self) -> float:
        """Distinct values seen: exact while fewer than K, else (K - 1) / (K-th smallest hash)."""
        if len(self.hashes) < DISTINCT_K:
            return float(len(self.hashes))
        return (DISTINCT_K - 1) / (float(self.hashes[-1]) / 2.0 ** 64)

    def to_json(self) -> list[int]:
        return self.hashes.tolist()

    @classmethod
    def from_json(cls, doc: list[int]) -> "DistinctSketch":
        return cls(np.unique(np.asarray(doc, dtype=np.uint64))[:DISTINCT_K])

    def _keep(self, hashes: np.ndarray) -> None:
        self.hashes = np.unique(np.concatenate([self.hashes, hashes]))[:DISTINCT_K]


def _mix(bits: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: float bits spread evenly over 64-bit hashes."""
    with np.errstate(over="ignore"):
        z = (bits + np.uint64(0x9E3779B97F4A7C15)) & _MASK
        z = ((z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)) & _MASK
        z = ((z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)) & _MASK
        return z ^ (z >> np.uint64(31))
