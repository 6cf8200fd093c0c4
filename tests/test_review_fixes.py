"""Edge cases found in review, one test each (serve, predict, drift)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys

import numpy as np
import pyarrow.json as pajson
import pyarrow.parquet as pq
import pytest

from mlship.drift.detection import DriftOptions, run_drift
from tests import models
from tests.drift.logs import START, write_log
from tests.serve.server_process import start_server
from tests.support import MODEL, SAMPLE, run


# -- serve -----------------------------------------------------------------------------

def test_an_empty_request_does_not_stop_the_log_or_the_shutdown(tmp_path):
    X, _, _ = models.sample_matrix()
    server = start_server(MODEL, tmp_path, "--log-queue-size", "5")
    server.post("/v2/models/breast-cancer/infer",
                {"inputs": [{"name": "X", "shape": [0, 30], "datatype": "FP32", "data": []}]})
    for i in range(10):
        assert server.post("/v2/models/breast-cancer/infer", {"inputs": [
            {"name": "X", "shape": [1, 30], "datatype": "FP32", "data": X[i].tolist()}]}).status == 200
    assert server.terminate(timeout=20) == 0
    assert len(server.log_records()) == 10


def test_a_taken_or_impossible_port_is_a_usage_error():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        taken = subprocess.run([sys.executable, "-m", "mlship", "serve", str(MODEL), "--port", str(port)],
                               capture_output=True, text=True, timeout=60)
    assert taken.returncode == 2 and "cannot listen on 127.0.0.1" in taken.stderr and "serving" not in taken.stdout
    impossible = run("serve", str(MODEL), "--port", "99999")
    assert impossible.code == 2 and "port" in impossible.stderr


def test_one_request_id_for_header_body_and_log(tmp_path):
    X, _, _ = models.sample_matrix()
    server = start_server(MODEL, tmp_path)
    body = {"id": 0, "inputs": [{"name": "X", "shape": [1, 30], "datatype": "FP32", "data": X[0].tolist()}]}
    response = server.post("/v2/models/breast-cancer/infer", body)
    assert json.loads(response.body)["id"] == "0" and response.headers["x-request-id"] == "0"
    assert server.terminate() == 0
    assert [r["request_id"] for r in server.log_records()] == ["0"]


# -- predict ---------------------------------------------------------------------------

def csv_with(tmp_path, extra_header, extra_values, edit=None):
    lines = SAMPLE.read_text().splitlines()
    header = lines[0].split(",")[:-1]
    rows = [line.split(",")[:-1] for line in lines[1:21]]
    if edit:
        edit(rows, header)
    path = tmp_path / "in.csv"
    path.write_text(",".join([extra_header] + header) + "\n"
                    + "".join(",".join([v] + r) + "\n" for v, r in zip(extra_values, rows)))
    return path


def test_skipped_rows_keep_the_log_ids_of_their_file_rows(tmp_path):
    def corrupt(rows, header):
        rows[2][header.index("mean_area")] = "n/a"
    path = csv_with(tmp_path, "id", [f"{i:05d}" for i in range(20)], corrupt)
    result = run("predict", str(MODEL), "-i", str(path), "-o", str(tmp_path / "o.csv"), "--on-error", "skip",
                 "--keep-columns", "id", "--log-dir", str(tmp_path / "logs"), "--batch-size", "7")
    assert result.code == 0, result.stderr
    records = [json.loads(line) for f in sorted((tmp_path / "logs").glob("*.jsonl")) for line in f.read_text().splitlines()]
    ids = [r["request_id"] for r in records]
    assert "in.csv:3" not in ids and ids[:4] == ["in.csv:1", "in.csv:2", "in.csv:4", "in.csv:5"]
    X, _, _ = models.sample_matrix()
    fourth = next(r for r in records if r["request_id"] == "in.csv:4")
    assert fourth["inputs"]["mean_radius"] == pytest.approx(float(X[3, 0]))
    out = (tmp_path / "o.csv").read_text().splitlines()
    assert out[1].startswith("00000,") and out[3].startswith("00003,")  # kept ids stay as written


def test_a_file_without_any_model_column_and_a_bom(tmp_path):
    other = tmp_path / "ab.csv"
    other.write_text("a,b\n1,2\n")
    result = run("predict", str(MODEL), "-i", str(other), "-o", str(tmp_path / "o.csv"))
    assert result.code == 3 and "none of the columns the model needs" in result.stderr
    bom = tmp_path / "bom.csv"
    bom.write_bytes(b"\xef\xbb\xbf" + SAMPLE.read_bytes())
    assert run("predict", str(MODEL), "-i", str(bom), "-o", str(tmp_path / "b.csv")).code == 0


def test_jsonl_keep_column_missing_or_changing_type(tmp_path):
    X, _, names = models.sample_matrix()
    rows = [dict(zip(names, map(float, X[i]))) for i in range(10)]
    for i, row in enumerate(rows[:5]):
        row["id"] = i
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    ok = run("predict", str(MODEL), "-i", str(path), "-o", str(tmp_path / "o.jsonl"), "--keep-columns", "id",
             "--batch-size", "5")
    assert ok.code == 0, ok.stderr
    for i, row in enumerate(rows[5:], start=5):
        row["id"] = f"x{i}"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    changing = run("predict", str(MODEL), "-i", str(path), "-o", str(tmp_path / "o.parquet"), "--keep-columns", "id",
                   "--batch-size", "5")
    assert changing.code == 3 and "column 'id' changes type between chunks" in changing.stderr
    assert not (tmp_path / "o.parquet").exists()


@pytest.mark.parametrize("args", [["--batch-size", "0"], ["--threads", "0"]])
def test_predict_options_out_of_range_exit_2(tmp_path, args):
    result = run("predict", str(MODEL), "-i", str(SAMPLE), "-o", str(tmp_path / "o.csv"), *args)
    assert result.code == 2 and "invalid option" in result.stderr


# -- drift -----------------------------------------------------------------------------

def test_parquet_log_with_struct_inputs_is_flattened(tmp_path):
    rng = np.random.default_rng(1)
    log = tmp_path / "log.jsonl"
    write_log(log, rng, START, 2, 500)
    pq.write_table(pajson.read_json(log), tmp_path / "log.parquet")
    report = run_drift(DriftOptions(reference=str(log), current=str(tmp_path / "log.parquet")))
    names = {c["name"] for c in report["columns"] if not c.get("insufficient")}
    assert {"age", "group", "outputs.label", "outputs.probabilities_1"} <= names
    assert report["drifted_columns"] == []


def test_booleans_compare_across_formats_and_declared_categorical_codes(tmp_path):
    rng = np.random.default_rng(2)
    n = 3000
    flags = rng.random(n) < 0.3
    codes = rng.integers(10000, 10040, n)
    (tmp_path / "ref.csv").write_text("flag,zip\n" + "".join(f"{f},{z}\n" for f, z in zip(flags, codes)))
    (tmp_path / "cur.jsonl").write_text("".join(json.dumps({"flag": bool(f), "zip": int(z)}) + "\n"
                                                for f, z in zip(flags[::-1], codes[::-1])))
    options = DriftOptions(reference=str(tmp_path / "ref.csv"), current=str(tmp_path / "cur.jsonl"),
                           columns={"zip": {"kind": "categorical"}})
    report = run_drift(options)
    by = {c["name"]: c for c in report["columns"]}
    assert by["flag"]["kind"] == "categorical" and not by["flag"]["drifted"]
    assert by["zip"]["kind"] == "categorical" and "js" in by["zip"]["stats"]


def test_labels_csv_with_numeric_ids_and_a_bad_outputs_line(tmp_path):
    log = tmp_path / "log.jsonl"
    lines = [json.dumps({"ts": "2026-11-01T00:00:00.000Z", "request_id": str(1000 + i), "model": "m", "version": "1",
                         "inputs": {"x": float(i)}, "outputs": {"label": i % 2}, "latency_ms": 1, "status": 200})
             for i in range(10)]
    lines.insert(3, json.dumps({"ts": "t", "request_id": "z", "model": "m", "version": "1", "inputs": {},
                                "outputs": [1, 2], "latency_ms": 1}))
    log.write_text("\n".join(lines) + "\n")
    labels = tmp_path / "labels.csv"
    labels.write_text("request_id,label\n" + "".join(f"{1000 + i},{i % 2}\n" for i in range(10)))
    report = run_drift(DriftOptions(reference=str(log), current=str(log), labels=labels, min_rows=5))
    assert report["performance"]["current"]["accuracy"] == 1.0
    assert report["read"]["bad_lines"] == 2 and ":4:" in report["read"]["examples"][0]


def test_records_without_time_join_no_window_and_bad_windows_exit_2(tmp_path):
    rng = np.random.default_rng(3)
    log = tmp_path / "log.jsonl"
    write_log(log, rng, START, 48, 1000)
    with log.open("a") as fh:
        fh.write(json.dumps({"request_id": "no-ts", "model": "m", "version": "1", "inputs": {"age": 50.0},
                             "outputs": {}, "latency_ms": 1, "status": 200}) + "\n")
    report = json.loads(run("drift", "-r", str(log), "-c", str(log), "--window", "1d", "--json", "-").stdout)
    assert [w["rows"] for w in report["windows"]] == [500, 500] and report["current"]["rows"] == 1001
    for bad in ("0h", "0rows", "0.5rows"):
        assert run("drift", "-r", str(log), "-c", str(log), "--window", bad).code == 2
    assert run("drift", "-r", str(log), "-c", str(log), "--drift-share", "1.5").code == 2
