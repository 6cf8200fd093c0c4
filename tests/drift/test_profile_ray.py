"""`mlship profile --engine ray`: pieces profiled in parallel by a real local Ray (2 CPUs,
on loopback, shut down after), merged into the single-pass profile."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mlship.drift.detection import run_drift
from mlship.drift.settings import DriftOptions
from tests.support import run

pytest.importorskip("ray")


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    """A reference of 240,000 rows in three Parquet files, the last in six row groups."""
    rng = np.random.default_rng(31)
    folder = tmp_path_factory.mktemp("ray") / "reference"
    folder.mkdir()
    start = 0
    for i, (rows, group) in enumerate(((60_000, 60_000), (30_000, 30_000), (150_000, 25_000))):
        values = rng.normal(0, 1, rows)
        values[rng.random(rows) < 0.03] = np.nan
        table = pa.table({
            "row_id": np.arange(start, start + rows),  # an identifier: increasing row by row, across the files
            "amount": rng.lognormal(3, 1.2, rows), "score": values, "x": rng.standard_t(4, rows),
            "codes": rng.integers(0, 6, rows), "city": rng.choice(["Oslo", "Lima", "Pune", "Kyiv"], rows),
        })
        pq.write_table(table, folder / f"part-{i}.parquet", row_group_size=group)
        start += rows
    return folder


def test_ray_profile_equals_the_single_pass_one(parts, tmp_path):
    single, merged = tmp_path / "single.json", tmp_path / "ray.json"
    assert run("profile", str(parts), "-o", str(single)).code == 0
    result = run("--json", "profile", str(parts), "-o", str(merged), "--engine", "ray", "--num-cpus", "2",
                 "--partitions", "4")
    assert result.code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["engine"] == "ray" and summary["tasks"] == 4 and summary["rows"] == 240_000
    a, b = json.loads(single.read_text()), json.loads(merged.read_text())
    assert a["rows"] == b["rows"] and set(a["columns"]) == set(b["columns"])
    for name, left in a["columns"].items():
        right = b["columns"][name]
        for key in ("kind", "missing", "non_numeric", "categories", "other", "codes", "psi_edges", "signals"):
            assert left[key] == right[key], (name, key)
        ln, rn = left["numeric"], right["numeric"]
        assert (ln["n"], ln["min"], ln["max"]) == (rn["n"], rn["min"], rn["max"]), name
        assert rn["mean"] == pytest.approx(ln["mean"], rel=1e-9, abs=1e-12), name  # Chan's update: rounding only
        assert rn["m2"] == pytest.approx(ln["m2"], rel=1e-9), name
        assert ln.get("buckets") == rn.get("buckets"), name  # value-keyed buckets: the same counts
    assert a["columns"]["row_id"]["signals"]["increasing"] is True  # the pieces were merged in order
    # So drift judges the same against either: identical statistics, quantiles, roles.
    current = tmp_path / "current.parquet"
    rng = np.random.default_rng(2)
    pq.write_table(pa.table({"row_id": np.arange(5000), "amount": rng.lognormal(3.2, 1.2, 5000),
                             "score": rng.normal(0, 1, 5000), "x": rng.standard_t(4, 5000),
                             "codes": rng.integers(0, 6, 5000), "city": rng.choice(["Oslo", "Lima"], 5000)}), current)
    docs = [run_drift(DriftOptions(reference=str(p), current=str(current))).document() for p in (single, merged)]
    assert docs[0]["verdict"] == docs[1]["verdict"]
    assert same(docs[0]["columns"], docs[1]["columns"])  # equal, floats up to the moments' rounding
    assert {c["name"]: c["role"] for c in docs[1]["columns"]}["row_id"] == "identifier"


def same(a, b) -> bool:
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and isinstance(b, float):
        return b == pytest.approx(a, rel=1e-7, abs=1e-12)
    return a == b


def test_ray_profile_reports_bad_input_as_the_local_engine_does(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "a.jsonl").write_text("".join(json.dumps({"x": i}) + "\n" for i in range(300)))
    (logs / "b.jsonl").write_text('{"x": 1}\n{"x": \n')
    result = run("profile", str(logs), "-o", str(tmp_path / "p.json"), "--engine", "ray", "--num-cpus", "1",
                 "--strict")
    assert result.code == 3, result.stderr
    assert "b.jsonl" in result.stderr and not (tmp_path / "p.json").exists()
    assert run("profile", str(logs), "-o", str(tmp_path / "p.json"), "--engine", "spark").code == 2


def test_an_unreachable_cluster_exits_7_at_once(tmp_path):
    import socket
    import time

    with socket.socket() as sock:  # a port that was just free: nothing listens there
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    (tmp_path / "a.jsonl").write_text('{"x": 1}\n')
    started = time.monotonic()
    result = run("profile", str(tmp_path / "a.jsonl"), "-o", str(tmp_path / "p.json"), "--engine", "ray",
                 "--address", f"127.0.0.1:{port}")
    assert result.code == 7, result.stderr
    assert f"cannot reach Ray at 127.0.0.1:{port}" in result.stderr and not (tmp_path / "p.json").exists()
    assert time.monotonic() - started < 60  # not ray.init's minutes of retries
    assert run("profile", str(tmp_path / "a.jsonl"), "-o", str(tmp_path / "p.json"), "--engine", "ray",
               "--address", "no-port-here").code == 2
