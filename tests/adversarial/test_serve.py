"""Attacks on `mlship serve` request ids, and the one missing-value rule of
serve, predict and check.

Every server here is a real `mlship serve` subprocess on 127.0.0.1; ids that
would break a response header are sent over raw sockets so a dropped
connection is seen as exactly that. Missing values (JSON null, "NaN", an
empty CSV cell, a Parquet null) are refused naming the field and row unless
the model is declared to take them (`missing_values: allow` in mlship.yaml,
or `--allow-missing`); then NaN reaches the model as float NaN.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import struct
import threading
import time

import numpy as np
import onnx
import onnxruntime as ort
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from onnx import TensorProto, helper

from mlship.images.docker import ImageOptions, serving_config
from mlship.predlog.reader import read_records
from tests import models
from tests.serve.server_process import start_server
from tests.support import MODEL, run

INFER = "/v2/models/bc/infer"
GENERATED_ID = re.compile(rb"^x-request-id: [0-9a-f]{32}\r?$", re.MULTILINE)


# -- helpers -------------------------------------------------------------------


def raw_post(port: int, path: str, body: bytes, extra_headers: bytes = b"") -> bytes:
    """One HTTP/1.1 POST over a raw socket; everything the server sent until it
    closed the connection (b"" when it dropped it without an answer)."""
    request = (b"POST " + path.encode() + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
               b"Content-Type: application/json\r\nContent-Length: " + str(len(body)).encode() + b"\r\n"
               + extra_headers + b"\r\n" + body)
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.sendall(request)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    return received


def split_response(raw: bytes) -> tuple[int, bytes, dict]:
    """(status, header block, JSON body) of a raw answer; fails on no answer."""
    assert raw, "the server dropped the connection without an answer"
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, head, json.loads(body)


def row_body(x: np.ndarray, **extra) -> dict:
    return {**extra, "inputs": [{"name": "X", "shape": [1, 30], "datatype": "FP32", "data": x.tolist()}]}


def typed_model(path):
    """Four inputs of four dtypes, each [N, 1], returned unchanged: what the
    server fed the model is what it answers."""
    kinds = {"f": TensorProto.FLOAT, "i": TensorProto.INT64, "b": TensorProto.BOOL, "s": TensorProto.STRING}
    inputs = [helper.make_tensor_value_info(n, t, ["N", 1]) for n, t in kinds.items()]
    outputs = [helper.make_tensor_value_info(f"{n}_out", t, ["N", 1]) for n, t in kinds.items()]
    nodes = [helper.make_node("Identity", [n], [f"{n}_out"]) for n in kinds]
    model = helper.make_model(helper.make_graph(nodes, "typed", inputs, outputs),
                              opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save_model(model, path)
    return path


TYPED_ROW = {"f": 1.5, "i": 2, "b": True, "s": "x"}
TYPED_DATATYPES = {"f": "FP32", "i": "INT64", "b": "BOOL", "s": "BYTES"}


def typed_infer(**values) -> dict:
    row = {**TYPED_ROW, **values}
    return {"inputs": [{"name": n, "shape": [1, 1], "datatype": TYPED_DATATYPES[n], "data": [row[n]]}
                       for n in TYPED_DATATYPES]}


@pytest.fixture(scope="module")
def sample():
    return models.sample_matrix()


@pytest.fixture(scope="module")
def strict(tmp_path_factory):
    """The example model, missing values not declared (the default)."""
    server = start_server(MODEL, tmp_path_factory.mktemp("strict"), "--name", "bc", log=False)
    yield server
    server.terminate()


def image_options(**extra) -> ImageOptions:
    return ImageOptions(model=MODEL, name="bc", version="1.0.0", base="python:3.11-slim", tag="bc:1.0.0", **extra)


@pytest.fixture(scope="module")
def lenient(tmp_path_factory):
    """The example model served as its container image would serve it: a
    directory with model.onnx and the mlship.yaml `build --image` bakes in
    for a project that declares `missing_values: allow`."""
    project = tmp_path_factory.mktemp("lenient")
    shutil.copyfile(MODEL, project / "model.onnx")
    (project / "mlship.yaml").write_text(serving_config(image_options(missing_values="allow")))
    server = start_server(project, project / "run", log=False)
    yield server
    server.terminate()


def test_only_a_declared_allow_changes_the_baked_in_config():
    assert serving_config(image_options()) == 'name: "bc"\nversion: "1.0.0"\nmodel: model.onnx\n'
    assert serving_config(image_options(missing_values="allow")).endswith("\nmissing_values: allow\n")


@pytest.fixture(scope="module")
def typed_path(tmp_path_factory):
    return typed_model(tmp_path_factory.mktemp("typed") / "typed.onnx")


@pytest.fixture(scope="module")
def typed_strict(tmp_path_factory, typed_path):
    server = start_server(typed_path, tmp_path_factory.mktemp("typed-strict"), "--name", "typed", log=False)
    yield server
    server.terminate()


@pytest.fixture(scope="module")
def typed_lenient(tmp_path_factory, typed_path):
    server = start_server(typed_path, tmp_path_factory.mktemp("typed-lenient"), "--name", "typed",
                          "--allow-missing", log=False)
    yield server
    server.terminate()


# -- request ids -----------------------------------------------------------------

BAD_BODY_IDS = [
    "a\r\nX-Injected: 1",     # header injection
    "a\nb", "a\rb",            # bare line breaks
    "\x00", "a\x01b", "\x1b[31m", "\x7f", "tab\there",
    "é", "日本", "\u2028",      # not ASCII: the header would not round-trip
    " padded ",                # spaces are trimmed by header parsers: not echoed faithfully
    "x" * 257,                 # longer than any proxy header buffer should have to hold
    -1, 10**20, 1.5, True, ["a"], {"a": 1},  # a string, or a non-negative integer read as its digits
]


@pytest.mark.parametrize("bad_id", BAD_BODY_IDS, ids=repr)
def test_a_bad_infer_id_is_refused_with_400_naming_the_field(strict, sample, bad_id):
    X, _, _ = sample
    raw = raw_post(strict.port, INFER, json.dumps(row_body(X[0], id=bad_id)).encode())
    status, head, body = split_response(raw)
    assert status == 400
    assert body["error"].startswith("'id' must be ") and "printable ASCII" in body["error"]
    assert b"x-injected" not in head.lower()
    assert GENERATED_ID.search(head), head  # a fresh id of our own, not the client's
    ok = strict.post(INFER, row_body(X[0], id="row-7"))
    assert ok.status == 200 and json.loads(ok.body)["id"] == "row-7" and ok.headers["x-request-id"] == "row-7"


BAD_HEADER_IDS = [b"tab\there", b"\xff\xfe", b"caf\xe9", b"x" * 257, b"a b"]


@pytest.mark.parametrize("bad_id", BAD_HEADER_IDS, ids=repr)
@pytest.mark.parametrize("path", ["/predict", INFER, "/v2/health/ready"])
def test_a_bad_request_id_header_is_refused_with_400_naming_it(strict, sample, bad_id, path):
    X, _, names = sample
    body = (json.dumps({"instances": [dict(zip(names, X[0].tolist()))]}) if path == "/predict"
            else json.dumps(row_body(X[0]))).encode()
    status, head, doc = split_response(raw_post(strict.port, path, body, b"X-Request-ID: " + bad_id + b"\r\n"))
    assert status == 400
    assert "X-Request-ID header must be " in doc["error"]
    assert bad_id not in head and GENERATED_ID.search(head), head


def test_a_good_id_is_echoed_in_header_body_and_log(tmp_path, sample):
    X, _, _ = sample
    server = start_server(MODEL, tmp_path, "--name", "bc")
    try:
        good = "req-1.A_b:c/d@e=f+g~h"
        status, head, body = split_response(raw_post(server.port, INFER, json.dumps(row_body(X[0], id=good)).encode()))
        assert status == 200 and body["id"] == good and f"x-request-id: {good}".encode() in head
        empty = json.loads(server.post(INFER, row_body(X[1], id="")).body)["id"]  # "" means none: one is made up
        assert re.fullmatch(r"[0-9a-f]{32}", empty)
        for bad in ("a\r\nX-Injected: 1", "\x00"):
            assert split_response(raw_post(server.port, INFER, json.dumps(row_body(X[2], id=bad)).encode()))[0] == 400
    finally:
        assert server.terminate() == 0
    records = list(read_records(server.log_dir))
    assert {(r.request_id, r.status) for r in records if r.status == 200} == {(good, 200), (empty, 200)}
    refused = [r for r in records if r.status == 400]
    assert len(refused) == 2 and all(re.fullmatch(r"[0-9a-f]{32}", r.request_id) for r in refused)
    assert all("'id' must be" in r.error for r in refused)


# -- missing values over HTTP --------------------------------------------------------

MISSING_JSON = [None, "NaN", "nan", "-nan", "+NaN", "NAN"]


@pytest.mark.parametrize("value", MISSING_JSON, ids=repr)
def test_missing_feature_in_predict_is_refused_naming_column_and_row(strict, sample, value):
    X, _, names = sample
    instances = [dict(zip(names, X[i].tolist())) for i in range(3)]
    instances[1]["mean_texture"] = value
    response = strict.post("/predict", {"instances": instances})
    assert response.status == 400, response.body
    error = json.loads(response.body)["error"]
    assert "column 'mean_texture' row 2: missing value" in error and "missing_values" in error


@pytest.mark.parametrize("value", MISSING_JSON, ids=repr)
@pytest.mark.parametrize("nested", [False, True])
def test_missing_value_in_an_infer_tensor_is_refused_naming_input_and_row(strict, sample, value, nested):
    X, _, _ = sample
    rows = X[:2].tolist()
    rows[1][4] = value
    data = rows if nested else [v for row in rows for v in row]
    response = strict.post(INFER, {"inputs": [{"name": "X", "shape": [2, 30], "datatype": "FP32", "data": data}]})
    assert response.status == 400, response.body
    error = json.loads(response.body)["error"]
    assert "input 'X' row 2" in error and "'mean_smoothness'" in error and "missing value" in error


def test_binary_tensor_bodies_with_nan_never_reach_the_model(strict, sample):
    """NaN float32 bytes after a JSON header (binary tensor extension) follow
    the missing-value rule: refused naming input, row and feature, not scored."""
    X, _, _ = sample
    header = json.dumps({"inputs": [{"name": "X", "shape": [1, 30], "datatype": "FP32",
                                     "parameters": {"binary_data_size": 120}}]}).encode()
    values = X[0].copy()
    values[3] = np.nan
    body = header + struct.pack("<30f", *values)
    status, _, doc = split_response(raw_post(strict.port, INFER, body,
                                             b"Inference-Header-Content-Length: " + str(len(header)).encode() + b"\r\n"))
    assert status == 400 and "input 'X' row 1, feature 'mean_area': missing value" in doc["error"]


@pytest.mark.parametrize("field,value", [("f", None), ("f", "NaN"), ("s", None), ("b", None), ("i", None),
                                         ("b", "NaN"), ("i", "NaN")])
@pytest.mark.parametrize("endpoint", ["/predict", "/v2/models/typed/infer"])
def test_every_dtype_refuses_missing_values_when_not_declared(typed_strict, field, value, endpoint):
    body = ({"instances": [TYPED_ROW, {**TYPED_ROW, field: value}]} if endpoint == "/predict"
            else typed_infer(**{field: value}))
    response = typed_strict.post(endpoint, body)
    assert response.status == 400, response.body
    error = json.loads(response.body)["error"]
    assert f"'{field}'" in error and "missing value" in error
    assert typed_strict.post(endpoint, {"instances": [TYPED_ROW]} if endpoint == "/predict"
                             else typed_infer()).status == 200


def test_an_integer_past_the_inputs_type_is_a_400_naming_the_input(typed_strict):
    """10**19 parses (JSON has no bound) but fits no INT64: NumPy's OverflowError was a 500."""
    response = typed_strict.post("/v2/models/typed/infer", typed_infer(i=10**19))
    assert response.status == 400, response.body
    assert json.loads(response.body)["error"] == "input 'i': data cannot be read as INT64"
    assert typed_strict.post("/v2/models/typed/infer", typed_infer(i=2**63 - 1)).status == 200


