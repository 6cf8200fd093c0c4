"""Turning a batch of predictions into per-row log records.

Serving and batch scoring hand the writer one entry per request or chunk;
the split into rows happens in the writer's thread, off the hot path.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from mlship.predlog.schema import utc_timestamp


@dataclass
class LogEntry:
    """One request's (or chunk's) worth of records."""

    base: dict[str, Any]
    when: float
    feeds: dict[str, np.ndarray] | None
    instances: list[dict[str, Any]] | None
    outputs: dict[str, Any] | None
    cached: bool
    features: dict[str, list[str]] | None  # column names of 2-D inputs (Signature.features)
    request_ids: list[str] | None = None  # one per row (batch scoring), else base["request_id"]

    @property
    def rows(self) -> int:
        if self.instances is not None:
            return len(self.instances)
        if self.feeds:
            return len(next(iter(self.feeds.values())))
        return 1

    def records(self) -> list[dict[str, Any]]:
        rows = self.rows
        inputs = self.instances if self.instances is not None else input_rows(self.feeds, self.features)
        outputs = row_outputs(self.outputs, rows) if self.outputs is not None else [{}] * rows
        ts = utc_timestamp(self.when)
        records = []
        for i in range(rows):
            record = {"ts": ts, **self.base, "inputs": inputs[i] if inputs else {}, "outputs": outputs[i]}
            if self.request_ids is not None:
                record["request_id"] = self.request_ids[i]
            elif rows > 1:
                record["row"] = i
            if self.cached:
                record["cached"] = True
            records.append(record)
        return records


def input_rows(feeds: dict[str, np.ndarray] | None, features: dict[str, list[str]] | None) -> list[dict[str, Any]]:
    """Inputs per row; a 2-D input with named columns (`features`) as those named values."""
    if not feeds:
        return []
    rows = len(next(iter(feeds.values())))
    if rows == 0:
        return []
    columns: dict[str, Any] = {}
    for name, value in feeds.items():
        names = (features or {}).get(name)
        matrix = value.reshape(rows, -1) if names else None
        if matrix is not None and matrix.shape[1] == len(names):
            columns.update((column, matrix[:, j]) for j, column in enumerate(names))
        else:
            columns[name] = [scalar(v) for v in value]
    return [{n: columns[n][i] for n in columns} for i in range(rows)]


def row_outputs(outputs: dict[str, Any], rows: int) -> list[dict[str, Any]]:
    """Split batch outputs into one dict per row (outputs without a batch axis are repeated)."""
    per_row: list[dict[str, Any]] = [{} for _ in range(rows)]
    for name, value in outputs.items():
        array = np.asarray(value)
        if array.ndim and array.shape[0] == rows:
            for i in range(rows):  # NumPy values: JSON writes float32 at its own precision
                per_row[i][name] = scalar(array[i])
        else:
            for i in range(rows):
                per_row[i][name] = array
    return per_row


def scalar(value: Any) -> Any:
    """[x] -> x, so [N, 1] features log as plain values."""
    if isinstance(value, (list, np.ndarray)) and len(value) == 1:
        return value[0]
    return value
