"""Benchmark: drift's A/A test at full size (issue 20 item 7).

10 seeds; each draws a reference and a current sample of 1,000,000 rows x 20
columns from the same distributions (tests/drift/aa.py: symmetric, skewed,
heavy-tailed, bounded, discrete, codes, text categories, missing values),
profiles both as `mlship drift` does (chunks of 250,000 rows) and judges them.

Target: no column drifted, no dataset drift, no data-quality violation in any
seed (the multivariate checks, data reconstruction and domain classifier, on
the row samples run_drift keeps, included). Reported: per seed, the largest effect size of each statistic (their
thresholds: Wasserstein 0.1 std, PSI 0.2, Jensen-Shannon 0.1, unseen 5%), the
smallest BH-adjusted p-value, and the wall time (the machine is shared: times
are indicative).

    python tests/benchmarks/bench_drift_aa.py [--rows 1000000] [--seeds 10]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.drift.aa import aa  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--seeds", type=int, default=10)
    args = parser.parse_args()
    rows, seconds = [], []
    print(f"{'seed':>4} {'drifted':>7} {'dataset':>7} {'multivariate':>12} {'violations':>10} {'max WD/std':>10} {'max PSI':>8} "
          f"{'max JS':>7} {'min p_adj':>9} {'seconds':>7}")
    for seed in range(args.seeds):
        started = time.perf_counter()
        r = aa(seed, args.rows)
        seconds.append(time.perf_counter() - started)
        e = r.max_effect
        rows.append({"seed": seed, "drifted": r.drifted, "dataset_drift": r.dataset_drift, "share_drift": r.share_drift,
                     "multivariate": r.multivariate,
                     "violations": r.violations, "max_effect": e, "min_p_adj": r.min_p_adj, "seconds": seconds[-1]})
        print(f"{seed:>4} {len(r.drifted):>7} {str(r.dataset_drift):>7} {','.join(r.multivariate or []) or '-':>12} "
              f"{len(r.violations):>10} "
              f"{e['wasserstein_norm']:>10.4f} {e['psi']:>8.5f} {e['js']:>7.4f} {r.min_p_adj:>9.3g} "
              f"{seconds[-1]:>7.1f}")
    flagged = sum(len(r["drifted"]) + len(r["violations"]) + r["dataset_drift"] for r in rows)
    by_columns = sum(len(r["drifted"]) + len(r["violations"]) + r["share_drift"] for r in rows)
    multivariate = sum(bool(r["multivariate"]) for r in rows)
    print(f"\n{args.seeds} seeds x {args.rows:,} rows x 20 columns: {flagged} flags (target 0): "
          f"{by_columns} by the columns and quality checks, multivariate flagged {multivariate} seeds; "
          f"median {statistics.median(seconds):.1f} s per seed "
          f"(min {min(seconds):.1f}, max {max(seconds):.1f}), both sides generated and profiled")
    print(json.dumps({"rows": args.rows, "seeds": rows}), file=sys.stderr)
    return 0 if flagged == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
