"""The local engine's pipeline: order across many concurrent chunks, a chunk
scored in parts, a failure in a middle chunk, a session that fails while the
input is read, the bounded number of chunks between reading and writing, and
the output written back while the run goes, fsynced before its rename."""

from __future__ import annotations

import os
import threading
import time

import numpy as np
import onnx
import onnxruntime as ort
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from onnx import TensorProto, helper

from mlship.batch import local, outputs
from mlship.batch.job import PredictOptions
from mlship.batch.run import run_predict
from mlship.batch.workdir import finished_parts, work_dir
from tests import models
from tests.support import MODEL, run

ROWS, BATCH = 2_000, 7  # 286 chunks


def many_rows(tmp_path, rows=ROWS):
    rng = np.random.default_rng(5)
    X, _, names = models.sample_matrix()
    data = X[rng.integers(0, len(X), rows)] * rng.uniform(0.9, 1.1, (rows, 1)).astype(np.float32)
    path = tmp_path / "in.parquet"
    pq.write_table(pa.table({"id": np.arange(10_000, 10_000 + rows), **{n: data[:, j] for j, n in enumerate(names)}}),
                   path, row_group_size=300)
    return path, data, names


def reference(data, batch=BATCH):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(MODEL), options)
    parts = [session.run(None, {"X": data[i:i + batch]}) for i in range(0, len(data), batch)]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def leftovers(output):
    """Files a failed run must not leave: the output, or its partial file."""
    return [p.name for p in (output, output.with_name(f".{output.name}.partial")) if p.exists()]


@pytest.mark.parametrize("parallel,threads", [("4", "1"), ("3", "2")])
def test_many_chunks_scored_at_once_keep_the_input_order(tmp_path, parallel, threads):
    source, data, _ = many_rows(tmp_path)
    output = tmp_path / "o.parquet"
    result = run("predict", str(MODEL), "-i", str(source), "-o", str(output), "--batch-size", str(BATCH),
                 "--parallel", parallel, "--threads", threads, "--keep-columns", "id", "--json")
    assert result.code == 0, result.stderr
    assert result.json()["chunks"] == -(-ROWS // BATCH) and result.json()["rows"] == ROWS
    table = pq.read_table(output).to_pydict()
    assert table["id"] == list(range(10_000, 10_000 + ROWS))
    label, probabilities = reference(data)
    assert table["label"] == label.tolist()
    np.testing.assert_allclose(table["probabilities_1"], probabilities[:, 1], rtol=1e-6)


def test_a_bad_row_in_a_middle_chunk_exits_3_and_leaves_no_output(tmp_path):
    source, data, names = many_rows(tmp_path)
    csv = tmp_path / "in.csv"
    lines = [",".join(names)] + [",".join(repr(float(v)) for v in row) for row in data]
    lines[1001] = lines[1001].replace(lines[1001].split(",")[3], "huge", 1)  # row 1001: chunk 143 of 286
    csv.write_text("\n".join(lines) + "\n")
    output = tmp_path / "o.parquet"
    result = run("predict", str(MODEL), "-i", str(csv), "-o", str(output), "--batch-size", str(BATCH),
                 "--parallel", "4")
    assert result.code == 3
    assert f"{csv}: column '{names[3]}' row 1001: cannot convert 'huge' to float32" in result.stderr
    assert result.stderr.count("\n") == 1
    assert leftovers(output) == []
    parts = finished_parts(work_dir(output))
    assert parts and max(parts) < 143  # the chunks before it stay for --resume; none after it
    assert sorted(p.name for p in work_dir(output).iterdir()) == ["parts.journal", "state.json"]


def gather_model(path):
    """Gather from ten constants by an int64 input `i`: an index past 9 fails inside onnxruntime."""
    i = helper.make_tensor_value_info("i", TensorProto.INT64, ["N"])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N"])
    table = helper.make_tensor("table", TensorProto.FLOAT, [10], [float(k) for k in range(10)])
    graph = helper.make_graph([helper.make_node("Gather", ["table", "i"], ["y"])], "gather", [i], [y],
                              initializer=[table])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save_model(model, path)
    return path


def test_an_inference_error_in_a_middle_chunk_exits_3_and_leaves_no_output(tmp_path):
    model = gather_model(tmp_path / "gather.onnx")
    indexes = np.arange(ROWS) % 10
    indexes[1200] = 99
    source = tmp_path / "in.parquet"
    pq.write_table(pa.table({"i": indexes}), source)
    output = tmp_path / "o.csv"
    result = run("predict", str(model), "-i", str(source), "-o", str(output), "--batch-size", str(BATCH),
                 "--parallel", "4")
    assert result.code == 3
    assert f"{model}: inference failed:" in result.stderr and result.stderr.count("\n") == 1
    assert leftovers(output) == []
    indexes[1200] = 9  # the same run without the bad index scores every row, in order
    pq.write_table(pa.table({"i": indexes}), source)
    result = run("predict", str(model), "-i", str(source), "-o", str(output), "--batch-size", str(BATCH),
                 "--parallel", "4")
    assert result.code == 0, result.stderr
    assert [float(v) for v in output.read_text().splitlines()[1:]] == indexes.astype(float).tolist()


def unknown_op_model(path):
    """Parses and passes the checker, but onnxruntime has no kernel for its node."""
    x = helper.make_tensor_value_info("X", TensorProto.FLOAT, ["N", 30])
    y = helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["N", 30])
    graph = helper.make_graph([helper.make_node("Nope", ["X"], ["Y"], domain="com.example")], "nope", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                    helper.make_opsetid("com.example", 1)])
    model.ir_version = 8
    onnx.save_model(model, path)
    return path


