"""Benchmark: `mlship push` of a 500 MB artifact to a local S3 endpoint against `aws s3 cp`.

Both go to an S3 server on 127.0.0.1, a process of its own (fresh buckets each
run), alternately, --runs times; mlship then pushes the same artifact again (it
should upload nothing), pushes to two S3 endpoints at once (a second server, as
two sites would be), and to one S3 endpoint plus a shared-filesystem target
(`file://`, a directory as an NFS mount would be; its own push is timed too).

The servers (--store): moto's S3 server (default), or light_s3.py, a lean store
written for this benchmark (bytes kept in memory, ~0.1 CPU s per 500 MB against
moto's 2.5-3.7): on 2 cores two moto servers need more CPU than the client does,
so only the light store shows what the client does with a second target. After
the first run each store's copies are read back and compared with the artifact's
sha256 (untimed).

mlship runs as installed from a wheel, with its modules' bytecode compiled (pip does that
at install, as it did for awscli's): the script compiles the mlship that `python -m mlship`
imports (its __pycache__ folders, as a run without PYTHONDONTWRITEBYTECODE would) first,
so a checkout run with PYTHONDONTWRITEBYTECODE does not compile ~60 modules (~25 ms of
CPU) in every timed push.

Each row reports the wall time and the CPU seconds of every process that did the
work: the pushing client (its rusage, threads included) and each store
(/proc/PID/stat before and after), so the CPU columns say where the time went.

Targets (issues 7, 21): >= 1.0x awscli's throughput (sha256 included, taken on
the upload's own read); a repeat push in <= 1 s; two targets <= 1.2x one; the
client's CPU for two targets well under twice one's (the file is read and hashed once).

awscli goes in its own virtual environment:
    python3 -m venv /work/peers/awscli-venv && /work/peers/awscli-venv/bin/pip install awscli

    python tests/benchmarks/bench_push.py [--mb 500] [--runs 3] [--store moto|light] [--awscli-venv DIR] [--only CASE ...]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
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

TICK = os.sysconf("SC_CLK_TCK")
CASES = ("mlship", "awscli", "s3+s3", "fs", "s3+fs")
TARGETS = {"mlship": ["site0"], "s3+s3": ["site0", "site1"], "fs": ["nfs"], "s3+fs": ["site0", "nfs"]}


class StoreProcess:
    """An S3 server in a process of its own on 127.0.0.1 (a ThreadedMotoServer would share this
    process's GIL and, for two of them, one in-memory backend)."""

    def __init__(self, cmd: list[str], ready_path: str) -> None:
        self.port = free_port()
        self.endpoint_url = f"http://{LOOPBACK}:{self.port}"
        self.proc = subprocess.Popen([sys.executable, *cmd, str(self.port)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(lambda: _answers(f"{self.endpoint_url}{ready_path}"), 30, f"S3 server {cmd}")

    def cpu(self) -> float:
        """CPU seconds (user + system) this server has used so far."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK

    def client(self, service: str):
        import boto3

        return boto3.client(service, endpoint_url=self.endpoint_url, region_name="us-east-1",
                            aws_access_key_id="testing", aws_secret_access_key="testing")

    def sha256(self, bucket: str, key: str) -> str:
        """The stored object's sha256, read back (the store really kept the bytes)."""
        digest = hashlib.sha256()
        for chunk in self.client("s3").get_object(Bucket=bucket, Key=key)["Body"].iter_chunks(1 << 20):
            digest.update(chunk)
        return digest.hexdigest()

    def empty(self) -> None:
        """Both stores keep every object until deleted (moto in memory): empty them between runs."""
        s3 = self.client("s3")
        for bucket in (b["Name"] for b in s3.list_buckets().get("Buckets", [])):
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
                for obj in page.get("Contents", []):
                    s3.delete_object(Bucket=bucket, Key=obj["Key"])
            s3.delete_bucket(Bucket=bucket)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def start_store(kind: str, reserve_mb: int) -> StoreProcess:
    """moto's S3 server, or the light store (light_s3.py) with `reserve_mb` of memory filled
    before the runs: what one run stores there (it reuses deleted objects' memory)."""
    if kind == "moto":
        return StoreProcess(["-m", "moto.server", "-H", LOOPBACK, "-p"], "/moto-api/data.json")
    light = Path(__file__).with_name("light_s3.py")
    return StoreProcess([str(light), "--reserve", str(reserve_mb), "--port"], "/")


def timed(cmd: list[str], env: dict[str, str], servers: list[StoreProcess]) -> dict[str, float]:
    """Wall seconds, the command's own CPU seconds (rusage, all its threads) and each server's."""
    before = [s.cpu() for s in servers]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert proc.stderr is not None
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[0]}: {err.decode(errors='replace')[-1500:]}")
    row = {"wall": wall, "client_cpu": usage.ru_utime + usage.ru_stime}
    for i, (server, cpu) in enumerate(zip(servers, before)):
        row[f"store{i}_cpu"] = server.cpu() - cpu
    return row


def version(run: int, case: str) -> str:
    return f"{run}-{case.replace('+', '-')}"


def verify(servers: list[StoreProcess], cases: list[str], run: int, artifact: Path) -> None:
    """Every S3 copy the run's cases made reads back with the artifact's sha256."""
    want = hashlib.sha256()
    with artifact.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            want.update(block)
    copies = [(servers[0], "awscli", f"big/{run}/artifact.bin")] if "awscli" in cases else []
    copies += [(servers[int(target.removeprefix("site"))], "mlship", f"big/{version(run, case)}/artifact.bin")
               for case in cases if case != "awscli" for target in TARGETS[case] if target.startswith("site")]
    for server, bucket, key in copies:
        if server.sha256(bucket, key) != want.hexdigest():
            raise RuntimeError(f"{server.endpoint_url}/{bucket}/{key} does not hold the artifact's bytes")
    print(f"checked: {len(copies)} stored copies read back with the artifact's sha256")


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):6.2f} s (min {min(values):.2f}, max {max(values):.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=500)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--awscli-venv", default="/work/peers/awscli-venv")
    parser.add_argument("--only", nargs="+", choices=CASES, default=list(CASES),
                        help="cases to run (the single push is always run: the ratios are against it)")
    parser.add_argument("--store", choices=("moto", "light"), default="moto",
                        help="the S3 servers: moto's, or light_s3.py (a lean store: the ceiling on this machine)")
    parser.add_argument("--work", default=None, help="directory for the artifact and the file target (default: a temp dir)")
    args = parser.parse_args()
    cases = [c for c in CASES if c in args.only or c == "mlship"]
    aws = Path(args.awscli_venv) / "bin" / "aws"
    if "awscli" in cases and not aws.exists():
        sys.exit(f"awscli not found in {args.awscli_venv}: see this script's docstring")
    work = Path(tempfile.mkdtemp(prefix="bench-push-", dir=args.work))
    artifact = work / "artifact.bin"
    with artifact.open("wb") as fh:
        for _ in range(args.mb):
            fh.write(os.urandom(1 << 20))
    shared = work / "shared"  # the shared-filesystem target (an NFS mount's directory)
    load = os.getloadavg()
    held = [sum(TARGETS[c].count(f"site{i}") for c in cases if c != "awscli") + (i == 0 and "awscli" in cases)
            for i in range(2)]  # copies of the artifact each store holds in one run
    servers = [start_store(args.store, n * (args.mb + args.mb // 16) + 16 if n else 0) for n in held]
    try:
        base = {**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_DEFAULT_REGION": "us-east-1"}
        subprocess.run([sys.executable, "-c", "import compileall, os, mlship; "  # the mlship the pushes run
                        "compileall.compile_dir(os.path.dirname(mlship.__file__), quiet=1)"], env=base, check=True)
        config = work / "mlship.yaml"
        config.write_text("targets:\n" + "".join(
            f"  site{i}: {{type: s3, url: 's3://mlship', endpoint_url: '{s.endpoint_url}'}}\n"
            for i, s in enumerate(servers)) + f"  nfs: {{type: file, url: '{shared}'}}\n")
        rows: dict[str, list[dict[str, float]]] = {c: [] for c in cases}
        repeat = 0.0
        for run in range(args.runs):  # alternate: the machine's load falls on all cases alike
            for server in servers:
                server.client("s3").create_bucket(Bucket="mlship")
                server.client("s3").create_bucket(Bucket="awscli")
            push = [sys.executable, "-m", "mlship", "-c", str(config), "push", str(artifact), "--name", "big"]
            for case in cases:
                if case == "awscli":
                    cmd = [str(aws), "--endpoint-url", servers[0].endpoint_url, "s3", "cp", str(artifact),
                           f"s3://awscli/big/{run}/artifact.bin", "--only-show-errors"]
                else:
                    cmd = push + ["--artifact-version", version(run, case)]
                    cmd += [a for t in TARGETS[case] for a in ("--to", t)]
                rows[case].append(timed(cmd, base, servers))
                if case == "mlship" and run == 0:
                    repeat = timed(cmd, base, servers)["wall"]
            if run == 0:  # untimed: what each store kept is the artifact, byte for byte
                verify(servers, cases, run, artifact)
            for server in servers:
                server.empty()
            shutil.rmtree(shared, ignore_errors=True)
        mb = args.mb * 1.048576
        med = {c: {k: statistics.median(r[k] for r in rows[c]) for k in rows[c][0]} for c in cases}
        print(f"stores: {args.store}; load average (1, 5, 15 min) at the start: {load}, at the end: {os.getloadavg()}")
        print(f"{'case':<26} {'wall':<34} {'MB/s':>7}  client CPU  store0 CPU  store1 CPU")
        names = {"mlship": "mlship push, S3", "awscli": "aws s3 cp, S3", "s3+s3": "mlship push, S3 + S3",
                 "fs": "mlship push, file", "s3+fs": "mlship push, S3 + file"}
        for c in cases:
            m = med[c]
            print(f"{names[c]:<26} {spread([r['wall'] for r in rows[c]]):<34} {mb / m['wall']:7.1f}  "
                  f"{m['client_cpu']:8.2f} s  {m['store0_cpu']:8.2f} s  {m['store1_cpu']:8.2f} s")
        print(f"mlship push again          {repeat:6.2f} s  (target <= 1 s: {'met' if repeat <= 1 else 'MISSED'})")
        one = med["mlship"]["wall"]
        summary: dict[str, float] = {}
        if "awscli" in cases:
            summary["ratio"] = med["awscli"]["wall"] / one
            print(f"throughput {summary['ratio']:.2f}x awscli's (target >= 1.0x: "
                  f"{'met' if summary['ratio'] >= 1 else 'MISSED'})")
        for both, single in (("s3+s3", "mlship"), ("s3+fs", "mlship")):
            if both in cases:
                wall = med[both]["wall"] / med[single]["wall"]
                cpu = med[both]["client_cpu"] / med[single]["client_cpu"]
                summary[f"{both}_ratio"], summary[f"{both}_client_cpu_ratio"] = wall, cpu
                print(f"{names[both]}: {wall:.2f}x the time of S3 alone (target <= 1.2x: "
                      f"{'met' if wall <= 1.2 else 'MISSED'}); client CPU {cpu:.2f}x")
        print(json.dumps({"mb": args.mb, "store": args.store, "loadavg": [load, os.getloadavg()],
                          "runs": {c: [{k: round(v, 2) for k, v in r.items()} for r in rows[c]] for c in cases},
                          "repeat_s": round(repeat, 2), **{k: round(v, 2) for k, v in summary.items()}}))
    finally:
        for server in servers:
            server.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
