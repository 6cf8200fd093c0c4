"""Live traffic for the example: patients from data/sample.csv posted to URL for SECONDS.

    python traffic.py http://127.0.0.1:8080 10 [--rate 100]

Each request carries a client id (X-Client-ID), so nginx keeps a client on one
slot while a canary grows. Exits 1 when any request failed.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import sys
import threading
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
FEATURES = ["age", "prior_admissions", "length_of_stay", "num_medications", "num_diagnoses",
            "emergency_admission", "diagnosis_group"]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("seconds", type=float)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--wait", action="store_true", help="Only wait until URL answers /v2/health/ready.")
    args = parser.parse_args()
    if args.wait:
        deadline = time.monotonic() + args.seconds
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(args.url.rstrip("/") + "/v2/health/ready", timeout=1) as reply:
                    if reply.status == 200:
                        return 0
            except OSError:
                time.sleep(0.2)
        print(f"{args.url} is not ready after {args.seconds:g} s", file=sys.stderr)
        return 1
    with open(HERE / "data" / "sample.csv") as fh:
        rows = [{f: float(r[f]) for f in FEATURES} for r in csv.DictReader(fh)]
    counts = {"sent": 0, "failed": 0}
    lock = threading.Lock()
    stop = time.monotonic() + args.seconds

    def worker(seed: int, interval: float) -> None:
        rng = random.Random(seed)
        while time.monotonic() < stop:
            body = json.dumps({"instances": [rng.choice(rows)]}).encode()
            request = urllib.request.Request(args.url.rstrip("/") + "/predict", data=body, method="POST", headers={
                "Content-Type": "application/json", "X-Client-ID": f"ward-{rng.randrange(300)}"})
            try:
                with urllib.request.urlopen(request, timeout=5) as reply:
                    ok = reply.status == 200
                    reply.read()
            except OSError:
                ok = False
            with lock:
                counts["sent"] += 1
                counts["failed"] += not ok
            time.sleep(interval)

    workers = 4
    threads = [threading.Thread(target=worker, args=(i, workers / args.rate)) for i in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(f"traffic: {counts['sent']} requests, {counts['failed']} failed")
    return 1 if counts["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
