"""Benchmark: `mlship push` of a 500 MB artifact to a local S3 endpoint against `aws s3 cp`.

Both go to moto's S3 server on 127.0.0.1 (one process, fresh bucket each),
then mlship pushes the same artifact again (it should upload nothing).

Targets (issue 7): >= 1.0x awscli's throughput; a repeat push in <= 1 s.

awscli goes in its own virtual environment:
    python3 -m venv /work/peers/awscli-venv && /work/peers/awscli-venv/bin/pip install awscli

    python tests/benchmarks/bench_push.py [--mb 500] [--awscli-venv DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.harness.services import start_moto_server  # noqa: E402


def timed(cmd: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[0]}: {proc.stderr[-1500:]}")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=500)
    parser.add_argument("--awscli-venv", default="/work/peers/awscli-venv")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-push-"))
    artifact = work / "artifact.bin"
    with artifact.open("wb") as fh:
        for _ in range(args.mb):
            fh.write(os.urandom(1 << 20))
    server = start_moto_server()
    try:
        client = server.client("s3")
        for bucket in ("mlship", "awscli"):
            client.create_bucket(Bucket=bucket)
        env = {**os.environ, "AWS_ENDPOINT_URL_S3": server.endpoint_url, "AWS_ENDPOINT_URL": server.endpoint_url,
               "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
        push = [sys.executable, "-m", "mlship", "push", str(artifact), "--name", "big", "--artifact-version", "1",
                "--to", "s3://mlship"]
        ours = timed(push, env)
        repeat = timed(push, env)
        mb = args.mb * 1.048576
        print(f"mlship push        {ours:6.2f} s  {mb / ours:7.1f} MB/s")
        print(f"mlship push again  {repeat:6.2f} s  (target <= 1 s: {'met' if repeat <= 1 else 'MISSED'})")
        result = {"mb": args.mb, "mlship_s": round(ours, 2), "repeat_s": round(repeat, 2)}
        aws = Path(args.awscli_venv) / "bin" / "aws"
        if aws.exists():
            theirs = timed([str(aws), "--endpoint-url", server.endpoint_url, "s3", "cp", str(artifact),
                            "s3://awscli/big/1/artifact.bin", "--only-show-errors"], env)
            print(f"aws s3 cp          {theirs:6.2f} s  {mb / theirs:7.1f} MB/s")
            ratio = theirs / ours
            print(f"throughput {ratio:.2f}x awscli's (target >= 1.0x: {'met' if ratio >= 1 else 'MISSED'})")
            result.update(awscli_s=round(theirs, 2), ratio=round(ratio, 2))
        else:
            print(f"awscli not found in {args.awscli_venv}: see this script's docstring", file=sys.stderr)
        print(json.dumps(result))
    finally:
        server.stop()
        artifact.unlink()


if __name__ == "__main__":
    main()
