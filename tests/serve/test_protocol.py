"""FeedPlan's short way for a [batch, width] float input, and BodyPlan's for
/predict's usual body, decide exactly as the full way (same arrays, same
errors); answers are encoded as the protocol shapes them, JSON and binary."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlship import jsonfast
from mlship.model.runner import Runner
from mlship.serve.errors import RequestError
from mlship.serve.formats import decode_predict
from mlship.serve.instances import BodyPlan
from mlship.serve.protocol import FeedPlan, InferAnswer, requested_outputs
from tests.support import MODEL

ROW = [0.5 + i for i in range(30)]


@pytest.fixture(scope="module")
def plans():
    signature = Runner.from_path(MODEL).signature
    fast, full = FeedPlan(signature), FeedPlan(signature)
    full._table = None  # the full way only
    assert fast._table is not None
    return fast, full


def outcome(plan, body, tail=None):
    try:
        return {n: (a.dtype.str, a.shape, a.tobytes()) for n, a in plan.decode(body, tail).items()}
    except RequestError as exc:
        return (exc.status, exc.message)


def tensor(**fields):
    return {"inputs": [{"name": "X", "shape": [1, 30], "datatype": "FP32", "data": ROW, **fields}]}


JSON_BODIES = [
    tensor(),
    tensor(data=[ROW]),  # nested
    tensor(shape=[2, 30], data=ROW + ROW),
    tensor(shape=[0, 30], data=[]),
    tensor(data=[str(v) for v in ROW]),  # numbers as text: read as the full way reads them
    tensor(data=[True] + ROW[1:]),
    tensor(data=[None] + ROW[1:]),  # a missing value: refused, naming row and feature
    tensor(data=["NaN"] + ROW[1:]),
    tensor(data=["x"] + ROW[1:]),
    tensor(data=ROW[:29]),
    tensor(data=[ROW[:15], ROW[15:]]),
    tensor(data=[ROW[:15], ROW[15:29]]),  # ragged
    tensor(data=[{"a": 1}] * 30),
    tensor(data=None),
    tensor(data="text"),
    tensor(shape=[1, 29], data=ROW[:29]),
    tensor(shape=[1, True]),
    tensor(shape=[True, 30]),
    tensor(shape=[-1, 30]),
    tensor(shape=[1.0, 30]),
    tensor(shape=[30]),
    tensor(shape="1,30"),
    tensor(datatype="FP64"),
    tensor(name="Y"),
    tensor(parameters={}),
    tensor(parameters={"binary_data_size": 120}),
    {"inputs": [tensor()["inputs"][0], tensor()["inputs"][0]]},
    {"inputs": []},
    {"inputs": ["X"]},
    {"inputs": {"X": ROW}},
    [ROW],
]


@pytest.mark.parametrize("body", JSON_BODIES, ids=range(len(JSON_BODIES)))
def test_json_tensors_decode_as_the_full_way_decodes_them(plans, body):
    fast, full = plans
    assert outcome(fast, body) == outcome(full, body)


def binary_case(size=120, data_bytes=120, shape=(1, 30), extra=None, **fields):
    values = np.arange(30, dtype="<f4").tobytes()[:data_bytes] if data_bytes <= 120 else b"\0" * data_bytes
    parameters = {"binary_data_size": size, **(extra or {})}
    body = {"inputs": [{"name": "X", "shape": list(shape), "datatype": "FP32", "parameters": parameters, **fields}]}
    return body, memoryview(values)


BINARY = [
    binary_case(),
    binary_case(size=116),
    binary_case(size=124),
    binary_case(data_bytes=116, size=116),
    binary_case(data_bytes=240, size=240, shape=(2, 30)),
    binary_case(size=120.0),
    binary_case(size=True),
    binary_case(size="120"),
    binary_case(data=[1.0]),
    binary_case(data=None),
    binary_case(extra={"other": 1}),
    binary_case(shape=(2, 30)),
]


@pytest.mark.parametrize("case", BINARY, ids=range(len(BINARY)))
def test_binary_tensors_decode_as_the_full_way_decodes_them(plans, case):
    fast, full = plans
    body, tail = case
    assert outcome(fast, body, tail) == outcome(full, body, tail)


def test_binary_nan_is_refused_as_in_json(plans):
    fast, _ = plans
    body, _ = binary_case()
    with pytest.raises(RequestError, match="row 1, feature"):
        fast.decode(body, memoryview(np.array([np.nan] + ROW[1:], dtype="<f4").tobytes()))


OUTPUTS = {"label": np.array([1, 0], dtype=np.longlong), "probabilities": np.array([[0.25, 0.75], [0.5, 0.5]],
                                                                                  dtype=np.float32),
           "name": np.array(["a", "b\"c"], dtype=object)}


def test_json_answer_has_the_protocols_shape():
    answer, tail = InferAnswer("bc", "2.0").encode("id-1", OUTPUTS, None)
    assert tail == b""
    assert json.loads(answer) == {"model_name": "bc", "model_version": "2.0", "id": "id-1", "outputs": [
        {"name": "label", "datatype": "INT64", "shape": [2], "data": [1, 0]},
        {"name": "probabilities", "datatype": "FP32", "shape": [2, 2], "data": [0.25, 0.75, 0.5, 0.5]},
        {"name": "name", "datatype": "BYTES", "shape": [2], "data": ["a", "b\"c"]}]}


def test_binary_answer_carries_sizes_and_little_endian_bytes_in_order():
    wanted = requested_outputs({"parameters": {"binary_data_output": True}}, list(OUTPUTS))
    encoder = InferAnswer("bc", "2.0")
    for _ in range(2):  # the second time from what the first one fixed
        answer, tail = encoder.encode("id-1", OUTPUTS, wanted)
        outputs = json.loads(answer)["outputs"]
        sizes = [o["parameters"]["binary_data_size"] for o in outputs]
        assert [o["shape"] for o in outputs] == [[2], [2, 2], [2]] and "data" not in outputs[0]
        assert sizes == [16, 16, 4 + 1 + 4 + 3] and len(tail) == sum(sizes)
        assert np.frombuffer(tail[:16], "<i8").tolist() == [1, 0]
        assert np.frombuffer(tail[16:32], "<f4").tolist() == [0.25, 0.75, 0.5, 0.5]
        assert tail[32:] == b"\x01\x00\x00\x00a\x03\x00\x00\x00b\"c"


def test_answers_for_other_shapes_are_not_mixed_up():
    encoder = InferAnswer("bc", "1")
    for rows in (1, 3, 1, 2):
        outputs = {"p": np.full((rows, 2), 0.5, dtype=np.float32)}
        decoded = json.loads(encoder.encode("x", outputs, None)[0])["outputs"][0]
        assert decoded["shape"] == [rows, 2] and len(decoded["data"]) == 2 * rows
        assert math.isclose(sum(decoded["data"]), rows)


def test_a_known_binary_header_decodes_the_next_bytes_as_the_full_way_or_sends_them_there(plans):
    fast, full = plans
    rows = np.array([ROW, ROW[::-1]], dtype="<f4")
    header = {"inputs": [{"name": "X", "shape": [2, 30], "datatype": "FP32", "parameters": {"binary_data_size": 240}}]}
    known = fast.known_header(header, 240)
    assert known is not None
    other = (rows * 3).tobytes()
    assert {n: (a.dtype.str, a.shape, a.tobytes()) for n, a in known.decode(memoryview(other)).items()} \
        == outcome(full, header, memoryview(other))
    with_nan = rows.copy()
    with_nan[1, 3] = np.nan
    assert known.decode(memoryview(with_nan.tobytes())) is None  # the full way refuses it, naming the place
    assert known.decode(memoryview(other[:200])) is None
    # Only headers the short way takes are kept: the wrong size, other fields, JSON data, another shape.
    assert fast.known_header(header, 200) is None
    assert fast.known_header({"inputs": [{**header["inputs"][0], "data": ROW}]}, 240) is None
    assert fast.known_header({"inputs": [{**header["inputs"][0], "parameters": {"binary_data_size": True}}]},
                             1) is None
    assert fast.known_header({"inputs": [{**header["inputs"][0], "shape": [2, 29]}]}, 232) is None
    assert fast.known_header(tensor(), 0) is None and full.known_header(header, 240) is None


# -- /predict's usual body straight from its bytes (BodyPlan) ----------------------------


@pytest.fixture(scope="module")
def body_plan():
    signature = Runner.from_path(MODEL).signature
    plan = BodyPlan(signature, False)
    assert plan._decoder is not None  # msgspec is installed (the serve extra)
    return plan, signature


def full_way(raw, signature):
    try:
        feeds, instances = decode_predict(jsonfast.loads(raw), signature)
    except (RequestError, ValueError) as exc:
        return ("refused", str(exc))
    return {n: (a.dtype.str, a.shape, a.tobytes()) for n, a in feeds.items()}, instances


def quick_way(plan, raw):
    got, kept = plan.decode(raw), plan.decode_sent(raw)
    if got is None:
        assert kept is None
        return None
    (feeds, values), (same, sent) = got, kept
    assert all(np.array_equal(same[n], feeds[n]) for n in feeds) and sent.values == values
    assert sent.raw == [bytes(text) for text in plan._texts.decode(raw).instances]  # each row's bytes as sent
    # The log writes each row's text as sent: the JSON of the row as an object, on one line.
    assert [jsonfast.loads(text) for text in sent.texts()] == list(sent)
    assert all(b"\n" not in text for text in sent.texts())
    return {n: (a.dtype.str, a.shape, a.tobytes()) for n, a in feeds.items()}, list(sent)


def named(values, names):
    return "{" + ",".join(f"{json.dumps(n)}:{v}" for n, v in zip(names, values)) + "}"


def row_text(names, **change):
    values = [change.get(n, repr(0.25 + i)) for i, n in enumerate(names)]
    return named(values, names)


def test_the_usual_body_decodes_as_the_full_way_decodes_it(body_plan):
    plan, signature = body_plan
    names = plan.names
    taken = [
        '{"instances":[%s]}' % row_text(names),
        '{"instances":[%s,%s]}' % (row_text(names), row_text(names, **{names[3]: "7"})),
        '{"instances":[%s]}' % named([str(i) for i in range(30)], names),  # integers stay integers
        '{"instances":[%s]}' % named([repr(0.5 + i) for i in range(30)][::-1], names[::-1]),  # another order
        '{"instances":[%s]}' % row_text(names, **{names[0]: "-0", names[1]: "-0.0", names[2]: "1e-7",
                                                  names[4]: str(2**53 - 1), names[5]: str(-(2**53) + 1),
                                                  names[6]: "3.4e38", names[7]: "1e30"}),
        ' {\n "instances" : [ %s ] }\n' % row_text(names),
        json.dumps({"instances": [dict(zip(names, ROW))]}, indent=2),  # rows with line breaks in them
        # A key twice: the last one counts, on both ways.
        '{"instances":[%s]}' % (row_text(names)[:-1] + f',{json.dumps(names[0])}:99' + "}"),
        '{"instances":[%s],"instances":[%s]}' % (row_text(names, **{names[0]: "5"}), row_text(names)),
        '{"instances":[%s,%s],"instances":[%s]}' % (row_text(names), row_text(names),
                                                    row_text(names, **{names[1]: "3"})),
        '{"instances"\t:\r\n[\n%s\t]}' % row_text(names),
    ]
    for raw in taken:
        quick, full = quick_way(plan, raw.encode()), full_way(raw.encode(), signature)
        assert quick is not None, raw
        assert quick[0] == full[0]
        assert quick[1] == full[1]  # the rows as sent (as objects: the log's inputs)
        assert [list(map(type, r.values())) for r in quick[1]] == [[type(r[n]) for n in names] for r in full[1]]


def test_what_the_usual_body_does_not_take_goes_the_full_way(body_plan):
    plan, signature = body_plan
    names = plan.names
    row = row_text(names)
    others = [
        '{"instances":[%s]}' % row_text(names, **{names[2]: "true"}),
        '{"instances":[%s]}' % row_text(names, **{names[2]: "null"}),
        '{"instances":[%s]}' % row_text(names, **{names[2]: '"1.5"'}),
        '{"instances":[%s]}' % row_text(names, **{names[2]: "[1.5]"}),
        '{"instances":[%s]}' % row_text(names, **{names[2]: str(2**53)}),
        '{"instances":[%s]}' % row_text(names, **{names[2]: str(-(2**53))}),
        '{"instances":[%s]}' % row_text(names, **{names[2]: str(2**70)}),
        '{"instances":[%s]}' % row_text(names, **{names[2]: "1e400"}),
        '{"instances":[%s]}' % row_text(names, **{names[2]: "NaN"}),
        '{"instances":[%s]}' % named([repr(0.5 + i) for i in range(29)], names[:29]),  # a feature missing
        '{"instances":[%s]}' % (row[:-1] + ',"extra":1}'),  # an unknown feature
        '{"instances":[%s],"params":{}}' % row,  # another key: MLflow's params are ignored the full way
        '{"instances":[%s],"inputs":[[1]]}' % row,  # two formats: refused the full way
        '{"instances":[]}',
        '{"instances":[[%s]]}' % ",".join(repr(0.5 + i) for i in range(30)),  # lists
        '{"dataframe_records":[%s]}' % row,
        '[%s]' % row,
        '{"instances":[%s]} trailing' % row,
        '{"instances":[%s]' % row,
        '',
    ]
    for raw in others:
        assert plan.decode(raw.encode()) is None, raw
        full_way(raw.encode(), signature)  # the full way answers or refuses it (never raises otherwise)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_body_the_usual_way_takes_decodes_as_the_full_way_decodes_it(body_plan, data):
    plan, signature = body_plan
    names = plan.names
    number = st.one_of(st.floats(allow_nan=False, allow_infinity=False, width=32), st.floats(-1e30, 1e30),
                       st.integers(-(2**53) + 1, 2**53 - 1))
    other = st.one_of(st.booleans(), st.none(), st.text(max_size=3), st.just(2**53), st.just(-(2**53)),
                      st.integers(2**53, 2**70), st.lists(number, max_size=2))
    rows = []
    for _ in range(data.draw(st.integers(1, 3))):
        row = {n: data.draw(number) for n in names}
        change = data.draw(st.sampled_from(["none", "none", "drop", "add", "value"]))
        if change == "drop":
            del row[data.draw(st.sampled_from(names))]
        elif change == "add":
            row["other"] = data.draw(number)
        elif change == "value":
            row[data.draw(st.sampled_from(names))] = data.draw(other)
        rows.append(dict(data.draw(st.permutations(list(row.items())))))
    raw = json.dumps({"instances": rows}).encode()
    quick = quick_way(plan, raw)
    usual = all(set(r) == set(names) and all(type(v) is float or (type(v) is int and abs(v) < 2**53)
                                             for v in r.values()) for r in rows)
    assert (quick is not None) == usual
    if quick is not None:
        assert quick == full_way(raw, signature)
