"""`mlship predict`: formats, exactness, safe outputs, resume, bad input, Ray."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import onnxruntime as ort
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mlship.batch.workdir import finished_parts
from mlship.predlog.reader import read_records
from tests import models
from tests.support import MODEL, SAMPLE, run

BATCH = 50  # 171 sample rows: chunks of 50, 50, 50, 21


@pytest.fixture(scope="module")
def sample():
    X, y, names = models.sample_matrix()
    return X, y, names


def reference(X: np.ndarray, batch: int = BATCH) -> tuple[np.ndarray, np.ndarray]:
    """In-process onnxruntime over the same chunks (tree sums depend on the batch)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1  # as mlship predict runs it by default
    session = ort.InferenceSession(str(MODEL), options)
    parts = [session.run(None, {"X": X[i:i + batch]}) for i in range(0, len(X), batch)]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def write_inputs(tmp_path, X, y, names):
    ids = np.arange(1000, 1000 + len(X))
    columns = {"id": ids, **{n: X[:, j] for j, n in enumerate(names)}, "label": y}
    paths = {"parquet": tmp_path / "in.parquet", "csv": tmp_path / "in.csv", "jsonl": tmp_path / "in.jsonl",
             "npy": tmp_path / "in.npy"}
    pq.write_table(pa.table(columns), paths["parquet"])
    with paths["csv"].open("w") as fh:
        fh.write(",".join(columns) + "\n")
        for i in range(len(X)):
            fh.write(",".join(repr(float(columns[c][i])) if c in names else str(columns[c][i]) for c in columns) + "\n")
    with paths["jsonl"].open("w") as fh:
        for i in range(len(X)):
            fh.write(json.dumps({c: (float(columns[c][i]) if c in names else int(columns[c][i])) for c in columns}) + "\n")
    np.save(paths["npy"], X)
    return paths


def read_output(path):
    if path.suffix == ".parquet":
        return pq.read_table(path).to_pydict()
    if path.suffix == ".csv":
        import csv

        rows = list(csv.DictReader(path.open()))
        return {k: [r[k] for r in rows] for k in rows[0]}
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    return {k: [r[k] for r in rows] for k in rows[0]}


@pytest.mark.parametrize("fmt", ["parquet", "csv", "jsonl", "npy"])
@pytest.mark.parametrize("out", ["parquet", "csv", "jsonl"])
def test_output_equals_onnxruntime_for_every_format(tmp_path, sample, fmt, out):
    X, y, names = sample
    inputs = write_inputs(tmp_path, X, y, names)
    output = tmp_path / f"pred.{out}"
    keep = [] if fmt == "npy" else ["--keep-columns", "id"]
    result = run("predict", str(MODEL), "--input", str(inputs[fmt]), "--output", str(output),
                 "--batch-size", str(BATCH), "--json", *keep)
    assert result.code == 0, result.stderr
    summary = result.json()
    assert summary["rows"] == 171 and summary["rejects"] == 0 and summary["chunks"] == 4
    label, probs = reference(X)
    got = read_output(output)
    assert [int(v) for v in got["label"]] == label.tolist()
    assert np.array_equal(np.array(got["probabilities_1"], dtype=np.float32), probs[:, 1])
    assert np.array_equal(np.array(got["probabilities_0"], dtype=np.float32), probs[:, 0])
    if keep:
        assert [int(v) for v in got["id"]] == list(range(1000, 1171))
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())  # no work left behind


def test_glob_and_directory_inputs_in_name_order(tmp_path, sample):
    X, y, names = sample
    folder = tmp_path / "parts"
    folder.mkdir()
    for k, (a, b) in enumerate([(0, 60), (60, 120), (120, 171)]):
        pq.write_table(pa.table({n: X[a:b, j] for j, n in enumerate(names)}), folder / f"part-{k}.parquet")
    for spec in (str(folder), str(folder / "part-*.parquet")):
        out = tmp_path / "o.parquet"
        assert run("predict", str(MODEL), "-i", spec, "-o", str(out), "--batch-size", "60").code == 0
        label, _ = reference(X, 60)
        assert pq.read_table(out).column("label").to_pylist() == label.tolist()


def test_prediction_log_feeds_drift(tmp_path, sample):
    X, y, names = sample
    inputs = write_inputs(tmp_path, X, y, names)
    result = run("predict", str(MODEL), "-i", str(inputs["parquet"]), "-o", str(tmp_path / "o.parquet"),
                 "--log-dir", str(tmp_path / "logs"), "--batch-size", "64")
    assert result.code == 0, result.stderr
    records = list(read_records(tmp_path / "logs"))
    assert len(records) == 171
    assert records[5].request_id == "in.parquet:6" and records[5].variant == "batch"
    assert records[5].inputs["mean_radius"] == pytest.approx(float(X[5, 0]))
    assert records[5].outputs["label"] in (0, 1)


