"""Benchmark: a large `mlship push` to gs:// and az:// (the emulators) against the SDK's plain upload.

The clouds' own CLIs do not install offline (gcloud is not on PyPI; the Azure CLI pulls
hundreds of packages), so the peer is each SDK's one-call upload of the same file with
its defaults: `Blob.upload_from_filename` and `BlobClient.upload_blob` (one connection).
mlship's figure includes hashing the file and writing the index. Both run against the
same emulator process, alternately, and the medians are printed with a JSON line.

    python tests/benchmarks/bench_clouds.py [--mb 500] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from tempfile import TemporaryDirectory

from tests.harness.clouds import start_azurite, start_fake_gcs


def _sdk_upload(kind: str, url: str, path: Path) -> None:
    bucket, _, prefix = url.split("://", 1)[1].partition("/")
    if kind == "gs":
        from google.cloud import storage

        storage.Client().bucket(bucket).blob(f"{prefix}/plain/{path.name}").upload_from_filename(str(path))
    else:
        from azure.storage.blob import BlobServiceClient

        service = BlobServiceClient.from_connection_string(os.environ["AZURE_STORAGE_CONNECTION_STRING"])
        with path.open("rb") as fh:
            service.get_blob_client(bucket, f"{prefix}/plain/{path.name}").upload_blob(fh, overwrite=True)


def _mlship_push(url: str, path: Path, version: str) -> None:
    from mlship.cli import main

    code = main(["push", str(path), "--name", "bench", "--artifact-version", version, "--to", url])
    assert code == 0, code


def _timed(call) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=500)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.bin"
        with path.open("wb") as fh:
            for _ in range(args.mb):
                fh.write(os.urandom(1 << 20))
        os.environ["MLSHIP_STORE"] = str(Path(tmp) / "versions.jsonl")
        for kind, start in (("gs", start_fake_gcs), ("az", start_azurite)):
            emulator = start()
            try:
                os.environ.update(emulator.env)
                url = emulator.empty_target(kind)
                times: dict[str, list[float]] = {"mlship push": [], "sdk upload": []}
                for run in range(args.runs):
                    times["mlship push"].append(_timed(lambda: _mlship_push(url, path, f"1.0.{run}")))
                    times["sdk upload"].append(_timed(lambda: _sdk_upload(kind, url, path)))
                medians = {name: statistics.median(t) for name, t in times.items()}
                for name, seconds in medians.items():
                    print(f"{kind} {name:12s} {seconds:7.2f} s  {args.mb / seconds:7.1f} MB/s")
                print(json.dumps({"target": kind, "mb": args.mb, **{k: round(v, 2) for k, v in medians.items()}}))
            finally:
                emulator.stop()
    sys.stdout.flush()


if __name__ == "__main__":
    main()
