"""Benchmark: `mlship push` of a 500 MB artifact to a local S3 endpoint against `aws s3 cp`.

Both go to moto's S3 server on 127.0.0.1 (fresh buckets each run), alternately,
--runs times; mlship then pushes the same artifact again (it should upload
nothing), and pushes to two S3 endpoints at once (hybrid: a second moto server).

Targets (issues 7, 21): >= 1.0x awscli's throughput (sha256 included, taken on
the upload's own read); a repeat push in <= 1 s; two targets <= 1.2x one.

awscli goes in its own virtual environment:
    python3 -m venv /work/peers/awscli-venv && /work/peers/awscli-venv/bin/pip install awscli

    python tests/benchmarks/bench_push.py [--mb 500] [--awscli-venv DIR]
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

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.harness.ports import LOOPBACK, free_port, wait_until  # noqa: E402
from tests.harness.services import _answers  # noqa: E402


class MotoProcess:
    """moto's S3 server in a process of its own (a ThreadedMotoServer would share this process's
    GIL and, for two of them, one in-memory backend)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.endpoint_url = f"http://{LOOPBACK}:{self.port}"
        self.proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", LOOPBACK, "-p", str(self.port)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(lambda: _answers(f"{self.endpoint_url}/moto-api/data.json"), 30, "moto server")

    def client(self, service: str):
        import boto3

        return boto3.client(service, endpoint_url=self.endpoint_url, region_name="us-east-1",
                            aws_access_key_id="testing", aws_secret_access_key="testing")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def timed(cmd: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[0]}: {proc.stderr[-1500:]}")
    return time.perf_counter() - start


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):6.2f} s (min {min(values):.2f}, max {max(values):.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=500)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--awscli-venv", default="/work/peers/awscli-venv")
    args = parser.parse_args()
    aws = Path(args.awscli_venv) / "bin" / "aws"
    if not aws.exists():
        sys.exit(f"awscli not found in {args.awscli_venv}: see this script's docstring")
    work = Path(tempfile.mkdtemp(prefix="bench-push-"))
    artifact = work / "artifact.bin"
    with artifact.open("wb") as fh:
        for _ in range(args.mb):
            fh.write(os.urandom(1 << 20))
    servers = [MotoProcess(), MotoProcess()]  # hybrid: two stores, as two sites would be
    try:
        base = {**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_DEFAULT_REGION": "us-east-1"}
        config = work / "mlship.yaml"
        config.write_text("targets:\n" + "".join(
            f"  site{i}: {{type: s3, url: 's3://mlship', endpoint_url: '{s.endpoint_url}'}}\n"
            for i, s in enumerate(servers)))
        times: dict[str, list[float]] = {"mlship": [], "awscli": [], "hybrid": []}
        repeat = 0.0
        for run in range(args.runs):  # alternate: the machine's load falls on both alike
            for server in servers:
                server.client("s3").create_bucket(Bucket="mlship")
                server.client("s3").create_bucket(Bucket="awscli")
            push = [sys.executable, "-m", "mlship", "-c", str(config), "push", str(artifact), "--name", "big",
                    "--artifact-version", str(run)]
            times["mlship"].append(timed(push + ["--to", "site0"], base))
            if run == 0:
                repeat = timed(push + ["--to", "site0"], base)
            times["awscli"].append(timed([str(aws), "--endpoint-url", servers[0].endpoint_url, "s3", "cp",
                                          str(artifact), f"s3://awscli/big/{run}/artifact.bin", "--only-show-errors"],
                                         base))
            times["hybrid"].append(timed(push[:-1] + [f"{run}h", "--to", "site0", "--to", "site1"], base))
            for server in servers:  # moto keeps objects in memory: empty it between runs
                s3 = server.client("s3")
                for bucket in ("mlship", "awscli"):
                    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
                        for obj in page.get("Contents", []):
                            s3.delete_object(Bucket=bucket, Key=obj["Key"])
                    s3.delete_bucket(Bucket=bucket)
        mb = args.mb * 1.048576
        ours, theirs, both = (statistics.median(times[k]) for k in ("mlship", "awscli", "hybrid"))
        print(f"mlship push            {spread(times['mlship'])}  {mb / ours:7.1f} MB/s")
        print(f"aws s3 cp              {spread(times['awscli'])}  {mb / theirs:7.1f} MB/s")
        print(f"mlship push, 2 targets {spread(times['hybrid'])}")
        print(f"mlship push again      {repeat:6.2f} s  (target <= 1 s: {'met' if repeat <= 1 else 'MISSED'})")
        ratio, hybrid = theirs / ours, both / ours
        print(f"throughput {ratio:.2f}x awscli's (target >= 1.0x: {'met' if ratio >= 1 else 'MISSED'})")
        print(f"two targets at once {hybrid:.2f}x one (target <= 1.2x: {'met' if hybrid <= 1.2 else 'MISSED'})")
        print(json.dumps({"mb": args.mb, "runs": {k: [round(v, 2) for v in vs] for k, vs in times.items()},
                          "repeat_s": round(repeat, 2), "ratio": round(ratio, 2), "hybrid_ratio": round(hybrid, 2)}))
    finally:
        for server in servers:
            server.stop()
        artifact.unlink()


if __name__ == "__main__":
    main()
