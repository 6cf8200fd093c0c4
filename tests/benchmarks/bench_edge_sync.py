"""Benchmark: what one `edge sync` costs a device, counted at the target: requests, bytes and time.

Two cases per target kind (file:// and moto's S3 server) and per device kind (TUF-verified,
and unsigned channels as the baseline): an unchanged channel (TUF's target: only
timestamp.json fetched), and a channel moved to a new version (the bundle and the metadata
it needs). A counting wrapper around the target (the one `edge sync` opens) counts every
read request, the bytes the device actually consumed, and the device's own writes (its
status report). Runs alternate TUF and unsigned so load on the machine hits both alike.
Times are in-process `sync_device` calls (no CLI start-up); a new version's time includes
its health check, a process of its own, reported apart. Runs move the channel alternately to
2.0.0 (the MLP, 154 KB bundle) and 1.0.0 (the GBT, 8.6 KB): bundle bytes are listed per size.

    python tests/benchmarks/bench_edge_sync.py [--runs 6]
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any, Iterator

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.edge.tuf_release import build, make_keys, write_config  # noqa: E402
from tests.support import run  # noqa: E402

NAME = "bc"


class Counting:
    """A target that counts what passes through it: read requests per key and the bytes consumed."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.requests, self.bytes, self.writes = inner, Counter(), Counter(), Counter()

    def __getattr__(self, attr: str) -> Any:
        return getattr(self.inner, attr)

    def read(self, key: str) -> bytes | None:
        self.requests[key] += 1
        data = self.inner.read(key)
        self.bytes[key] += len(data or b"")
        return data

    def stream(self, key: str) -> Iterator[bytes] | None:
        self.requests[key] += 1
        chunks = self.inner.stream(key)
        return None if chunks is None else self._counted(key, chunks)

    def _counted(self, key: str, chunks: Iterator[bytes]) -> Iterator[bytes]:
        for chunk in chunks:
            self.bytes[key] += len(chunk)
            yield chunk

    def download(self, key: str, dest: Path, progress: Any) -> None:
        self.requests[key] += 1
        self.inner.download(key, dest, progress)
        self.bytes[key] += dest.stat().st_size

    def write(self, key: str, data: bytes) -> None:
        self.writes[key] += 1
        self.inner.write(key, data)


def measured(url: str, device: Path) -> dict[str, Any]:
    """One sync of `device`, counted."""
    import mlship.targets.base as base
    from mlship.edge.service import SyncRequest, sync_device

    opened: list[Counting] = []
    real = base.open_target

    def counting(spec: str, configured: dict) -> Counting:
        opened.append(Counting(real(spec, configured)))
        return opened[-1]

    base.open_target = counting
    try:
        start = time.perf_counter()
        result = sync_device(SyncRequest(source=url, name=NAME, directory=device))
        seconds = time.perf_counter() - start
    finally:
        base.open_target = real
    target = opened[0]
    short = {key.removeprefix(f"{NAME}/"): n for key, n in sorted(target.requests.items())}
    bundle = sum(n for key, n in target.bytes.items() if key.endswith(".mlbundle"))
    return {"seconds": seconds, "requests": sum(target.requests.values()), "bundle_bytes": bundle,
            "other_bytes": sum(target.bytes.values()) - bundle, "keys": short,
            "writes": sum(target.writes.values()), "version": result["version"], "changed": result["changed"],
            "health_s": (result.get("health") or {}).get("seconds", 0.0)}


def device(work: Path, url: str, tuf: bool, k: int) -> Path:
    folder = work / f"dev-{'tuf' if tuf else 'plain'}-{k}-{abs(hash(url)) % 10_000}"
    if tuf:
        root = work / "root.json"
        assert run("edge", "init", "--dir", str(folder), "--root", str(root)).code == 0
    return folder


def promote(config: Path, url: str, version: str) -> None:
    result = run("--config", str(config), "promote", NAME, version, "--channel", "stable", "--to", url)
    assert result.code == 0, result.stderr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=6)
    args = parser.parse_args()
    from mlship.targets.base import open_target
    from tests.harness.services import start_moto_server

    work = Path(tempfile.mkdtemp(prefix="bench-edge-sync-"))
    atexit.register(shutil.rmtree, work, True)  # its data is GBs: gone on exit
    os.environ["MLSHIP_STORE"] = str(work / "versions.jsonl")
    keys = make_keys(work / "keys")
    config = write_config(work, keys)
    bundles = {"1.0.0": build(work / "dist", "1.0.0", keys),
               "2.0.0": build(work / "dist", "2.0.0", keys, ROOT / "examples" / "breast-cancer" / "model-mlp.onnx")}
    import logging

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's access log
    moto = start_moto_server()
    try:
        moto.client("s3").create_bucket(Bucket="bench")
        os.environ.update({"AWS_ENDPOINT_URL_S3": moto.endpoint_url, "AWS_ACCESS_KEY_ID": "testing",
                           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"})
        urls = {"file": f"file://{work / 'store'}", "s3": "s3://bench/team"}
        for url in urls.values():
            for version, bundle in bundles.items():
                pushed = run("--config", str(config), "push", str(bundle), "--artifact-version", version, "--to", url)
                assert pushed.code == 0, pushed.stderr
            promote(config, url, "1.0.0")
        (work / "root.json").write_bytes(open_target(urls["file"], {}).read(f"{NAME}/tuf/1.root.json"))
        rows: dict[tuple[str, str, str], list[dict]] = {}
        for k in range(args.runs):
            for kind, url in urls.items():
                fresh = {tuf: device(work, url, tuf, k) for tuf in (True, False)}
                for tuf, folder in fresh.items():
                    measured(url, folder)  # on the channel's current version
                moved_to = "2.0.0" if k % 2 == 0 else "1.0.0"  # alternate, so each run moves the channel
                order = (True, False) if k % 2 == 0 else (False, True)  # and which device goes first
                for tuf in order:
                    rows.setdefault((kind, "tuf" if tuf else "plain", "unchanged"), []).append(
                        measured(url, fresh[tuf]))
                promote(config, url, moved_to)
                for tuf in order:
                    rows.setdefault((kind, "tuf" if tuf else "plain", "new version"), []).append(
                        measured(url, fresh[tuf]))
        report = []
        for (kind, how, case), samples in sorted(rows.items()):
            times = [s["seconds"] * 1000 for s in samples]
            report.append({"target": kind, "device": how, "case": case, "runs": len(samples),
                           "median_ms": round(statistics.median(times), 1),
                           "spread_ms": [round(min(times), 1), round(max(times), 1)],
                           "health_ms": round(statistics.median(s["health_s"] for s in samples) * 1000, 1),
                           "requests": statistics.median(s["requests"] for s in samples),
                           "other_bytes": statistics.median(s["other_bytes"] for s in samples),
                           "bundle_bytes": sorted({s["bundle_bytes"] for s in samples}),
                           "writes": samples[-1]["writes"], "keys": samples[-1]["keys"]})
        for row in report:
            print(f"{row['target']:4s} {row['device']:5s} {row['case']:11s} median {row['median_ms']:7.1f} ms "
                  f"(min {row['spread_ms'][0]}, max {row['spread_ms'][1]}; health {row['health_ms']} ms) "
                  f"{row['requests']:>4} requests, {row['other_bytes']:>6,} bytes of metadata/pointers and "
                  f"{'/'.join(f'{b:,}' for b in row['bundle_bytes'])} of bundle read, {row['writes']} written; "
                  f"keys {row['keys']}")
        print(json.dumps(report))
    finally:
        moto.stop()


if __name__ == "__main__":
    main()