@pytest.mark.parametrize("endpoint", ["/predict", "/v2/models/typed/infer"])
def test_declared_missing_values_reach_a_float_input_as_nan_only(typed_lenient, endpoint):
    def send(**values):
        if endpoint == "/predict":
            return typed_lenient.post(endpoint, {"instances": [{**TYPED_ROW, **values}]})
        return typed_lenient.post(endpoint, typed_infer(**values))

    for value in (None, "NaN"):
        response = send(f=value)
        assert response.status == 200, response.body
        doc = json.loads(response.body)
        out = doc["predictions"][0]["f_out"] if endpoint == "/predict" else next(
            o["data"] for o in doc["outputs"] if o["name"] == "f_out")
        assert out in ([None], None)  # the model saw NaN (JSON has no NaN: null)
    # Integer, bool and string inputs have no missing value to pass: refused even when allowed.
    for field in ("i", "b", "s"):
        response = send(**{field: None})
        assert response.status == 400, (field, response.body)
        assert f"'{field}'" in json.loads(response.body)["error"]


@pytest.mark.parametrize("value", [None, "NaN"], ids=repr)
def test_declared_missing_values_predict_as_onnxruntime_does_on_nan(lenient, sample, value):
    X, _, names = sample
    session = ort.InferenceSession(str(MODEL))
    x = X[:1].copy()
    x[0, 1] = np.nan
    label, probs = session.run(None, {"X": x})
    instance = dict(zip(names, X[0].tolist()))
    instance["mean_texture"] = value
    doc = json.loads(lenient.post("/predict", {"instances": [instance]}).body)
    assert doc["predictions"][0]["label"] == int(label[0])
    assert np.array_equal(np.float32(doc["predictions"][0]["probabilities"]), probs[0])
    data = X[0].tolist()
    data[1] = value
    response = lenient.post("/v2/models/bc/infer", {"inputs": [{"name": "X", "shape": [1, 30], "datatype": "FP32",
                                                                "data": data}]})
    assert response.status == 200, response.body
    outputs = {o["name"]: o["data"] for o in json.loads(response.body)["outputs"]}
    assert outputs["label"] == [int(label[0])]
    assert np.array_equal(np.float32(outputs["probabilities"]), probs[0])


