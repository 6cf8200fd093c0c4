"""Benchmark: model-only rebuild plus push, `--builder oci` against `--builder docker`.

One run, one machine, one registry (Debian's docker-registry on loopback,
behind a counting proxy that measures the bytes each push uploads). Both
builders start from the same local Python base (tests/images/make-base.sh)
with warm caches (wheels, engine layers, the dependencies layer), push
version 1.0.0 once, then the model changes and the timed step runs:

    docker: mlship build --image            + mlship push --image --to registry://…
    oci:    mlship build --image --builder oci --base registry://…/base --push registry://…

Targets (issue 10): oci >= 5x faster; zero base or dependency bytes uploaded again.

    python tests/benchmarks/bench_oci.py
"""

from __future__ import annotations

import argparse
import atexit
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.benchmarks.bench_image import BASE  # noqa: E402
from tests.harness.proxy import start_counting_proxy  # noqa: E402
from tests.harness.services import start_docker_engine, start_oci_registry  # noqa: E402
from tests.models import logistic_classifier  # noqa: E402


def mlship(project: Path, env: dict[str, str], *args: str) -> tuple[float, dict]:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "mlship", "-c", str(project / "mlship.yaml"), "--json", *args],
                          capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr)
    return time.perf_counter() - start, json.loads(proc.stdout)


def new_project(name: str) -> Path:
    project = Path(tempfile.mkdtemp(prefix=f"bench-oci-{name}-"))
    atexit.register(shutil.rmtree, project, True)  # its data is GBs: gone on exit
    shutil.copyfile(ROOT / "examples" / "breast-cancer" / "model.onnx", project / "model.onnx")
    (project / "mlship.yaml").write_text(
        f"name: breast-cancer\nversion: 1.0.0\nmodel: model.onnx\nbuild:\n  image: {{base: '{BASE}'}}\n")
    return project


def docker_round(project: Path, env: dict[str, str], proxy, version: str) -> tuple[float, int]:
    proxy.reset()
    build_s, _ = mlship(project, env, "build", "--image", "--model-version", version)
    push_s, _ = mlship(project, env, "push", f"breast-cancer:{version}", "--image", "--to",
                       f"registry://{proxy.address}/ml/docker-bc")
    return build_s + push_s, proxy.uploaded_bytes()


def oci_round(project: Path, env: dict[str, str], proxy, version: str) -> tuple[float, int, dict]:
    proxy.reset()
    seconds, result = mlship(project, env, "build", "--image", "--builder", "oci", "--model-version", version,
                             "--base", f"registry://{proxy.address}/base/python:3.11",
                             "--push", f"registry://{proxy.address}/ml/oci-bc")
    return seconds, proxy.uploaded_bytes(), result["pushed"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.parse_args()
    engine = start_docker_engine()
    registry = start_oci_registry()
    proxy = start_counting_proxy(registry.address)
    try:
        env = engine.env()
        subprocess.run(["bash", str(ROOT / "tests" / "images" / "make-base.sh"), BASE], env=env, check=True,
                       capture_output=True)
        client = engine.client()
        client.images.get(BASE).tag(f"{proxy.address}/base/python", tag="3.11")
        client.images.push(f"{proxy.address}/base/python", tag="3.11")  # the registry base for oci

        docker_project, oci_project = new_project("docker"), new_project("oci")
        first_docker, docker_first_bytes = docker_round(docker_project, env, proxy, "1.0.0")
        first_oci, oci_first_bytes, _ = oci_round(oci_project, env, proxy, "1.0.0")
        for project in (docker_project, oci_project):
            logistic_classifier(project / "model.onnx")
        docker_s, docker_bytes = docker_round(docker_project, env, proxy, "1.1.0")
        oci_s, oci_bytes, pushed = oci_round(oci_project, env, proxy, "1.1.0")
        speedup = docker_s / oci_s
        print(f"first build + push (warm caches)      docker {first_docker:6.2f} s {docker_first_bytes / 1e6:7.1f} MB"
              f" | oci {first_oci:6.2f} s {oci_first_bytes / 1e6:7.1f} MB")
        print(f"model-only rebuild + push             docker {docker_s:6.2f} s {docker_bytes / 1e6:7.3f} MB"
              f" | oci {oci_s:6.2f} s {oci_bytes / 1e6:7.3f} MB")
        print(f"oci speedup {speedup:.1f}x (target >= 5x: {'met' if speedup >= 5 else 'MISSED'}); oci re-push "
              f"uploaded {pushed['uploaded']} blobs, {pushed['present']} already there "
              f"(base and dependencies: {'none uploaded' if pushed['present'] >= 2 else 'UPLOADED AGAIN'})")
        print(json.dumps({"docker_s": round(docker_s, 2), "oci_s": round(oci_s, 2), "speedup": round(speedup, 1),
                          "docker_bytes": docker_bytes, "oci_bytes": oci_bytes,
                          "first_docker_s": round(first_docker, 2), "first_oci_s": round(first_oci, 2)}))
    finally:
        proxy.stop()
        registry.stop()
        engine.stop()


if __name__ == "__main__":
    main()