@pytest.mark.parametrize("input_exists", [True, False])
def test_a_session_that_fails_while_the_input_is_read_is_the_error_and_nothing_is_written(tmp_path, input_exists):
    model = unknown_op_model(tmp_path / "nope.onnx")
    source, _, _ = many_rows(tmp_path) if input_exists else (tmp_path / "absent.parquet", None, None)
    output = tmp_path / "o.parquet"
    result = run("predict", str(model), "-i", str(source), "-o", str(output), "--batch-size", str(BATCH))
    assert result.code == 3
    assert f"{model}: onnxruntime cannot load the model" in result.stderr and result.stderr.count("\n") == 1
    assert leftovers(output) == [] and not work_dir(output).exists()
    assert not [t for t in threading.enumerate() if t.name in ("mlship-reader", "mlship-session")]


def test_reading_stays_a_bounded_number_of_chunks_ahead_of_writing(tmp_path, monkeypatch):
    """A slow writer holds the reader back: at no time are more than `in_flight_limit`
    chunks read and not yet written, whatever the number of chunks."""
    source, _, _ = many_rows(tmp_path, rows=700)  # 100 chunks
    read = written = most = 0
    lock = threading.Lock()
    real_chunks, real_add = local.iter_chunks, outputs.Assembler.add

    def counted_chunks(*args, **kwargs):
        nonlocal read, most
        for chunk in real_chunks(*args, **kwargs):
            with lock:
                read += 1
                most = max(most, read - written)
            yield chunk

    def slow_add(self, index, columns):
        nonlocal written
        time.sleep(0.01)
        real_add(self, index, columns)
        with lock:
            written += 1

    monkeypatch.setattr(local, "iter_chunks", counted_chunks)
    monkeypatch.setattr(outputs.Assembler, "add", slow_add)
    options = PredictOptions(model=MODEL, input=str(source), output=tmp_path / "o.parquet", batch_size=BATCH,
                             parallel=2)
    summary = run_predict(options)
    assert summary.chunks == 100 and written == 100
    assert 2 <= most <= local.in_flight_limit(2) < 100


@pytest.mark.parametrize("values", [np.array([3, 1, 3, 2, 1]), np.array([True, False, True]), np.array([], dtype=np.int64),
                                    np.array(["b", "a", "b"]), np.array([5] * 7, dtype=np.uint8),
                                    np.array(["2024-01-02", "2024-01-01", "2024-01-02"], dtype="datetime64[D]")])
