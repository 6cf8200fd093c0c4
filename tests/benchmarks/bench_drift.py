"""Benchmark: `mlship drift --html --json-out` against Evidently's DataDriftPreset.

1,000,000 rows x 20 numeric columns for reference and for current, 5 of
them shifted by 0.2 standard deviations, in Parquet. Both tools read the
same files and write an HTML and a JSON report; wall time and peak RSS come
from GNU time, one fresh process each.

Targets (issue 5): >= 25x faster, <= 1/3 of Evidently's peak RSS, the same
five columns flagged.

Evidently goes in its own virtual environment:
    python3 -m venv /work/peers/evidently-venv
    /work/peers/evidently-venv/bin/pip install evidently 'pandas<3' pyarrow

    python tests/benchmarks/bench_drift.py [--rows 1000000] [--evidently-venv DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

SHIFTED = [f"f{i:02d}" for i in (2, 6, 10, 14, 18)]

EVIDENTLY = """
import json, os, sys
import pandas as pd
from evidently import Report
from evidently.presets import DataDriftPreset
ref = pd.read_parquet(sys.argv[1]); cur = pd.read_parquet(sys.argv[2])
snapshot = Report([DataDriftPreset()]).run(cur, ref)
snapshot.save_html(sys.argv[3]); snapshot.save_json(sys.argv[4])
"""


def make_data(work: Path, rows: int) -> tuple[Path, Path]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(2026)
    names = [f"f{i:02d}" for i in range(20)]
    ref = {n: rng.normal(0, 1, rows) for n in names}
    cur = {n: rng.normal(0.2 if n in SHIFTED else 0.0, 1, rows) for n in names}
    pq.write_table(pa.table(ref), work / "reference.parquet")
    pq.write_table(pa.table(cur), work / "current.parquet")
    return work / "reference.parquet", work / "current.parquet"


def timed(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, float]:
    """(wall seconds, peak RSS MB) of one process, from GNU time."""
    out = Path(tempfile.mktemp(suffix=".time"))
    proc = subprocess.run(["/usr/bin/time", "-o", str(out), "-f", "%e %M", *cmd], env=env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if proc.returncode not in (0, 4):
        raise RuntimeError(f"{cmd[0]} failed: {proc.stderr[-2000:]}")
    wall, rss_kb = out.read_text().split()[-2:]
    return float(wall), float(rss_kb) / 1024


def evidently_flagged(path: Path) -> list[str]:
    flagged = []
    for metric in json.loads(path.read_text())["metrics"]:
        config = metric.get("config", {})
        if config.get("type", "").endswith("ValueDrift"):
            value, threshold = metric["value"], config["threshold"]
            p_value_method = "p_value" in config.get("method", "") or "test" in config.get("method", "").lower()
            if (value < threshold) if p_value_method else (value >= threshold):
                flagged.append(config["column"])
    return sorted(flagged)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--evidently-venv", default="/work/peers/evidently-venv")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-drift-"))
    ref, cur = make_data(work, args.rows)

    ours = timed([sys.executable, "-m", "mlship", "drift", "-r", str(ref), "-c", str(cur), "--html",
                  str(work / "mlship.html"), "--json-out", str(work / "mlship.json")])
    our_flags = sorted(json.loads((work / "mlship.json").read_text())["drifted_columns"])
    print(f"mlship drift     {ours[0]:8.2f} s  peak RSS {ours[1]:7.0f} MB  flagged {our_flags}")
    result = {"rows": args.rows, "mlship_s": ours[0], "mlship_rss_mb": round(ours[1]), "mlship_flagged": our_flags}

    python = Path(args.evidently_venv) / "bin" / "python"
    if python.exists():
        script = work / "evidently_run.py"
        script.write_text(EVIDENTLY)
        theirs = timed([str(python), str(script), str(ref), str(cur), str(work / "evidently.html"),
                        str(work / "evidently.json")], env={**os.environ, "DO_NOT_TRACK": "1"})
        their_flags = evidently_flagged(work / "evidently.json")
        print(f"Evidently        {theirs[0]:8.2f} s  peak RSS {theirs[1]:7.0f} MB  flagged {their_flags}")
        speed, memory = theirs[0] / ours[0], ours[1] / theirs[1]
        print(f"speed-up {speed:.1f}x (target >= 25x: {'met' if speed >= 25 else 'MISSED'}); "
              f"RSS {memory:.2f} of Evidently's (target <= 0.33: {'met' if memory <= 1 / 3 else 'MISSED'}); "
              f"same columns: {our_flags == their_flags == SHIFTED}")
        result.update(evidently_s=theirs[0], evidently_rss_mb=round(theirs[1]), evidently_flagged=their_flags,
                      speedup=round(speed, 1), rss_ratio=round(memory, 3))
    else:
        print(f"Evidently not found in {args.evidently_venv}: see this script's docstring", file=sys.stderr)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
