"""Benchmark: `mlship predict` end to end against a raw onnxruntime loop.

1,000,000 rows of the example model's 30 features in Parquet. mlship reads,
infers and writes (a subprocess; its job time is what it reports, from
loading the model to renaming the output, and the process's wall time with
interpreter start-up is printed too; peak RSS measured); the raw loop runs
onnxruntime (default session options) over the same rows already in memory,
in the same batch size.
Also reports the Ray engine in local mode.

Targets (issue 4): >= 85% of the raw loop's rows/s; peak RSS <= 500 MB.

    python tests/benchmarks/bench_predict.py [--rows 1000000] [--batch-size 50000] [--skip-ray]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "examples" / "breast-cancer" / "model.onnx"
sys.path.insert(0, str(ROOT))

from tests.models import sample_matrix  # noqa: E402


def make_input(path: Path, rows: int) -> np.ndarray:
    import pyarrow as pa
    import pyarrow.parquet as pq

    X, _, names = sample_matrix()
    rng = np.random.default_rng(11)
    data = X[rng.integers(0, len(X), rows)] * rng.uniform(0.9, 1.1, (rows, 1)).astype(np.float32)
    pq.write_table(pa.table({"id": np.arange(rows), **{n: data[:, j] for j, n in enumerate(names)}}), path,
                   row_group_size=100_000)
    return data


def raw_loop(X: np.ndarray, batch: int) -> float:
    import onnxruntime as ort

    session = ort.InferenceSession(str(MODEL), providers=["CPUExecutionProvider"])
    session.run(None, {"X": X[:batch]})  # warm-up
    start = time.perf_counter()
    for i in range(0, len(X), batch):
        session.run(None, {"X": X[i:i + batch]})
    return len(X) / (time.perf_counter() - start)


def mlship(source: Path, output: Path, batch: int, *extra: str) -> tuple[float, float, float]:
    """(rows/s of the job as mlship times it, rows/s of the whole process, peak RSS MB)."""
    cmd = [sys.executable, "-m", "mlship", "--json", "predict", str(MODEL), "-i", str(source), "-o", str(output),
           "--batch-size", str(batch), "--keep-columns", "id", *extra]
    start = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    wall = time.perf_counter() - start
    summary = json.loads(out)
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return summary["rows_per_s"], summary["rows"] / wall, peak_mb


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--batch-size", type=int, default=50_000)
    parser.add_argument("--skip-ray", action="store_true")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-predict-"))
    source = work / "features.parquet"
    X = make_input(source, args.rows)
    raw = raw_loop(X, args.batch_size)
    del X
    mlship(source, work / "warm.parquet", args.batch_size)  # page cache, .pyc files
    ours, whole, rss = mlship(source, work / "out.parquet", args.batch_size)
    print(f"raw onnxruntime loop (in memory)   {raw:12,.0f} rows/s")
    print(f"mlship predict (read+infer+write)  {ours:12,.0f} rows/s  = {ours / raw:.0%} of raw "
          f"(target >= 85%: {'met' if ours / raw >= 0.85 else 'MISSED'}); peak RSS {rss:.0f} MB "
          f"(target <= 500 MB: {'met' if rss <= 500 else 'MISSED'})")
    print(f"  with process start-up and imports {whole:11,.0f} rows/s  = {whole / raw:.0%} of raw")
    result = {"rows": args.rows, "raw_rows_per_s": round(raw), "mlship_rows_per_s": round(ours),
              "ratio": round(ours / raw, 3), "with_startup_rows_per_s": round(whole),
              "with_startup_ratio": round(whole / raw, 3), "peak_rss_mb": round(rss)}
    if not args.skip_ray:
        ray_rate, _, _ = mlship(source, work / "out-ray.parquet", args.batch_size, "--engine", "ray")
        print(f"mlship predict --engine ray (local) {ray_rate:11,.0f} rows/s (includes starting Ray)")
        result["ray_rows_per_s"] = round(ray_rate)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