def test_distinct_counts_as_numpy_unique_does(values):
    assert outputs._distinct(values) == len(np.unique(values))


def test_a_parquet_run_imports_neither_onnx_nor_numpy_ma_nor_pyarrow_compute(tmp_path):
    """Each costs 10-100 ms of the GIL in a run that does not need it (onnxruntime runs the model;
    pyarrow's own Parquet reader and writer go without pyarrow.parquet's file systems and ssl).
    What the process held before the job is frozen: a full collection set off by the imports
    no longer walks it (~25-40 ms of the GIL)."""
    source, _, _ = many_rows(tmp_path, rows=200)
    code = ("import sys; from pathlib import Path; from mlship.batch.local import run_local; "
            "from mlship.batch.job import PredictOptions; "
            f"s = run_local(PredictOptions(model=Path({str(MODEL)!r}), input={str(source)!r}, "
            f"output=Path({str(tmp_path / 'o.parquet')!r}), batch_size=50, keep_columns=['id'])); "
            "import gc; "
            "print(s.rows, sorted(m for m in ('onnx', 'numpy.ma', 'pyarrow.compute', 'pyarrow.parquet', 'ssl') "
            "if m in sys.modules), "
            "gc.get_freeze_count() > 10_000)")
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["200", "[]", "True"]
    assert pq.read_table(tmp_path / "o.parquet")["id"].to_pylist() == list(range(10_000, 10_200))


def test_the_journal_gives_back_each_chunk_and_a_chunk_without_rows(tmp_path):
    """Resume's view of a journal: payloads by chunk index, None for a chunk whose rows were all rejected."""
    from mlship.batch.workdir import Journal

    journal = Journal(tmp_path)
    journal.append(0, b"y\n1\n")
    journal.append(1, None)
    journal.append(2, pa.py_buffer(b"y\n3\n"))  # Arrow buffers as the Parquet path writes them
    journal.close()
    done = finished_parts(tmp_path)
    assert sorted(done) == [0, 1, 2] and done[1] is None
    assembler = outputs.Assembler(tmp_path, "csv", tmp_path / "o.csv", done)
    for index in (0, 1, 2):
        assembler.add_done(index)
    assert assembler.close() == 2
    assert (tmp_path / "o.csv").read_bytes() == b"y\n1\n3\n"


@pytest.mark.parametrize("resume", [False, True])
def test_the_first_chunk_is_converted_while_the_session_starts_unless_resuming(tmp_path, monkeypatch, resume):
    """Without --resume no chunk can be finished already, so the reader converts the first
    chunks while onnxruntime loads the model; with --resume it waits for the plan (which
    chunks an interrupted run finished), made once the session is up."""
    source, data, _ = many_rows(tmp_path, rows=70)
    converted = threading.Event()
    real_feeds, real_runner = local.feeds_from_table, local.Runner
    seen = []

    def feeds(*args, **kwargs):
        converted.set()
        return real_feeds(*args, **kwargs)

    def runner(*args, **kwargs):
        seen.append(converted.wait(0.5 if resume else 30))  # generous: a busy machine
        return real_runner(*args, **kwargs)

    monkeypatch.setattr(local, "feeds_from_table", feeds)
    monkeypatch.setattr(local, "Runner", runner)
    options = PredictOptions(model=MODEL, input=str(source), output=tmp_path / "o.parquet", batch_size=BATCH,
                             keep_columns=["id"], resume=resume)
    summary = run_predict(options)
    assert seen == [not resume]
    assert summary.rows == 70 and summary.resumed_chunks == 0
    assert pq.read_table(tmp_path / "o.parquet")["id"].to_pylist() == list(range(10_000, 10_070))