# -- missing values in predict and check -------------------------------------------


def csv_with(tmp_path, sample, cell: str, row: int = 3, column: str = "mean_texture", name="in.csv"):
    X, _, names = sample
    lines = [",".join(names)] + [",".join(repr(float(v)) for v in x) for x in X[:10]]
    cells = lines[row].split(",")
    cells[names.index(column)] = cell
    lines[row] = ",".join(cells)
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


def no_output_left(output) -> bool:
    siblings = [p.name for p in output.parent.iterdir() if p.name.startswith((output.name, f".{output.name}"))]
    return not output.exists() and not any(n.endswith(".partial") for n in siblings)


@pytest.mark.parametrize("cell", ["", "NaN", "nan", "-nan", "NAN"], ids=repr)
def test_predict_refuses_a_missing_cell_naming_file_column_and_row(tmp_path, sample, cell):
    source = csv_with(tmp_path, sample, cell)
    output = tmp_path / "out.csv"
    result = run("predict", str(MODEL), "-i", str(source), "-o", str(output))
    assert result.code == 3, result.stderr
    assert f"{source}: column 'mean_texture' row 3: missing value" in result.stderr
    assert "--allow-missing" in result.stderr and result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert no_output_left(output)


def test_predict_refuses_nulls_in_jsonl_and_parquet(tmp_path, sample):
    X, _, names = sample
    jsonl = tmp_path / "in.jsonl"
    rows = [dict(zip(names, x.tolist())) for x in X[:5]]
    rows[4]["worst_area"] = None
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in rows))
    parquet = tmp_path / "in.parquet"
    columns = {n: pa.array([float(v) for v in X[:5, j]]) for j, n in enumerate(names)}
    columns["radius_error"] = pa.array([1.0, None, 2.0, 3.0, 4.0])
    pq.write_table(pa.table(columns), parquet)
    for source, column, row in ((jsonl, "worst_area", 5), (parquet, "radius_error", 2)):
        output = tmp_path / f"{source.stem}-{source.suffix[1:]}.parquet"
        result = run("predict", str(MODEL), "-i", str(source), "-o", str(output))
        assert result.code == 3, result.stderr
        assert f"{source}: column '{column}' row {row}: missing value" in result.stderr
        assert no_output_left(output)


