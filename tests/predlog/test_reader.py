"""The one prediction-log reader: chunks, filters, malformed lines, the error definition."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mlship.errors import InvalidInputError
from mlship.predlog.reader import LogFilter, ReadReport, flatten_outputs, read_log
from mlship.predlog.schema import answered_mask, error_mask, is_answered, is_error


def record(i: int, **change) -> dict:
    return {"ts": f"2026-11-01T00:00:{i:02d}.000Z", "request_id": f"r{i}", "model": "m", "version": "2",
            "variant": "canary", "inputs": {"x": i}, "outputs": {"y": i}, "latency_ms": 1.0, "status": 200,
            "error": None, **change}


def write(path, records, tail: bytes = b"") -> None:
    path.write_bytes(b"".join(json.dumps(r).encode() + b"\n" for r in records) + tail)


def test_chunks_filters_and_an_unfinished_last_line(tmp_path):
    write(tmp_path / "a.jsonl", [record(i, version="1" if i % 2 else "2") for i in range(10)]
          + [record(20, model="other", ts=None)], tail=json.dumps(record(30)).encode())
    where = LogFilter(model="m", versions=frozenset({"2"}), since=record(2)["ts"], until=record(8)["ts"])
    chunks = list(read_log(tmp_path, where=where, complete=True, chunk_rows=2))
    assert [[r["request_id"] for r in c.records] for c in chunks] == [["r2", "r4"], ["r6"]]


def test_malformed_lines_are_counted_or_fatal(tmp_path):
    write(tmp_path / "a.jsonl", [record(1), record(2, status="500")])
    report = ReadReport()
    rows = [r for c in read_log(tmp_path, strict=False, report=report) for r in c.records]
    assert len(rows) == 1 and report.bad_lines == 1 and report.examples[0].startswith(f"{tmp_path / 'a.jsonl'}:2:")
    with pytest.raises(InvalidInputError, match=r"a.jsonl:2: not a mlship.predlog/v1 record: status"):
        list(read_log(tmp_path, complete=True))
    with pytest.raises(InvalidInputError, match="prediction logs not found"):
        list(read_log(tmp_path / "missing"))


def test_parquet_logs_are_filtered_too(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    rows = [record(i, version=str(i % 2)) for i in range(6)]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "a.parquet")
    chunks = list(read_log(tmp_path, where=LogFilter(model="m", versions=frozenset({"1"}))))
    assert chunks[0].batch.column("request_id").to_pylist() == ["r1", "r3", "r5"]
    assert "inputs.x" in chunks[0].batch.schema.names  # structs flattened


def test_one_definition_of_an_error():
    assert [is_error(s) for s in (None, 200, 404, 500, 503)] == [False, False, False, True, True]
    assert [is_answered(s) for s in (None, 200, 404, 500)] == [True, True, False, False]
    column = np.array([200, 422, 500, np.nan])
    assert error_mask(column).tolist() == [False, False, True, False]
    assert answered_mask(column).tolist() == [True, False, False, True]
    assert answered_mask(np.array([200, None, 500], dtype=object)).tolist() == [True, True, False]


def test_outputs_flatten_lists_by_index_and_maps_by_class():
    outputs = {"label": "b", "probabilities": [0.25, 0.75], "zipmap": {"a": 0.1, "b": 0.9}, "empty": {}}
    assert flatten_outputs(outputs) == {"outputs.label": "b", "outputs.probabilities_0": 0.25,
                                        "outputs.probabilities_1": 0.75, "outputs.zipmap_a": 0.1,
                                        "outputs.zipmap_b": 0.9, "outputs.empty": {}}
