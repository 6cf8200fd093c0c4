"""Benchmark: wall time of `mlship --help` against `python -c "import typer, rich"`.

Target (issue 21): mlship --help within 1.2x of importing typer and rich (issue 2 set 1.5x).
Runs both commands alternately so machine noise hits both alike, and prints
medians, the ratio and a JSON line for the README.

    python tests/benchmarks/bench_cli_startup.py [--runs 30]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path


def wall(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    script = shutil.which("mlship") or str(Path(sys.executable).parent / "mlship")
    commands = {
        "python -c 'import typer, rich'": [sys.executable, "-c", "import typer, rich"],
        "mlship --help": [script, "--help"],
    }
    for cmd in commands.values():  # warm the page cache and .pyc files
        wall(cmd)
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(args.runs):
        for name, cmd in commands.items():
            times[name].append(wall(cmd))
    medians = {name: statistics.median(t) * 1000 for name, t in times.items()}
    base, ours = medians["python -c 'import typer, rich'"], medians["mlship --help"]
    for name, ms in medians.items():
        print(f"{name:34s} median {ms:7.1f} ms  (min {min(times[name]) * 1000:.1f}, runs {args.runs})")
    ratio = ours / base
    print(f"ratio {ratio:.2f}x (target <= 1.2x): {'met' if ratio <= 1.2 else 'MISSED'}")
    print(json.dumps({"baseline_ms": round(base, 1), "mlship_help_ms": round(ours, 1), "ratio": round(ratio, 2)}))


if __name__ == "__main__":
    main()
