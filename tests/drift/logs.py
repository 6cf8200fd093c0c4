"""Synthetic prediction logs and data for drift tests."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np


def features(rng: np.random.Generator, n: int, *, shift: dict[str, float] | None = None) -> dict[str, np.ndarray]:
    shift = shift or {}
    return {
        "age": rng.normal(60 + shift.get("age", 0.0), 10, n),
        "visits": rng.poisson(3, n).astype(float) * (1 + shift.get("visits", 0.0)),
        "length_of_stay": rng.gamma(2.0, 2.0 * (1 + shift.get("length_of_stay", 0.0)), n),
        "group": rng.choice(["cardio", "neuro", "ortho"] + (["onco"] if shift.get("group") else []), n),
    }


def write_log(path: Path, rng: np.random.Generator, start: datetime, hours: float, n: int, *,
              shift: dict[str, float] | None = None, version: str = "1.0.0", variant: str = "stable",
              error_rate: float = 0.0, labels: bool = False) -> list[str]:
    """n records spread over `hours` from `start`; returns their request ids."""
    feats = features(rng, n, shift=shift)
    ids = []
    with path.open("a") as fh:
        for i in range(n):
            ts = start + timedelta(hours=hours * i / n)
            prob = 1 / (1 + np.exp(-(feats["age"][i] - 60) / 10))
            error = rng.random() < error_rate
            rid = f"{path.stem}-{i}"
            ids.append(rid)
            record = {
                "ts": ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z", "request_id": rid,
                "model": "readmission", "version": version, "variant": variant,
                "inputs": {} if error else {k: (v[i].item() if hasattr(v[i], "item") else v[i]) for k, v in feats.items()},
                "outputs": {} if error else {"label": int(prob > 0.5), "probabilities": [1 - prob, prob]},
                "latency_ms": float(rng.gamma(2.0, 0.5)), "status": 500 if error else 200,
                "error": "boom" if error else None,
            }
            if labels and not error:
                record["label"] = int(rng.random() < prob)
            fh.write(json.dumps(record) + "\n")
    return ids


START = datetime(2026, 11, 1, tzinfo=timezone.utc)


def write_days(folder: Path, rng: np.random.Generator, days: list[tuple[int, dict[str, float] | None]], *,
               reference_rows: int) -> tuple[Path, Path]:
    """A reference log (a week, 30 days before START) and one log a day from START, each day's
    (rows, shift); returns (reference, the folder of daily logs)."""
    ref = folder / "train.jsonl"
    write_log(ref, rng, START - timedelta(days=30), 24 * 7, reference_rows)
    logs = folder / "logs"
    logs.mkdir()
    for day, (rows, shift) in enumerate(days):
        write_log(logs / f"day{day}.jsonl", rng, START + timedelta(days=day), 24, rows, shift=shift)
    return ref, logs