def bad_csv(tmp_path, sample, edits):
    X, y, names = sample
    lines = [",".join(names)] + [",".join(repr(float(v)) for v in row) for row in X]
    for row, col, value in edits:
        cells = lines[row].split(",")
        cells[names.index(col)] = value
        lines[row] = ",".join(cells)
    path = tmp_path / "bad.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_bad_value_fails_naming_file_row_and_column(tmp_path, sample):
    path = bad_csv(tmp_path, sample, [(77, "mean_area", "huge")])
    output = tmp_path / "o.parquet"
    result = run("predict", str(MODEL), "-i", str(path), "-o", str(output), "--batch-size", "50")
    assert result.code == 3
    assert f"{path}: column 'mean_area' row 77: cannot convert 'huge' to float32" in result.stderr
    assert not output.exists()


def test_on_error_skip_writes_rejects_with_reasons(tmp_path, sample):
    path = bad_csv(tmp_path, sample, [(3, "mean_area", "huge"), (120, "worst_radius", "n/a")])
    output = tmp_path / "o.csv"
    result = run("predict", str(MODEL), "-i", str(path), "-o", str(output), "--on-error", "skip",
                 "--batch-size", "50", "--json")
    assert result.code == 0, result.stderr
    summary = result.json()
    assert summary["rows"] == 169 and summary["rejects"] == 2
    rejects = [json.loads(line) for line in (tmp_path / "o.csv.rejects.jsonl").read_text().splitlines()]
    assert [(r["row"], r["column"], r["value"]) for r in rejects] == [(3, "mean_area", "huge"),
                                                                      (120, "worst_radius", "n/a")]
    assert "cannot convert" in rejects[0]["reason"]
    assert len(output.read_text().splitlines()) == 170


@pytest.mark.parametrize("case,code,message", [
    ("missing_column", 3, "missing column 'mean_radius' required by the model"),
    ("empty", 3, "has no rows"),
    ("garbage_parquet", 3, "cannot read parquet data"),
    ("no_input", 3, "input not found"),
    ("bad_extension", 2, "--output"),
    ("keep_missing", 3, "no column 'nope' to keep"),
])
def test_bad_input_cases(tmp_path, sample, case, code, message):
    X, y, names = sample
    output = tmp_path / "o.parquet"
    source = tmp_path / "in.parquet"
    extra = []
    if case == "missing_column":
        pq.write_table(pa.table({n: X[:, j] for j, n in enumerate(names) if j > 0}), source)
    elif case == "empty":
        source = tmp_path / "in.csv"
        source.write_text(",".join(names) + "\n")
    elif case == "garbage_parquet":
        source.write_bytes(b"PAR1 this is not parquet at all PAR1")
    elif case == "no_input":
        source = tmp_path / "absent.parquet"
    elif case == "bad_extension":
        pq.write_table(pa.table({n: X[:, j] for j, n in enumerate(names)}), source)
        output = tmp_path / "o.xlsx"
    else:
        pq.write_table(pa.table({n: X[:, j] for j, n in enumerate(names)}), source)
        extra = ["--keep-columns", "nope"]
    result = run("predict", str(MODEL), "-i", str(source), "-o", str(output), *extra)
    assert result.code == code, result.stderr
    assert message in result.stderr and result.stderr.count("\n") == 1
    assert not output.exists()


def big_parquet(path, rows=400_000):
    rng = np.random.default_rng(3)
    X, _, names = models.sample_matrix()
    data = X[rng.integers(0, len(X), rows)]
    pq.write_table(pa.table({"id": np.arange(rows), **{n: data[:, j] for j, n in enumerate(names)}}), path,
                   row_group_size=20_000)
    return path


