"""Benchmark: `mlship profile --engine ray` against the local engine (issue 20 item 8).

A reference of --rows rows x 20 columns (tests/drift/aa.py's shapes) in
--files Parquet files; each engine runs as a fresh process, alternately,
--runs times: wall time median and spread, and whether the two profiles agree
(rows, counts, sketch buckets, categories exactly; moments to 1e-9).

Ray's time includes starting the local cluster (the usual cost of a one-off
job); its gain grows with the cores there are and the data there is. On a
shared 2-core machine, say so with the figures.

    python tests/benchmarks/bench_profile_ray.py [--rows 4000000] [--files 8] [--runs 3] [--cpus 2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.drift.aa import columns  # noqa: E402


def write_reference(folder: Path, rows: int, files: int) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(0)
    per = rows // files
    for i in range(files):
        pq.write_table(pa.table(columns(rng, per)), folder / f"part-{i:03d}.parquet", row_group_size=250_000)


def timed(args: list[str]) -> float:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "mlship", *args], check=True, env=env, capture_output=True)
    return time.perf_counter() - started


def agree(a: dict, b: dict) -> bool:
    if a["rows"] != b["rows"] or a["columns"].keys() != b["columns"].keys():
        return False
    for name, left in a["columns"].items():
        right = b["columns"][name]
        if any(left[k] != right[k] for k in ("missing", "non_numeric", "categories", "codes", "psi_edges")):
            return False
        ln, rn = left["numeric"], right["numeric"]
        if ln.get("buckets") != rn.get("buckets") or ln["n"] != rn["n"]:
            return False
        if abs(ln["mean"] - rn["mean"]) > 1e-9 * max(1.0, abs(ln["mean"])):
            return False
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=4_000_000)
    parser.add_argument("--files", type=int, default=8)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--cpus", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "reference"
        folder.mkdir()
        write_reference(folder, args.rows, args.files)
        times: dict[str, list[float]] = {"local": [], "ray": []}
        commands = {"local": ["profile", str(folder), "-o", f"{tmp}/local.json"],
                    "ray": ["profile", str(folder), "-o", f"{tmp}/ray.json", "--engine", "ray",
                            "--num-cpus", str(args.cpus)]}
        for run in range(args.runs):
            for engine in ("local", "ray") if run % 2 == 0 else ("ray", "local"):
                times[engine].append(timed(commands[engine]))
                print(f"run {run + 1} {engine}: {times[engine][-1]:.1f} s", flush=True)
        same = agree(json.loads(Path(f"{tmp}/local.json").read_text()), json.loads(Path(f"{tmp}/ray.json").read_text()))
    print(f"\n{args.rows:,} rows x 20 columns in {args.files} Parquet files, {os.cpu_count()} CPUs here, "
          f"Ray with {args.cpus}:")
    for engine, values in times.items():
        print(f"  {engine:5} median {statistics.median(values):.1f} s (min {min(values):.1f}, max {max(values):.1f})")
    ratio = statistics.median(times["local"]) / statistics.median(times["ray"])
    print(f"  local / ray: {ratio:.2f}x; profiles agree: {same}")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
