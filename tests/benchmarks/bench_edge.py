"""Benchmark: edge bundle size and single-row latency, fp32 vs int8 vs ORT format.

For the breast-cancer example's two models: model.onnx (a tree ensemble, which
int8 cannot shrink: the build ships it as fp32 and says so) and model-mlp.onnx
(a scaler and a 256x128 perceptron, which int8 does shrink).

    python tests/benchmarks/bench_edge.py
"""

from __future__ import annotations

import atexit
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.models import sample_matrix  # noqa: E402


def latency_us(model: Path, runs: int = 3000) -> float:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(model), options)
    x = sample_matrix()[0][:1]
    for _ in range(200):
        session.run(None, {"X": x})
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        session.run(None, {"X": x})
        times.append(time.perf_counter() - start)
    return float(np.median(times) * 1e6)


def main() -> None:
    from mlship.bundles.read import unpack_bundle

    work = Path(tempfile.mkdtemp(prefix="bench-edge-"))
    atexit.register(shutil.rmtree, work, True)  # its data is GBs: gone on exit
    models = {"breast-cancer GBT": ROOT / "examples" / "breast-cancer" / "model.onnx",
              "MLP 256x128": ROOT / "examples" / "breast-cancer" / "model-mlp.onnx"}
    rows = []
    for label, model in models.items():
        for variant, extra in (("fp32", []), ("int8", ["--quantize", "int8"]), ("ORT", ["--ort"])):
            out = work / f"{label.split()[0]}-{variant}"
            subprocess.run([sys.executable, "-m", "mlship", "build", "--edge", str(model), "--name", "m",
                            "--model-version", "1", "--output-dir", str(out), *extra], check=True, capture_output=True,
                           cwd=work)
            bundle = out / "m-1.mlbundle"
            unpacked = unpack_bundle(bundle, out / "u")
            rows.append((label, variant, bundle.stat().st_size, unpacked.model_path.stat().st_size,
                         latency_us(unpacked.model_path)))
    print(f"{'model':20s} {'variant':7s} {'bundle':>10s} {'model':>10s} {'p50 µs':>8s}")
    for label, variant, bsize, msize, lat in rows:
        print(f"{label:20s} {variant:7s} {bsize:10,d} {msize:10,d} {lat:8.1f}")
    print(json.dumps([dict(zip(("model", "variant", "bundle_bytes", "model_bytes", "p50_us"), r)) for r in rows]))


if __name__ == "__main__":
    main()
