"""A/A: two samples of one distribution flag no column, no dataset drift and no data-quality
violation, over 10 seeds. The full size (1,000,000 rows x 20 columns) runs as
tests/benchmarks/bench_drift_aa.py (figures in docs/benchmarks.md); CI runs the same
property on 200,000 rows, where the columns are sketched just as at a million."""

from __future__ import annotations

import pytest

from tests.drift.aa import aa

ROWS = 200_000


def test_a_over_a_flags_nothing_across_ten_seeds():
    results = [aa(seed, ROWS, multivariate=False) for seed in range(10)]
    for r in results:
        assert r.drifted == [] and not r.dataset_drift and r.violations == [], r
    # Not flagged by a margin: the largest effect sizes stay far below the thresholds (0.1, 0.2, 0.1, 0.05).
    worst = {stat: max(r.max_effect[stat] for r in results) for stat in results[0].max_effect}
    assert worst["wasserstein_norm"] < 0.02 and worst["psi"] < 0.01 and worst["js"] < 0.01, worst
    assert worst["unseen_share"] == 0.0
    # The same pipeline is not blind: a 0.15 standard deviation shift of one column is flagged.
    control = aa(0, ROWS, shift={"normal": 1.5})
    assert control.drifted == ["normal"] and control.violations == ["normal:baseline_drift_check"], control


@pytest.mark.parametrize("seed", [2, 3])  # the seeds whose samples a narrower band (3 σ, fitted in-sample) flagged
def test_a_over_a_multivariate_checks_flag_nothing(seed):
    r = aa(seed, ROWS)
    assert r.multivariate == [] and not r.dataset_drift, r
