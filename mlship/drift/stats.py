"""Drift statistics between a reference column and a current column.

Exact values (small columns) go straight to SciPy; sketches use the same
statistics on weighted bucket values (relative accuracy 0.2%), computed here
with NumPy and, where needed, scipy.special (the same formulas as scipy.stats,
whose import costs more than comparing a million rows' sketches).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from mlship.drift.kolmogorov import kstwo_sf
from mlship.drift.profile import ColumnProfile

PSI_EPSILON = 1e-4  # proportion given to an empty bin so PSI stays finite


def numeric_stats(ref: ColumnProfile, cur: ColumnProfile) -> dict[str, Any]:
    """KS D and p-value, Wasserstein distance (raw and / reference std), PSI."""
    (rv, rw), (cv, cw), both_exact = comparable_values(ref, cur)
    if not len(rv) or not len(cv):
        return {}
    if both_exact:
        from scipy import stats

        ks = stats.ks_2samp(rv, cv)
        d, p = float(ks.statistic), float(ks.pvalue)
        wd = float(stats.wasserstein_distance(rv, cv))
    else:
        d = _weighted_ks(rv, rw, cv, cw)
        n, m = rw.sum(), cw.sum()
        p = kstwo_sf(d, max(1, round(n * m / (n + m))))
        wd = wasserstein(rv, rw, cv, cw)
    std = ref.numeric.std
    scale = std if std > 0 else (abs(ref.numeric.mean) or 1.0)
    edges = ref.frozen_edges if ref.frozen_edges is not None else ref.psi_edges()
    return {"ks_d": d, "ks_p": p, "wasserstein": wd, "wasserstein_norm": wd / scale,
            "psi": psi(_bin_shares(rv, rw, edges), _bin_shares(cv, cw, edges))}


def comparable_values(ref: ColumnProfile, cur: ColumnProfile) -> tuple[Any, Any, bool]:
    """Both sides' (values, weights) on one footing, and whether both are exact: when one side
    is sketched, the other's exact values go through the same buckets."""
    both_exact = ref.numeric.exact is not None and cur.numeric.exact is not None
    if both_exact:
        return ref.numeric.weighted(), cur.numeric.weighted(), True
    return ref.numeric.bucketed_weighted(), cur.numeric.bucketed_weighted(), False


def _weighted_ks(v1: np.ndarray, w1: np.ndarray, v2: np.ndarray, w2: np.ndarray) -> float:
    grid = np.union1d(v1, v2)
    f1 = np.concatenate([[0.0], np.cumsum(w1) / w1.sum()])[np.searchsorted(v1, grid, side="right")]
    f2 = np.concatenate([[0.0], np.cumsum(w2) / w2.sum()])[np.searchsorted(v2, grid, side="right")]
    return float(np.max(np.abs(f1 - f2)))


def wasserstein(v1: np.ndarray, w1: np.ndarray, v2: np.ndarray, w2: np.ndarray) -> float:
    """scipy.stats.wasserstein_distance(v1, v2, w1, w2): the area between the weighted CDFs."""
    s1, s2 = np.argsort(v1), np.argsort(v2)
    both = np.concatenate((v1, v2))
    both.sort(kind="mergesort")
    deltas = np.diff(both)
    c1 = np.concatenate(([0], np.cumsum(w1[s1])))
    c2 = np.concatenate(([0], np.cumsum(w2[s2])))
    f1 = c1[v1[s1].searchsorted(both[:-1], "right")] / c1[-1]
    f2 = c2[v2[s2].searchsorted(both[:-1], "right")] / c2[-1]
    return float(np.vecdot(np.abs(f1 - f2), deltas))


def _bin_shares(values: np.ndarray, weights: np.ndarray, edges: list[float]) -> np.ndarray:
    """Share of weight per bin: (-inf, e1], (e1, e2], ..., (ek, inf)."""
    index = np.searchsorted(np.asarray(edges), values, side="left")
    counts = np.bincount(index, weights=weights, minlength=len(edges) + 1)
    return counts / counts.sum()


def psi(ref_shares: np.ndarray, cur_shares: np.ndarray) -> float:
    """Population stability index with PSI_EPSILON for empty bins."""
    r = np.maximum(ref_shares, PSI_EPSILON)
    c = np.maximum(cur_shares, PSI_EPSILON)
    return float(np.sum((c - r) * np.log(c / r)))