def test_predict_skip_sends_missing_rows_to_rejects(tmp_path, sample):
    source = csv_with(tmp_path, sample, "")
    output = tmp_path / "out.csv"
    result = run("predict", str(MODEL), "-i", str(source), "-o", str(output), "--on-error", "skip", "--json")
    assert result.code == 0, result.stderr
    assert result.json()["rows"] == 9 and result.json()["rejects"] == 1
    [reject] = [json.loads(line) for line in (tmp_path / "out.csv.rejects.jsonl").read_text().splitlines()]
    assert (reject["row"], reject["column"]) == (3, "mean_texture") and "missing value" in reject["reason"]


@pytest.mark.parametrize("how", ["flag", "config", "env"])
def test_predict_with_declared_missing_values_scores_nan(tmp_path, sample, how, monkeypatch):
    X, _, _ = sample
    source = csv_with(tmp_path, sample, "")
    output = tmp_path / "out.jsonl"
    args = ["predict", str(MODEL), "-i", str(source), "-o", str(output)]
    if how == "flag":
        args.append("--allow-missing")
    elif how == "config":
        (tmp_path / "mlship.yaml").write_text("missing_values: allow\n")
        monkeypatch.chdir(tmp_path)
    else:
        monkeypatch.setenv("MLSHIP_MISSING_VALUES", "allow")
    result = run(*args)
    assert result.code == 0, result.stderr
    x = X[:10].copy()
    x[2, 1] = np.nan
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    label, probs = ort.InferenceSession(str(MODEL), options).run(None, {"X": x})
    written = [json.loads(line) for line in output.read_text().splitlines()]
    assert [r["label"] for r in written] == label.tolist()
    assert np.array_equal(np.float32([[r["probabilities_0"], r["probabilities_1"]] for r in written]), probs)


def test_a_bad_missing_values_setting_is_a_usage_error(tmp_path, sample, monkeypatch):
    source = csv_with(tmp_path, sample, "")
    (tmp_path / "mlship.yaml").write_text("missing_values: sometimes\n")
    monkeypatch.chdir(tmp_path)
    result = run("predict", str(MODEL), "-i", str(source), "-o", str(tmp_path / "o.csv"))
    assert result.code == 2 and "missing_values" in result.stderr
    assert not (tmp_path / "o.csv").exists()


@pytest.mark.parametrize("cell", ["", "NaN"], ids=repr)
def test_check_sample_refuses_missing_values_unless_declared(tmp_path, sample, cell):
    source = csv_with(tmp_path, sample, cell, row=5, column="worst_radius")
    refused = run("check", str(MODEL), "--sample", str(source))
    assert refused.code == 3
    assert f"{source}: column 'worst_radius' row 5: missing value" in refused.stderr
    assert refused.stderr.count("\n") == 1 and "Traceback" not in refused.stderr
    allowed = run("check", str(MODEL), "--sample", str(source), "--allow-missing", "--json")
    assert allowed.code == 0, allowed.stderr
    assert allowed.json()["smoke"]["rows"] == 10


# -- the binary tensor extension: malformed bodies ---------------------------------------
# Each is sent over a raw socket with exactly the bytes and header given; the
# answer must be a 400 naming what is wrong, and the next good request is scored.


def binary_post(port: int, path: str, header: dict, tail: bytes, declared: bytes | None = None,
                extra_headers: bytes = b"") -> tuple[int, dict]:
    """POST a JSON header plus binary tail; `declared` overrides Inference-Header-Content-Length."""
    head = json.dumps(header).encode()
    length = str(len(head)).encode() if declared is None else declared
    raw = raw_post(port, path, head + tail, b"Inference-Header-Content-Length: " + length + b"\r\n" + extra_headers)
    status, _, doc = split_response(raw)
    return status, doc


def x_header(size, shape=(1, 30), **extra) -> dict:
    return {"inputs": [{"name": "X", "shape": list(shape), "datatype": "FP32",
                        "parameters": {"binary_data_size": size}, **extra}]}


def typed_header(sizes: dict[str, int], shapes: dict[str, list[int]] | None = None) -> dict:
    return {"inputs": [{"name": n, "shape": (shapes or {}).get(n, [1, 1]), "datatype": TYPED_DATATYPES[n],
                        "parameters": {"binary_data_size": sizes[n]}} for n in TYPED_DATATYPES]}


def typed_tail(s: bytes = struct.pack("<I", 1) + b"x", b: bytes = b"\x01") -> tuple[dict[str, int], bytes]:
    parts = {"f": struct.pack("<f", 1.5), "i": struct.pack("<q", 2), "b": b, "s": s}
    return {n: len(p) for n, p in parts.items()}, b"".join(parts.values())


def assert_still_serving(server, sample) -> None:
    X = sample[0]
    status, _ = binary_post(server.port, INFER, x_header(120), X[0].astype("<f4").tobytes())
    assert status == 200


BAD_DECLARED = [
    (b"99999", "must be a number of bytes from 1 to the body's"),    # past the end of the body
    (b"0", "must be a number of bytes from 1"),
    (b"-5", "must be a number of bytes"),
    (b"12abc", "must be a number of bytes"),
    (b"", "must be a number of bytes"),
]