def test_a_large_chunk_is_scored_in_parts_at_once_and_joined_in_row_order(tmp_path, monkeypatch):
    """Both cores score from the first chunk to the last: a chunk of at least `parallel` x
    MIN_PART_ROWS rows runs as `parallel` row ranges at once; the output is what whole
    chunks give, bit for bit. Small chunks run whole."""
    runs, real_run = [], local.Runner.run

    def run_(self, feeds):
        runs.append(len(feeds["X"]))
        return real_run(self, feeds)

    monkeypatch.setattr(local.Runner, "run", run_)
    source, data, _ = many_rows(tmp_path, rows=10_500)
    options = PredictOptions(model=MODEL, input=str(source), output=tmp_path / "o.parquet", batch_size=5_000,
                             parallel=2, keep_columns=["id"])
    assert run_predict(options).rows == 10_500
    assert sorted(runs) == [500, 2500, 2500, 2500, 2500]  # the last chunk, 500 rows, whole
    label, probabilities = reference(data, batch=5_000)
    table = pq.read_table(tmp_path / "o.parquet").to_pydict()
    assert table["id"] == list(range(10_000, 20_500)) and table["label"] == label.tolist()
    assert np.array_equal(np.array(table["probabilities_1"], dtype=np.float32), probabilities[:, 1])
    runs.clear()
    run_predict(options.model_copy(update={"parallel": 1, "output": tmp_path / "one.parquet"}))
    assert sorted(runs) == [500, 5000, 5000]
    assert pq.read_table(tmp_path / "one.parquet").equals(pq.read_table(tmp_path / "o.parquet"))


def test_parts_whose_outputs_have_no_row_per_input_row_are_scored_again_whole():
    """An output that is not one value per row cannot be joined: the chunk runs once, whole."""
    from concurrent.futures import Future

    def done(value):
        future = Future()
        future.set_result(value)
        return future

    class Whole:
        def run(self, feeds):
            return {"total": np.array([feeds["X"].sum()]), "y": feeds["X"] * 2}

    feeds = {"X": np.arange(6.0)}
    parts = [(done(Whole().run({"X": feeds["X"][a:b]})), b - a) for a, b in ((0, 3), (3, 6))]
    assert local._joined(parts, Whole(), feeds)["total"].tolist() == [15.0]
    maps = [(done({"p": [{0: 0.5}] * 3, "y": np.zeros((3, 2))}), 3), (done({"p": [{0: 0.25}] * 2, "y": np.ones((2, 2))}), 2)]
    joined = local._joined(maps, Whole(), {"X": np.arange(5.0)})
    assert joined["p"] == [{0: 0.5}] * 3 + [{0: 0.25}] * 2 and joined["y"].tolist() == [[0, 0]] * 3 + [[1, 1]] * 2


def test_the_output_is_written_back_as_it_grows_and_fsynced_before_its_rename(tmp_path, monkeypatch):
    """Each chunk appended starts the partial file's writeback (the fsync at the end then waits
    for little); the fsync before the rename stays. A file that cannot be written back (a pipe)
    is no error."""
    from mlship.fsutil import start_writeback

    source, _, _ = many_rows(tmp_path, rows=70)
    events = []

    def watch(kind, real):
        def call(fd, *rest):
            events.append((kind, os.readlink(f"/proc/self/fd/{fd}") if isinstance(fd, int) else str(fd)))
            return real(fd, *rest)
        return call

    monkeypatch.setattr(outputs, "start_writeback", watch("writeback", outputs.start_writeback))
    monkeypatch.setattr(os, "fsync", watch("fsync", os.fsync))
    monkeypatch.setattr(os, "replace", watch("replace", os.replace))
    for out in ("o.parquet", "o.csv"):
        events.clear()
        options = PredictOptions(model=MODEL, input=str(source), output=tmp_path / out, batch_size=BATCH)
        assert run_predict(options).rows == 70
        partial = str(tmp_path / f".{out}.partial")
        assert [kind for kind, path in events if path == partial] == ["writeback"] * 10 + ["fsync", "replace"]
    read, write = os.pipe()
    start_writeback(write)
    os.close(read)
    os.close(write)


