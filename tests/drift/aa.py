"""A/A comparisons: two samples of one distribution, profiled as drift profiles them.

Shared by the CI test (tests/drift/test_aa.py) and the full-size benchmark
(tests/benchmarks/bench_drift_aa.py): 20 columns of the shapes real data has
(symmetric, skewed, heavy-tailed, bounded, discrete, few codes, text
categories, missing values), generated vectorised.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mlship.drift.comparison import compare, share_drifted
from mlship.drift.profile import Profile
from mlship.drift.quality import assess
from mlship.drift.samples import REFERENCE_ROWS, Collector
from mlship.drift.settings import DriftOptions
from mlship.drift.together import beyond_columns
from mlship.drift.verdict import ordered

CITIES = np.array(["Oslo", "Lima", "Pune", "Kyiv", "Baku", "Rome", "Quito", "Accra"], dtype=object)
CHUNK = 250_000


def columns(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """20 columns of n rows."""
    out = {
        "normal": rng.normal(50, 10, n), "normal_small_std": rng.normal(1e-3, 1e-5, n),
        "lognormal": rng.lognormal(0, 1, n), "lognormal_wide": rng.lognormal(0, 2.5, n),
        "exponential": rng.exponential(3, n), "student_t3": rng.standard_t(3, n),
        "uniform": rng.random(n), "beta_near_1": rng.beta(20, 1, n), "negative": -rng.gamma(2, 5, n),
        "mixture": np.where(rng.random(n) < 0.3, rng.normal(-5, 1, n), rng.normal(5, 2, n)),
        "poisson": rng.poisson(30, n).astype(float), "counts_rare": rng.poisson(0.3, n).astype(float),
        "codes": rng.integers(0, 7, n).astype(float), "binary": (rng.random(n) < 0.1).astype(float),
        "zero_inflated": np.where(rng.random(n) < 0.6, 0.0, rng.lognormal(2, 1, n)),
        "rounded": rng.normal(100, 15, n).round(),
    }
    with_missing = rng.normal(0, 1, n)
    with_missing[rng.random(n) < 0.05] = np.nan
    out["with_missing"] = with_missing
    out["city"] = CITIES[rng.choice(len(CITIES), n, p=[0.3, 0.2, 0.15, 0.1, 0.1, 0.08, 0.05, 0.02])]
    out["tier"] = np.array(["gold", "silver", "bronze"], dtype=object)[rng.choice(3, n, p=[0.1, 0.3, 0.6])]
    out["probability"] = 1 / (1 + np.exp(-rng.normal(-1, 1.5, n)))
    return out


def profile(data: dict[str, np.ndarray], n: int, rows: Collector) -> Profile:
    """The profile drift makes, fed in chunks as drift reads files; `rows` keeps the row
    sample the multivariate checks use, as run_drift's does."""
    prof = Profile()
    for start in range(0, n, CHUNK):
        stop = min(start + CHUNK, n)
        chunk = {k: v[start:stop] for k, v in data.items()}
        prof.add_frame(chunk, stop - start)
        rows.add(chunk, {}, np.ones(stop - start, dtype=bool), None, None)
    return prof


@dataclass
class AAResult:
    seed: int
    drifted: list[str]
    share_drift: bool  # the drifted share of columns reached drift_share
    dataset_drift: bool  # the report's verdict: the share, or a multivariate check that counts
    multivariate: list[str] | None  # the multivariate checks that flagged the current data (None: not run)
    violations: list[str]
    max_effect: dict[str, float]  # statistic -> largest value over the columns
    min_p_adj: float


def aa(seed: int, n: int, shift: dict[str, float] | None = None, multivariate: bool = True) -> AAResult:
    """Reference and current drawn from the same distributions with one seed, judged as drift
    judges; `shift` adds to current columns (an A/B control: the same pipeline does see drift);
    `multivariate=False` leaves out the multivariate checks (their sample is still kept)."""
    rng = np.random.default_rng(seed)
    options = DriftOptions(reference="A", current="A'")
    rows_ref, rows_cur = Collector(options, feature_cap=REFERENCE_ROWS, feature_cap_all=REFERENCE_ROWS), Collector(options)
    reference = profile(columns(rng, n), n, rows_ref)
    cur = columns(rng, n)
    for name, delta in (shift or {}).items():
        cur[name] = cur[name] + delta
    current = profile(cur, n, rows_cur)
    cols = ordered(compare(reference, current, options))
    drifted, share, judged = share_drifted(cols)
    together = beyond_columns(rows_ref, rows_cur, cols, [], [], options) if multivariate else None
    quality = assess(reference, current, cols)
    effects: dict[str, float] = {}
    for c in cols:
        for stat in ("wasserstein_norm", "psi", "js", "unseen_share"):
            value = getattr(c.stats, stat, None) if c.stats else None
            if value is not None:
                effects[stat] = max(effects.get(stat, 0.0), value)
    p_adj = [c.stats.p_adj for c in cols if c.stats and c.stats.p_adj is not None]
    mv = together.multivariate if together is not None else None
    share_drift = judged and share >= options.drift_share
    return AAResult(seed=seed, drifted=drifted, share_drift=share_drift,
                    dataset_drift=share_drift or (together is not None and together.dataset_drift),
                    multivariate=None if mv is None else (mv.flagged_by if mv.drifted else []),
                    violations=[f"{v.feature_name}:{v.constraint_check_type}" for v in quality.violations],
                    max_effect=effects, min_p_adj=min(p_adj))