@pytest.mark.parametrize("declared,message", BAD_DECLARED, ids=repr)
def test_an_inference_header_length_outside_the_body_is_refused(strict, sample, declared, message):
    status, doc = binary_post(strict.port, INFER, x_header(120), sample[0][0].astype("<f4").tobytes(), declared)
    assert status == 400 and "Inference-Header-Content-Length" in doc["error"] and message in doc["error"]
    assert_still_serving(strict, sample)


def test_a_header_length_that_cuts_the_json_short_is_not_json(strict, sample):
    status, doc = binary_post(strict.port, INFER, x_header(120), sample[0][0].astype("<f4").tobytes(), b"10")
    assert status == 400 and "not valid JSON" in doc["error"]


@pytest.mark.parametrize("size,message", [
    (-1, "binary_data_size must be a non-negative integer"),
    (-(2**63), "binary_data_size must be a non-negative integer"),
    ("120", "binary_data_size must be a non-negative integer"),
    (120.0, "binary_data_size must be a non-negative integer"),
    (True, "binary_data_size must be a non-negative integer"),
    (None, "binary_data_size must be a non-negative integer"),
    (121, "runs past the end of the body (120 bytes of binary data left)"),
    (2**62, "runs past the end of the body"),
    (2**80, "binary_data_size must be a non-negative integer"),  # beyond int64: JSON readers give a float
    (116, "binary_data_size 116 does not fit shape [1, 30] of FP32 (30 values of 4 bytes = 120)"),
], ids=repr)
def test_a_bad_binary_data_size_is_refused_naming_the_input(strict, sample, size, message):
    status, doc = binary_post(strict.port, INFER, x_header(size), sample[0][0].astype("<f4").tobytes())
    assert status == 400 and "input 'X'" in doc["error"] and message in doc["error"], doc
    assert_still_serving(strict, sample)