def test_sigkill_then_resume_equals_an_uninterrupted_run(tmp_path):
    source = big_parquet(tmp_path / "big.parquet")
    output = tmp_path / "scored.parquet"
    work = tmp_path / ".scored.parquet.mlship-work"
    cmd = [sys.executable, "-m", "mlship", "predict", str(MODEL), "-i", str(source), "-o", str(output),
           "--batch-size", "2000", "--keep-columns", "id", "--threads", "1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while len(finished_parts(work)) < 5 and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = len(finished_parts(work))
    assert 5 <= done_before < 200, "the run was not interrupted mid-way"
    assert not output.exists()
    resumed = run("predict", str(MODEL), "-i", str(source), "-o", str(output), "--batch-size", "2000",
                  "--keep-columns", "id", "--threads", "1", "--resume", "--json")
    assert resumed.code == 0, resumed.stderr
    assert resumed.json()["resumed_chunks"] >= done_before and resumed.json()["rows"] == 400_000
    clean = tmp_path / "clean.parquet"
    assert run("predict", str(MODEL), "-i", str(source), "-o", str(clean), "--batch-size", "2000",
               "--keep-columns", "id", "--threads", "1").code == 0
    assert pq.read_table(output).equals(pq.read_table(clean))
    assert not work.exists()


@pytest.mark.integration  # starts a local Ray cluster
def test_ray_engine_equals_local_row_for_row(tmp_path, sample):
    pytest.importorskip("ray")
    X, y, names = sample
    inputs = write_inputs(tmp_path, X, y, names)
    for fmt in ("parquet", "csv"):
        local, remote = tmp_path / f"local-{fmt}.parquet", tmp_path / f"ray-{fmt}.parquet"
        assert run("predict", str(MODEL), "-i", str(inputs[fmt]), "-o", str(local), "--keep-columns", "id",
                   "--batch-size", str(BATCH), "--threads", "1").code == 0
        result = run("predict", str(MODEL), "-i", str(inputs[fmt]), "-o", str(remote), "--keep-columns", "id",
                     "--batch-size", str(BATCH), "--engine", "ray", "--json")
        assert result.code == 0, result.stderr
        assert result.json()["engine"] == "ray" and result.json()["rows"] == 171
        assert pq.read_table(remote).equals(pq.read_table(local))


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


def test_parquet_to_parquet_imports_no_pandas_and_encodes_by_column(tmp_path, sample):
    """pandas costs ~0.5 s of every run (issue 21): numbers go through buffers. The
    output dictionary-encodes columns that repeat (label), not unique ids."""
    X, y, names = sample
    inputs = write_inputs(tmp_path, X, y, names)
    output = tmp_path / "pred.parquet"
    code = ("import sys\nfrom mlship.cli import main\n"
            f"code = main(['-q', 'predict', {str(MODEL)!r}, '-i', {str(inputs['parquet'])!r}, '-o', {str(output)!r}, "
            "'--keep-columns', 'id', '--batch-size', '50'])\n"
            "print(code, 'pandas' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.stdout.split() == ["0", "False"], proc.stderr
    chunk = pq.ParquetFile(output).metadata.row_group(0)
    encodings = {chunk.column(i).path_in_schema: chunk.column(i).encodings for i in range(chunk.num_columns)}
    assert "RLE_DICTIONARY" in encodings["label"] and "RLE_DICTIONARY" not in encodings["id"]
    assert pq.read_table(output).column("id").to_pylist() == list(range(1000, 1171))


@pytest.mark.parametrize("out", ["parquet", "csv", "jsonl"])
def test_a_zipmap_output_is_one_column_per_class_as_drift_reads_the_logs(tmp_path, out):
    """skl2onnx's default classifier answers a {class: probability} map per row: predict writes
    NAME_CLASS columns (not JSON text), the names drift gives the logged maps, so a reference
    scored by predict and the logs compare column for column."""
    from mlship.drift.frames import iter_frames
    from tests.models_corpus import NUMERIC, sklearn_multiclass

    made = sklearn_multiclass(tmp_path, zipmap=True)
    rows = [line.split(",") for line in made.sample.read_text().splitlines()[1:]]
    X = np.array([[float(v) for v in r[:4]] for r in rows], dtype=np.float32)
    maps = ort.InferenceSession(str(made.model)).run(None, {"X": X})[1]
    result = run("predict", str(made.model), "-i", str(made.sample), "-o", str(tmp_path / f"p.{out}"),
                 "--features", ",".join(NUMERIC), "--log-dir", str(tmp_path / "logs"))
    assert result.code == 0, result.stderr
    written = read_output(tmp_path / f"p.{out}")
    assert list(written) == ["output_label", "output_probability_0", "output_probability_1", "output_probability_2"]
    for c in range(3):
        assert np.allclose(np.array(written[f"output_probability_{c}"], dtype=np.float64), [m[c] for m in maps])
    logged = next(iter_frames(tmp_path / "logs")).columns
    assert {f"outputs.{n}" for n in written} <= set(logged)
    assert np.allclose(logged["outputs.output_probability_2"].astype(np.float64), [m[2] for m in maps])