def test_a_model_with_a_fixed_batch_size_gets_whole_chunks(tmp_path):
    """An input that fixes its batch axis ([8192, 4]) cannot take half a chunk: it runs whole."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [8192, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [8192, 4])
    model = helper.make_model(helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "fixed", [x], [y]),
                              opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save_model(model, tmp_path / "fixed.onnx")
    values = np.random.default_rng(2).normal(size=(8192, 4)).astype(np.float32)
    pq.write_table(pa.table({f"x_{j}": values[:, j] for j in range(4)}), tmp_path / "in.parquet")
    options = PredictOptions(model=tmp_path / "fixed.onnx", input=str(tmp_path / "in.parquet"),
                             output=tmp_path / "o.parquet", batch_size=8192, parallel=2)
    assert run_predict(options).rows == 8192
    table = pq.read_table(tmp_path / "o.parquet")
    assert np.array_equal(np.stack([table[f"y_{j}"].to_numpy() for j in range(4)], axis=1), np.maximum(values, 0))


@pytest.mark.parametrize("keep", [["id"], []])
def test_a_converted_chunk_keeps_only_the_columns_written_beside_the_predictions(tmp_path, keep):
    """Once its features are stacked, a chunk lets go of pyarrow's buffers for them (they return
    to the pool for the next reads); its rows, their numbers and the kept columns stay."""
    from concurrent.futures import Future

    from mlship.batch.inputs import Chunk
    from mlship.data.tables import Table
    from mlship.model.load import load_model
    from mlship.model.runner import runner_signature

    _, data, names = many_rows(tmp_path, rows=5)
    signature = runner_signature(load_model(MODEL, light=True))
    columns = {"id": np.arange(7, 12), **{n: data[:, j] for j, n in enumerate(names)}}
    columns[names[0]] = columns[names[0]].copy()
    columns[names[0]][1] = np.nan  # a row --on-error skip drops
    done = Future()
    done.set_result({})
    for on_error, numbers in (("fail", None), ("skip", [3, 5, 6, 7])):
        options = PredictOptions(model=MODEL, input="x", output=tmp_path / "o.parquet", keep_columns=keep,
                                 on_error=on_error, allow_missing=on_error == "fail")
        chunk, table, feeds, rejects = local._prepare(Chunk(4, tmp_path / "in.parquet", Table("in", columns, 3)),
                                                      signature, options, done)
        assert chunk.index == 4 and chunk.table is table and list(table.columns) == keep
        assert table.numbers().tolist() == (numbers or [3, 4, 5, 6, 7]) and chunk.rows == len(feeds["X"])
        assert [r["row"] for r in rejects] == ([] if on_error == "fail" else [4])
        if keep:
            assert table.column("id").tolist() == ([7, 9, 10, 11] if numbers else list(range(7, 12)))


def test_the_output_writer_writes_what_pyarrow_parquet_writer_writes(tmp_path):
    """The writer made without importing pyarrow.parquet gives the same bytes as its ParquetWriter
    (its defaults: format 2.6, snappy, statistics; dictionaries where asked)."""
    table = pa.table({"id": np.arange(3000), "label": np.arange(3000) % 2,
                      "p": np.linspace(0, 1, 3000, dtype=np.float32), "t": ["a", "b", "c"] * 1000})
    for path, make in ((tmp_path / "ours.parquet", outputs._parquet_writer), (tmp_path / "theirs.parquet", None)):
        sink = pa.OSFile(str(path), "wb")
        writer = make(sink, table.schema, ["label", "t"]) if make else pq.ParquetWriter(sink, table.schema,
                                                                                       use_dictionary=["label", "t"])
        for start in (0, 1000, 2000):
            writer.write_table(table.slice(start, 1000))
        writer.close()
        sink.close()
    assert (tmp_path / "ours.parquet").read_bytes() == (tmp_path / "theirs.parquet").read_bytes()
    assert pq.read_table(tmp_path / "ours.parquet").equals(table)
