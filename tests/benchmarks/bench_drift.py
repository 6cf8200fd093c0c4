"""Benchmark: `mlship drift --html --json-out` against Evidently's DataDriftPreset.

1,000,000 rows x 20 numeric columns for reference and for current, 5 of
them shifted by 0.2 standard deviations, in Parquet. Both tools read the
same files and write an HTML and a JSON report; wall time and peak RSS come
from GNU time, one fresh process each.

Targets (issue 21): >= 50x faster, <= 1/4 of Evidently's peak RSS, the same
five columns flagged. The two run alternately --runs times (median, spread).

--large: 10,000,000 rows x 100 columns for reference and for current (50
float64, 20 float32, 15 whole-number codes, 15 text categories; 3 of each
kind shifted), generated once into a cached temporary directory
(~11 GB), mlship alone (Evidently runs out of memory at this size: its issue
#1526). Target: <= 120 s and <= 2 GB peak RSS.

Evidently goes in its own virtual environment:
    python3 -m venv /work/peers/evidently-venv
    /work/peers/evidently-venv/bin/pip install evidently 'pandas<3' pyarrow

    python tests/benchmarks/bench_drift.py [--rows 1000000] [--runs 3] [--evidently-venv DIR] [--large]
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import shutil
import statistics
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


def spread(values: list[float], fmt: str = "{:.2f}") -> str:
    return f"{fmt.format(statistics.median(values))} (min {fmt.format(min(values))}, max {fmt.format(max(values))})"


def large_columns_group(rng: np.random.Generator, rows: int, shifted: set[int]):
    """One row group of the --large data: 50 float64, 20 float32, 15 codes, 15 text categories."""
    import pyarrow as pa

    cols = {}
    for i in range(50):
        cols[f"num{i:02d}"] = rng.normal(0.2 if i in shifted else 0.0, 1 + i % 3, rows)
    for i in range(20):
        cols[f"f32_{i:02d}"] = rng.lognormal(0.1 if i in shifted else 0.0, 1.0, rows).astype(np.float32)
    for i in range(15):
        cols[f"code{i:02d}"] = rng.poisson(3 + i, rows).astype(np.int64) if i % 2 else rng.integers(0, 5 + i, rows)
    for i in range(15):
        values = np.array([f"c{i}_{k}" for k in range(4 + 3 * i)])
        weights = np.ones(len(values))
        weights[0] += 1.0 if i in shifted else 0.0
        index = rng.choice(len(values), rows, p=weights / weights.sum()).astype(np.int32)
        cols[f"cat{i:02d}"] = pa.DictionaryArray.from_arrays(index, pa.array(values))
    return pa.table(cols)


def large_data(rows: int) -> tuple[Path, Path]:
    """The --large files, generated once into a cached temporary directory."""
    import pyarrow.parquet as pq

    work = Path(tempfile.gettempdir()) / f"mlship-bench-drift-large-{rows}"
    work.mkdir(exist_ok=True)
    for name, seed, shifted in (("reference", 1, set()), ("current", 2, {3, 7, 11})):
        path = work / f"{name}.parquet"
        if path.exists():
            continue
        rng, tmp, writer = np.random.default_rng(seed), path.with_suffix(".tmp"), None
        for start in range(0, rows, 500_000):
            table = large_columns_group(rng, min(500_000, rows - start), shifted)
            writer = writer or pq.ParquetWriter(tmp, table.schema)
            writer.write_table(table)
        writer.close()
        tmp.rename(path)
    return work / "reference.parquet", work / "current.parquet"


def mlship_drift(ref: Path, cur: Path, work: Path) -> tuple[float, float, list[str]]:
    wall, rss = timed([sys.executable, "-m", "mlship", "drift", "-r", str(ref), "-c", str(cur), "--html",
                       str(work / "mlship.html"), "--json-out", str(work / "mlship.json")])
    return wall, rss, sorted(json.loads((work / "mlship.json").read_text())["drifted_columns"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--evidently-venv", default="/work/peers/evidently-venv")
    parser.add_argument("--large", action="store_true", help="10M x 100 mixed columns, mlship alone")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-drift-"))
    atexit.register(shutil.rmtree, work, True)  # its data is GBs: gone on exit
    if args.large:
        rows = args.rows if args.rows != 1_000_000 else 10_000_000
        ref, cur = large_data(rows)
        runs = [mlship_drift(ref, cur, work) for _ in range(args.runs)]
        walls, rsss = [r[0] for r in runs], [r[1] for r in runs]
        print(f"mlship drift {rows:,} rows x 100 columns: {spread(walls)} s (target <= 120 s), peak RSS "
              f"{spread(rsss, '{:.0f}')} MB (target <= 2048 MB); flagged {runs[-1][2]}")
        print(json.dumps({"rows": rows, "columns": 100, "mlship_s": walls, "mlship_rss_mb": [round(r) for r in rsss],
                          "mlship_flagged": runs[-1][2]}))
        return
    ref, cur = make_data(work, args.rows)
    python = Path(args.evidently_venv) / "bin" / "python"
    if not python.exists():
        print(f"Evidently not found in {args.evidently_venv}: see this script's docstring", file=sys.stderr)
    script = work / "evidently_run.py"
    script.write_text(EVIDENTLY)
    ours, theirs, our_flags, their_flags = [], [], [], []
    for _ in range(args.runs):  # alternately: the machine's load falls on both alike
        wall, rss, our_flags = mlship_drift(ref, cur, work)
        ours.append((wall, rss))
        if python.exists():
            theirs.append(timed([str(python), str(script), str(ref), str(cur), str(work / "evidently.html"),
                                 str(work / "evidently.json")], env={**os.environ, "DO_NOT_TRACK": "1"}))
            their_flags = evidently_flagged(work / "evidently.json")
    print(f"mlship drift     {spread([w for w, _ in ours])} s  peak RSS {spread([r for _, r in ours], '{:.0f}')} MB  "
          f"flagged {our_flags}")
    result = {"rows": args.rows, "mlship_s": [round(w, 2) for w, _ in ours],
              "mlship_rss_mb": [round(r) for _, r in ours], "mlship_flagged": our_flags}
    if theirs:
        print(f"Evidently        {spread([w for w, _ in theirs])} s  peak RSS {spread([r for _, r in theirs], '{:.0f}')} MB  "
              f"flagged {their_flags}")
        speeds = [t[0] / o[0] for t, o in zip(theirs, ours)]
        memory = statistics.median([o[1] for o in ours]) / statistics.median([t[1] for t in theirs])
        speed = statistics.median(speeds)
        print(f"speed-up {speed:.1f}x (runs {min(speeds):.1f}-{max(speeds):.1f}x; target >= 50x: "
              f"{'met' if speed >= 50 else 'MISSED'}); RSS {memory:.2f} of Evidently's (target <= 0.25: "
              f"{'met' if memory <= 0.25 else 'MISSED'}); same columns: {our_flags == their_flags == SHIFTED}")
        result.update(evidently_s=[round(t[0], 2) for t in theirs], evidently_rss_mb=[round(t[1]) for t in theirs],
                      evidently_flagged=their_flags, speedup=round(speed, 1), rss_ratio=round(memory, 3))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
