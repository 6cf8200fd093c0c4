"""smoke.json: the few sample rows a bundle ships for the device's health check (schema mlship.smoke/v1).

Written by `build --edge` from the sample (its first SMOKE_ROWS rows, as the model's
inputs), read on the device by `edge sync`'s health check. A bundle built without a
sample has none; the check then runs one generated row.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SMOKE = "smoke.json"
SCHEMA = "mlship.smoke/v1"
SMOKE_ROWS = 8


def smoke_sample(sample: Path, signature: Any, *, allow_missing: bool = False) -> bytes:
    """The first rows of `sample` as the model's inputs: {schema, rows, inputs: {NAME: {dtype, shape, data}}}."""
    import numpy as np

    from mlship.data import read_table
    from mlship.model.feeds import feeds_from_table, slice_feeds

    feeds = slice_feeds(feeds_from_table(read_table(sample), signature, allow_missing=allow_missing), 0, SMOKE_ROWS)
    inputs = {name: {"dtype": str(value.dtype) if value.dtype != object else "string", "shape": list(value.shape),
                     "data": np.asarray(value).ravel().tolist()} for name, value in feeds.items()}
    rows = min(len(v) for v in feeds.values()) if feeds else 0
    return json.dumps({"schema": SCHEMA, "rows": rows, "inputs": inputs}, sort_keys=True).encode()


def read_smoke(path: Path) -> tuple[dict[str, Any], int]:
    """The feeds and row count in a smoke.json; ValueError naming what is wrong."""
    import numpy as np

    doc = json.loads(path.read_bytes())
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA or not isinstance(doc.get("inputs"), dict):
        raise ValueError(f"not a {SCHEMA} document")
    feeds = {}
    for name, tensor in doc["inputs"].items():
        dtype = object if tensor["dtype"] == "string" else np.dtype(tensor["dtype"])
        feeds[name] = np.array(tensor["data"], dtype=dtype).reshape(tensor["shape"])
    return feeds, int(doc.get("rows", 0))