@pytest.mark.parametrize("shape,tail_bytes,message", [
    ([1, 30], 240, "120 bytes of binary data after the JSON header belong to no input"),  # size 120, 240 sent
    ([2, 30], 120, "does not fit shape [2, 30]"),                                          # shape wants 240
    ([2**40, 30], 120, "does not fit shape [1099511627776, 30]"),                          # no allocation for it
    ([0, 30], 120, "does not fit shape [0, 30]"),
], ids=repr)
def test_sizes_that_do_not_match_shape_times_dtype_are_refused(strict, sample, shape, tail_bytes, message):
    X = sample[0]
    tail = np.resize(X.astype("<f4"), tail_bytes // 4).tobytes()
    size = 120 if tail_bytes == 240 else tail_bytes
    status, doc = binary_post(strict.port, INFER, x_header(size, shape), tail)
    assert status == 400 and message in doc["error"], doc
    assert_still_serving(strict, sample)


def test_data_and_binary_data_size_together_are_refused(strict, sample):
    X = sample[0]
    status, doc = binary_post(strict.port, INFER, x_header(120, data=X[0].tolist()), X[0].astype("<f4").tobytes())
    assert status == 400 and "both 'data' and binary_data_size" in doc["error"]


def test_binary_bytes_without_the_header_length_are_not_json(strict, sample):
    """Without Inference-Header-Content-Length the whole body is JSON."""
    head = json.dumps(x_header(120)).encode()
    status, _, doc = split_response(raw_post(strict.port, INFER, head + sample[0][0].astype("<f4").tobytes()))
    assert status == 400 and "not valid JSON" in doc["error"]
    status, _, doc = split_response(raw_post(strict.port, INFER, head))  # sizes but no bytes at all
    assert status == 400 and "runs past the end of the body (0 bytes of binary data left)" in doc["error"]


@pytest.mark.parametrize("s,message", [
    (struct.pack("<I", 2) + b"x", "BYTES element 1 says 2 bytes, 1 are left"),           # prefix past the end
    (struct.pack("<I", 2**32 - 1) + b"x", "BYTES element 1 says 4294967295 bytes"),
    (b"\x01\x00", "cannot hold the 1 elements of its shape"),                           # half a prefix
    (b"", "cannot hold the 1 elements of its shape"),
    (struct.pack("<I", 1) + b"xy", "1 bytes after the 1 BYTES elements its shape holds"),
    (struct.pack("<I", 2) + b"\xff\xfe", "BYTES element 1 is not UTF-8 text"),
], ids=repr)
def test_malformed_bytes_tensors_are_refused(typed_strict, sample, s, message):
    sizes, tail = typed_tail(s=s)
    status, doc = binary_post(typed_strict.port, "/v2/models/typed/infer", typed_header(sizes), tail)
    assert status == 400 and "input 's'" in doc["error"] and message in doc["error"], doc
    sizes, tail = typed_tail()
    assert binary_post(typed_strict.port, "/v2/models/typed/infer", typed_header(sizes), tail)[0] == 200


def test_a_bytes_shape_far_larger_than_its_data_is_refused_before_allocating(typed_strict):
    sizes, tail = typed_tail()
    header = typed_header(sizes, {"s": [2**40, 1]})
    status, doc = binary_post(typed_strict.port, "/v2/models/typed/infer", header, tail)
    assert status == 400 and "cannot hold the 1099511627776 elements" in doc["error"]


def test_a_bool_byte_other_than_0_or_1_is_refused(typed_strict):
    sizes, tail = typed_tail(b=b"\x02")
    status, doc = binary_post(typed_strict.port, "/v2/models/typed/infer", typed_header(sizes), tail)
    assert status == 400 and "input 'b': BOOL binary data holds a byte other than 0 or 1" in doc["error"]


def test_binary_requests_keep_the_request_id_rule(strict, sample):
    tail = sample[0][0].astype("<f4").tobytes()
    status, doc = binary_post(strict.port, INFER, {**x_header(120), "id": "a\r\nX-Injected: 1"}, tail)
    assert status == 400 and "'id' must be a string" in doc["error"]
    head = json.dumps(x_header(120)).encode()
    raw = raw_post(strict.port, INFER, head + tail, b"Inference-Header-Content-Length: "
                   + str(len(head)).encode() + b"\r\nX-Request-ID: bad id\r\n")
    status, _, doc = split_response(raw)
    assert status == 400 and "X-Request-ID header" in doc["error"]


def test_a_binary_header_seen_before_gets_every_check_again(strict, sample):
    """The server keeps a binary request's JSON header it has decoded (tritonclient repeats it):
    the next request with the same header but other bytes is still checked and answered on its own."""
    X = sample[0]
    session = ort.InferenceSession(str(MODEL))
    header = {**x_header(120), "id": "same-header"}
    nan_row = X[1].astype("<f4").copy()
    nan_row[4] = np.nan
    bodies = [(X[0], 200), (nan_row, 400), (X[2][:20], 400), (X[3], 200), (X[5], 200)]
    for row, expected in bodies:
        status, doc = binary_post(strict.port, INFER, header, row.astype("<f4").tobytes())
        assert status == expected, doc
        if expected == 200:
            want = session.run(None, {"X": row[None, :].astype(np.float32)})[0].tolist()
            assert doc["outputs"][0]["data"] == want and doc["id"] == "same-header"
        elif len(row) == 30:
            assert "row 1, feature 'mean_smoothness'" in doc["error"]
        else:
            assert "binary_data_size 120 runs past the end of the body" in doc["error"]
    raw = raw_post(strict.port, INFER, json.dumps(header).encode() + X[6].astype("<f4").tobytes(),
                   b"Inference-Header-Content-Length: %d\r\nX-Request-ID: from-header\r\n" % len(json.dumps(header)))
    status, head, doc = split_response(raw)
    assert status == 200 and b"x-request-id: from-header" in head and doc["id"] == "same-header"


@pytest.mark.parametrize("parameters,message", [
    ({"binary_data_output": "yes"}, "parameter binary_data_output must be true or false"),
    ({"binary_data_output": 1}, "parameter binary_data_output must be true or false"),
    ([], "'parameters' must be an object"),
], ids=repr)
def test_bad_output_parameters_are_refused(strict, sample, parameters, message):
    tail = sample[0][0].astype("<f4").tobytes()
    status, doc = binary_post(strict.port, INFER, {**x_header(120), "parameters": parameters}, tail)
    assert status == 400 and message in doc["error"], doc
    outputs = [{"name": "label", "parameters": {"binary_data": "true"}}]
    status, doc = binary_post(strict.port, INFER, {**x_header(120), "outputs": outputs}, tail)
    assert status == 400 and "output 'label': parameter binary_data must be true or false" in doc["error"]
    outputs = [{"name": "label", "parameters": {"classification": 2}}]
    status, doc = binary_post(strict.port, INFER, {**x_header(120), "outputs": outputs}, tail)
    assert status == 400 and "classification extension is not supported" in doc["error"]


def test_binary_bodies_are_held_to_the_body_size_limit(tmp_path, sample):
    server = start_server(MODEL, tmp_path, "--name", "bc", "--max-body-bytes", "1000", log=False)
    try:
        X = sample[0]
        status, doc = binary_post(server.port, INFER, x_header(1200, (10, 30)), X[:10].astype("<f4").tobytes())
        assert status == 413 and "over the limit of 1000 bytes" in doc["error"]
        assert binary_post(server.port, INFER, x_header(120), X[0].astype("<f4").tobytes())[0] == 200
    finally:
        server.terminate()


def test_declared_missing_values_reach_the_model_as_nan_in_binary(lenient, sample):
    X = sample[0]
    x = X[:1].copy()
    x[0, 1] = np.nan
    label, probs = ort.InferenceSession(str(MODEL)).run(None, {"X": x})
    header = {**x_header(120), "outputs": [{"name": "label"}, {"name": "probabilities",
                                                               "parameters": {"binary_data": True}}]}
    head = json.dumps(header).encode()
    raw = raw_post(lenient.port, "/v2/models/bc/infer", head + x.astype("<f4").tobytes(),
                   b"Inference-Header-Content-Length: " + str(len(head)).encode() + b"\r\n")
    response_head, _, body = raw.partition(b"\r\n\r\n")
    length = int(re.search(rb"inference-header-content-length: (\d+)", response_head, re.IGNORECASE).group(1))
    doc = json.loads(body[:length])
    assert doc["outputs"][0]["data"] == [int(label[0])]
    assert np.array_equal(np.frombuffer(body[length:], dtype="<f4").reshape(1, 2), probs)


# -- MLflow's and KServe v1's formats: malformed bodies and missing values ---------------------


@pytest.mark.parametrize("body,message", [
    ({"dataframe_split": {"columns": ["a"], "data": []}}, "'dataframe_split' must be an object with a 'columns'"),
    ({"dataframe_split": {"data": [[1]]}}, "'dataframe_split' must be an object with a 'columns'"),
    ({"dataframe_split": {"columns": ["a", "a"], "data": [[1, 2]]}}, "must be distinct strings"),
    ({"dataframe_split": {"columns": [1, 2], "data": [[1, 2]]}}, "must be distinct strings"),
    ({"dataframe_split": {"columns": ["a", "b"], "data": [[1, 2], [3]]}}, "dataframe_split.data[1] must be a list of 2"),
    ({"dataframe_records": {"a": 1}}, "'dataframe_records' must be a non-empty list of objects"),
    ({"dataframe_records": [[1]]}, "dataframe_records[0] must be an object"),
    ({"inputs": {"mean_radius": [1, 2], "mean_texture": [1]}}, "all of one length"),
    ({"inputs": {"mean_radius": 1}}, "to a non-empty list"),
    ({"inputs": {}}, "to a non-empty list"),
    ({"inputs": [[1.0] * 30, [1.0] * 29]}, "rows of different lengths"),
    ({"inputs": [[1.0] * 30, {"a": 1}]}, "mixes lists and objects"),
    ({"inputs": [[1.0] * 29]}, "does not fit the model's"),
    ({"inputs": [["a"] * 30]}, "cannot be read as FP32"),
    ({"instances": [], "inputs": []}, "it has instances, inputs, send one"),
    ({"instances": []}, "'instances' must be a non-empty list"),
    ([1, 2], "request body must be a JSON object"),
], ids=repr)
@pytest.mark.parametrize("path", ["/predict", "/invocations"])
def test_malformed_mlflow_bodies_are_refused_naming_the_field(strict, sample, body, message, path):
    response = strict.post(path, body)
    assert response.status == 400, response.body
    assert message in json.loads(response.body)["error"]


@pytest.mark.parametrize("value", MISSING_JSON, ids=repr)
def test_missing_values_in_mlflow_and_v1_rows_are_refused_naming_row_and_feature(strict, sample, value):
    X, _, names = sample
    rows = X[:3].tolist()
    rows[1][4] = value
    for path, body in [("/predict", {"dataframe_split": {"columns": names, "data": rows}}),
                       ("/predict", {"dataframe_records": [dict(zip(names, r)) for r in rows]}),
                       ("/predict", {"inputs": rows}), ("/predict", {"instances": rows}),
                       ("/v1/models/bc:predict", {"instances": rows})]:
        response = strict.post(path, body)
        assert response.status == 400, (path, body, response.body)
        error = json.loads(response.body)["error"]
        assert "row 2" in error and "'mean_smoothness'" in error and "missing value" in error, (path, error)


def usual_row(names, values, **raw):
    """A /predict row as JSON text (values as given, or `raw` text for a feature)."""
    return "{" + ",".join(f"{json.dumps(n)}:{raw.get(n, repr(float(v)))}" for n, v in zip(names, values)) + "}"


@pytest.mark.parametrize("path", ["/predict", "/v1/models/bc:predict"])
def test_bodies_made_to_slip_past_the_usual_rows_way_get_the_full_ways_answer(strict, sample, path):
    """/predict's usual body is decoded by msgspec straight into typed rows (BodyPlan);
    bodies built to look usual but be something else must get the full way's answer."""
    X, _, names = sample
    row = usual_row(names, X[0])
    last_true = row[:-1] + f",{json.dumps(names[4])}:true" + "}"  # a key twice, the last one a bool
    cases = [
        (last_true, 200, None),  # the last one counts, and the full way reads a bool as 1.0
        (usual_row(names, X[0], mean_texture=str(2**53)), 200, None),  # past a float64's integers: full way
        (usual_row(names, X[0], mean_texture="1" + "0" * 400), 400, None),  # an integer of 401 digits
        (usual_row(names, X[0], mean_texture="[" * 5000 + "]" * 5000), 400, None),  # deep nesting in a value
        (usual_row(names, X[0], mean_texture=r'"\u0000"'), 400, "mean_texture"),  # text, escaped
    ]
    for text, status, named in cases:
        answer = split_response(raw_post(strict.port, path, b'{"instances":[%s]}' % text.encode()))
        assert answer[0] == status, (text[:200], answer)
        if named:
            assert named in answer[2]["error"]
    twice = split_response(raw_post(strict.port, path, b'{"instances":[%s]}' % last_true.encode()))
    as_one = usual_row(names, X[0], **{names[4]: "1.0"})
    assert twice[2]["predictions"] == \
        split_response(raw_post(strict.port, path, b'{"instances":[%s]}' % as_one.encode()))[2]["predictions"]
    # The server still answers the usual body, and the same row as a plain object gives the same prediction.
    usual = split_response(raw_post(strict.port, path, b'{"instances":[%s]}' % row.encode()))
    spaced = split_response(raw_post(strict.port, path, json.dumps({"instances": [dict(zip(names, X[0].tolist()))]},
                                                                   indent=2).encode()))
    assert usual[0] == spaced[0] == 200 and usual[2]["predictions"] == spaced[2]["predictions"]


def test_lists_for_a_model_with_several_inputs_are_refused(typed_strict):
    response = typed_strict.post("/v1/models/typed:predict", {"instances": [[1.5, 2, True, "x"]]})
    assert response.status == 400
    assert "needs a model with one input; this one takes f, i, b, s" in json.loads(response.body)["error"]


def test_predict_objects_for_a_model_whose_first_input_is_text(tmp_path):
    """A skl2onnx Pipeline's inputs are its columns, the first one a string column: /predict
    answered every request with a 500 ('data type string not understood') while choosing its
    short way for number rows (found by the model corpus)."""
    from tests.models_corpus import sklearn_pipeline

    made = sklearn_pipeline(tmp_path)
    rows = [line.split(",") for line in made.sample.read_text().splitlines()]
    objects = [{"city": r[0], **{n: float(v) for n, v in zip(rows[0][1:5], r[1:5])}} for r in rows[1:4]]
    server = start_server(made.model, tmp_path / "serve", log=False)
    try:
        answer = server.post("/predict", {"instances": objects})
        assert answer.status == 200, answer.body
        assert len(json.loads(answer.body)["predictions"]) == 3
        bad = server.post("/predict", {"instances": [{k: v for k, v in objects[0].items() if k != "city"}]})
        assert bad.status == 400 and b"city" in bad.body
    finally:
        assert server.terminate() == 0


# -- prediction requests the server answers without an ASGI task (mlship.serve.http) -----
# Their bodies are read whole by the protocol; a slow, pipelining or non-reading client
# must get what any other request gets.


def infer_request(x: np.ndarray, request_id: str) -> bytes:
    body = json.dumps(row_body(x)).encode()
    return (b"POST " + INFER.encode() + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"X-Request-ID: " + request_id.encode() + b"\r\nContent-Length: %d\r\n\r\n" % len(body) + body)


def read_answers(sock: socket.socket, count: int) -> list[tuple[int, bytes, bytes]]:
    """`count` answers off a keep-alive connection: (status, header block, body) each."""
    buffer, answers = b"", []
    while len(answers) < count:
        head_end = buffer.find(b"\r\n\r\n")
        if head_end >= 0:
            head = buffer[:head_end]
            length = int(re.search(rb"content-length: (\d+)", head, re.I).group(1))
            if len(buffer) >= head_end + 4 + length:
                answers.append((int(head.split(b" ", 2)[1]), head, buffer[head_end + 4:head_end + 4 + length]))
                buffer = buffer[head_end + 4 + length:]
                continue
        chunk = sock.recv(1 << 20)
        assert chunk, f"the server closed the connection after {len(answers)} of {count} answers"
        buffer += chunk
    return answers


def test_a_prediction_body_sent_a_few_bytes_at_a_time_is_answered_once_whole(strict, sample):
    X = sample[0]
    request = infer_request(X[3], "drip-1")
    head_end = request.index(b"\r\n\r\n") + 4
    with socket.create_connection(("127.0.0.1", strict.port), timeout=60) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall(request[:head_end])
        for i in range(head_end, len(request), 37):
            sock.sendall(request[i:i + 37])
            time.sleep(0.005)
        ((status, head, body),) = read_answers(sock, 1)
    expected = ort.InferenceSession(str(MODEL)).run(None, {"X": X[3:4].astype(np.float32)})[0].tolist()
    assert status == 200 and b"x-request-id: drip-1" in head
    assert json.loads(body)["outputs"][0]["data"] == expected


def test_pipelined_predictions_are_answered_in_order_and_a_client_dropping_them_harms_nothing(strict, sample):
    X = sample[0]
    with socket.create_connection(("127.0.0.1", strict.port), timeout=60) as sock:
        sock.sendall(b"".join(infer_request(X[i % len(X)], f"p-{i}") for i in range(60)))
        answers = read_answers(sock, 60)
    assert [re.search(rb"x-request-id: (\S+)", head).group(1).decode() for _, head, _ in answers] == \
        [f"p-{i}" for i in range(60)]
    assert {status for status, _, _ in answers} == {200}
    with socket.create_connection(("127.0.0.1", strict.port), timeout=60) as sock:  # sent, then gone unread
        sock.sendall(b"".join(infer_request(X[0], f"gone-{i}") for i in range(200)))
    assert_still_serving(strict, sample)


def test_a_client_that_does_not_read_its_answers_gets_them_all_in_order_later(strict, sample):
    """Its answers outgrow the socket's buffers: the server waits for it (no unbounded buffering
    of answers, no lost or reordered one) and serves others meanwhile."""
    X = sample[0]
    count = 12_000  # ~3 MB of answers, past the loopback socket buffers
    requests = b"".join(infer_request(X[i % len(X)], f"n-{i}") for i in range(count))
    with socket.create_connection(("127.0.0.1", strict.port), timeout=120) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        sender = threading.Thread(target=sock.sendall, args=(requests,), daemon=True)
        sender.start()
        time.sleep(1.0)  # not reading: the server's writes back up
        assert_still_serving(strict, sample)  # another client is served meanwhile
        answers = read_answers(sock, count)
        sender.join(timeout=60)
    ids = [re.search(rb"x-request-id: (\S+)", head).group(1).decode() for _, head, _ in answers]
    assert ids == [f"n-{i}" for i in range(count)]
    assert {status for status, _, _ in answers} == {200}


def test_a_direct_answer_whose_write_fails_is_counted_once():
    """A respond that raises (a broken transport) leaves the request answered once and
    out of the in-flight count, for a lone request answered at once too."""
    import asyncio

    from mlship.serve.app import ServeApp
    from mlship.serve.service import ModelService
    from mlship.serve.settings import ServeSettings

    service = ModelService(ServeSettings(model_path=MODEL, name="bc", version="1"))
    service.batcher._run_s = 0.0  # fast: a lone request runs at once, inside the call
    serve_app = ServeApp(service)
    calls = []

    def respond(status, head, payload):
        calls.append(status)
        raise ConnectionResetError("gone")

    async def main():
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda loop, context: None)  # the callback's error: logged by the loop
        scope = {"method": "POST", "path": "/predict", "headers": [], "mlship.tasks": set()}
        serve_app.direct_answer(scope, b'{"instances": [[' + b",".join([b"14.0"] * 30) + b"]]}", respond)
        for _ in range(20):
            await asyncio.sleep(0)

    asyncio.run(main())
    service.close()
    assert calls == [200] and serve_app.inflight == 0
