"""Prediction outputs: part files per chunk, merged into the final file.

Each chunk's predictions go to `part-NNNNNN.EXT` in a work directory beside
the output (written to a temporary name, then renamed, so a part either
exists whole or not at all). When every chunk is done the parts are merged
into the output under a temporary name, fsynced and renamed: the final name
never holds a half-written file.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from mlship import jsonfast
from mlship.errors import UsageError
from mlship.extras import require

OUTPUT_FORMATS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}


def output_format(path: Path) -> str:
    fmt = OUTPUT_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise UsageError(f"--output {path}: unknown format '{path.suffix}'", hint="Use .parquet, .csv or .jsonl")
    return fmt


def prediction_columns(outputs: dict[str, Any], keep: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Kept input columns, then each output; [N, k] outputs become name_0..name_{k-1}.

    A kept column named like an output column is written as input_NAME."""
    produced: dict[str, np.ndarray] = {}
    for name, value in outputs.items():
        if not isinstance(value, np.ndarray):  # sequences of maps (ZipMap): JSON text
            produced[name] = np.array([jsonfast.dumps(v).decode() for v in value], dtype=object)
            continue
        flat = value.reshape(len(value), -1) if value.ndim > 1 else value
        if flat.ndim == 1 or flat.shape[1] == 1:
            produced[name] = flat.reshape(-1)
        else:
            for j in range(flat.shape[1]):
                produced[f"{name}_{j}"] = flat[:, j]
    kept = {(f"input_{k}" if k in produced else k): v for k, v in keep.items()}
    return {**kept, **produced}


def write_part(path: Path, fmt: str, columns: dict[str, np.ndarray]) -> None:
    """Write one chunk's predictions atomically (temporary name, then rename)."""
    tmp = path.with_name(path.name + ".tmp")
    if fmt == "parquet":
        pa, pq = require("pyarrow"), require("pyarrow.parquet")
        pq.write_table(pa.table({k: _arrow_ready(v) for k, v in columns.items()}), tmp)
    elif fmt == "csv":
        with tmp.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(columns)
            writer.writerows(zip(*(_csv_values(v) for v in columns.values())))
    else:
        names = list(columns)
        values = [c.tolist() for c in columns.values()]
        with tmp.open("wb") as fh:
            fh.write(b"".join(jsonfast.dumps(dict(zip(names, row))) + b"\n" for row in zip(*values)))
    os.replace(tmp, path)


def _arrow_ready(values: np.ndarray) -> Any:
    return values.tolist() if values.dtype.kind == "O" else values


def _csv_values(values: np.ndarray) -> list[Any]:
    if values.dtype.kind == "f" and values.dtype.itemsize == 4:
        return [repr(float(v)) if v != v else f"{v:.9g}" for v in values]  # float32 at its own precision
    return values.tolist()


def merge_parts(parts: list[Path], fmt: str, output: Path) -> int:
    """Concatenate parts in order into `output` atomically; bytes written."""
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.name}.merging")
    try:
        if fmt == "parquet":
            _merge_parquet(parts, tmp)
        else:
            _merge_text(parts, tmp, skip_header=fmt == "csv")
        with tmp.open("rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, output)
    finally:
        tmp.unlink(missing_ok=True)
    return output.stat().st_size


def _merge_parquet(parts: list[Path], tmp: Path) -> None:
    pq = require("pyarrow.parquet")
    writer = None
    try:
        for part in parts:
            table = pq.read_table(part)
            if writer is None:
                writer = pq.ParquetWriter(tmp, table.schema)
            writer.write_table(table.cast(writer.schema))
    finally:
        if writer is not None:
            writer.close()


def _merge_text(parts: list[Path], tmp: Path, *, skip_header: bool) -> None:
    with tmp.open("wb") as out:
        for i, part in enumerate(parts):
            with part.open("rb") as fh:
                if skip_header and i > 0:
                    fh.readline()
                shutil.copyfileobj(fh, out, 1 << 20)


def write_rejects(path: Path, rejects: list[dict[str, Any]]) -> None:
    """Rejected rows as JSON Lines (file, row, column, value, reason)."""
    buffer = io.BytesIO()
    for reject in rejects:
        buffer.write(jsonfast.dumps(reject) + b"\n")
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(buffer.getvalue())
    os.replace(tmp, path)