def categorical_stats(ref: ColumnProfile, cur: ColumnProfile) -> dict[str, Any]:
    """Chi-square on the contingency table, Jensen-Shannon distance, unseen share."""
    from scipy.special import chdtrc

    rc, cc = ref.category_counts(), cur.category_counts()
    cats = sorted(set(rc) | set(cc))
    if not cats or not sum(rc.values()) or not sum(cc.values()):
        return {}
    table = np.array([[rc.get(c, 0) for c in cats], [cc.get(c, 0) for c in cats]], dtype=np.float64)
    if len(cats) > 1:  # scipy.stats.chi2_contingency(table, correction=False)
        expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0, keepdims=True) / table.sum()
        chi2 = float(((table - expected) ** 2 / expected).sum())
        p = float(chdtrc(len(cats) - 1, chi2))
    else:
        chi2, p = 0.0, 1.0
    shares = table / table.sum(axis=1, keepdims=True)
    unseen = sum(cc[c] for c in cc if c not in rc) / sum(cc.values())
    return {"chi2": float(chi2), "chi2_p": float(p), "js": jensen_shannon(shares[0], shares[1]),
            "unseen_share": float(unseen), "categories": len(cats)}


def jensen_shannon(p: np.ndarray, q: np.ndarray) -> float:
    """scipy.spatial.distance.jensenshannon(p, q, base=2)."""
    p, q = p / p.sum(), q / q.sum()
    m = (p + q) / 2.0
    js = (_rel_entr(p, m) + _rel_entr(q, m)) / np.log(2)
    return float(np.sqrt(js / 2.0))


def _rel_entr(p: np.ndarray, m: np.ndarray) -> float:
    """sum(scipy.special.rel_entr(p, m)) where m > 0 wherever p > 0: p log(p / m), 0 where p is 0."""
    kept = p > 0
    return float(np.sum(p[kept] * np.log(p[kept] / m[kept])))


def missing_stats(ref: ColumnProfile, cur: ColumnProfile) -> dict[str, Any]:
    """Missing-value rates and a two-proportion z-test of their difference."""
    n1, n2 = ref.count, cur.count
    r1 = ref.missing / n1 if n1 else 0.0
    r2 = cur.missing / n2 if n2 else 0.0
    pooled = (ref.missing + cur.missing) / (n1 + n2) if n1 + n2 else 0.0
    se = math.sqrt(pooled * (1 - pooled) * (1 / max(n1, 1) + 1 / max(n2, 1)))
    p = math.erfc(abs(r2 - r1) / se / math.sqrt(2)) if se > 0 else (1.0 if r1 == r2 else 0.0)  # 2 norm.sf(|z|)
    return {"reference": r1, "current": r2, "delta": r2 - r1, "p": p}


def benjamini_hochberg(pvalues: list[float]) -> list[float]:
    """BH-adjusted p-values (false discovery rate), in the input order."""
    n = len(pvalues)
    if not n:
        return []
    order = np.argsort(pvalues)
    ranked = np.asarray(pvalues, dtype=np.float64)[order] * n / np.arange(1, n + 1)
    adjusted = np.minimum.accumulate(ranked[::-1])[::-1]
    out = np.empty(n)
    out[order] = np.minimum(adjusted, 1.0)
    return out.tolist()


def shared_histogram(ref: ColumnProfile, cur: ColumnProfile, bins: int = 20) -> dict[str, Any]:
    """Reference and current shares on one set of bins, for charts."""
    (rv, rw), (cv, cw), _ = comparable_values(ref, cur)
    if not len(rv) or not len(cv):
        return {}
    lo, hi = min(rv[0], cv[0]), max(rv[-1], cv[-1])
    if hi <= lo:
        hi = lo + 1.0
    edges = np.linspace(lo, hi, bins + 1)
    r = np.histogram(rv, edges, weights=rw)[0]
    c = np.histogram(cv, edges, weights=cw)[0]
    return {"edges": edges.tolist(), "reference": (r / r.sum()).tolist(), "current": (c / c.sum()).tolist()}
