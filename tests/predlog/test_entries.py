"""Log lines written on the request path (LineFormat) are the lines the
writer makes from a LogEntry, byte for byte; what LineFormat does not take
goes the LogEntry way."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mlship import jsonfast
from mlship.predlog.entries import LineFormat, LogEntry, SentRows, _utc_stamp, row_outputs
from mlship.predlog.schema import PredictionRecord, utc_timestamp

FEATURES = {"X": ["mean radius", "odd \"quoted\" name", "100% sure", "f4"]}
BASE = {"model": "m\u00e9", "version": "1.0", "variant": "canary"}


def entry_line(request_id, latency_ms, when, feeds, instances, outputs, cached) -> bytes:
    entry = LogEntry(base={"request_id": request_id, **BASE, "latency_ms": latency_ms, "status": 200, "error": None},
                     when=when, feeds=feeds, instances=instances, outputs=outputs, cached=cached, features=FEATURES)
    (line,) = entry.lines()
    return line


OUTPUTS = [
    {"label": np.array([1], dtype=np.longlong), "probabilities": np.array([[0.1, 0.9]], dtype=np.float32)},
    {"score": np.array([[0.25]], dtype=np.float32)},  # [N, 1]: logged as a plain value
    {"flag": np.array([True]), "vector": np.array([[[1.5, 2.0]]], dtype=np.float64)},
    {"label": np.array([7], dtype=np.int64), "nan": np.array([[np.nan, 1e-7]], dtype=np.float32)},
]


@pytest.mark.parametrize("outputs", OUTPUTS)
@pytest.mark.parametrize("cached", [False, True])
def test_line_matches_the_entry_line_for_one_row_of_named_features(outputs, cached):
    fmt = LineFormat(BASE["model"], BASE["version"], BASE["variant"], FEATURES)
    feeds = {"X": np.array([[17.99, -0.5, 3.0, 1e-8]], dtype=np.float32)}
    args = ("id\\with\"quotes", 1.234, 1764500000.1234, feeds, None, outputs, cached)
    line = fmt.line(*args)
    assert line == entry_line(*args)
    record = PredictionRecord.model_validate(json.loads(line))
    assert record.inputs["100% sure"] == 3.0 and record.model == "m\u00e9"


def test_line_matches_the_entry_line_for_an_object_as_sent():
    fmt = LineFormat("m\u00e9", "1.0", "canary", FEATURES)
    instances = [{"mean radius": 17.99, "f4": 5, "extra": "text"}]
    args = ("r1", 0.5, 1764500000.0, {"X": np.zeros((1, 4), np.float32)}, instances, OUTPUTS[0], False)
    assert fmt.line(*args) == entry_line(*args)


@pytest.mark.parametrize("feeds, outputs", [
    ({"X": np.zeros((2, 4), np.float32)}, {"label": np.array([1, 0])}),  # two rows
    ({"X": np.zeros((1, 4), np.float32), "Y": np.zeros((1, 1), np.float32)}, OUTPUTS[0]),  # two inputs
    ({"Z": np.zeros((1, 4), np.float32)}, OUTPUTS[0]),  # an input without named columns
    ({"X": np.array([["a", "b", "c", "d"]], dtype=object)}, OUTPUTS[0]),  # text
    ({"X": np.zeros((1, 4), np.float32)}, {"label": np.array(["yes"], dtype=object)}),  # text output
    ({"X": np.zeros((1, 4), np.float32)}, {"map": [{"a": 0.5}]}),  # a sequence of maps
    ({"X": np.zeros((1, 4), np.float32)}, {"total": np.array(3.0)}),  # no batch axis
])
def test_what_the_line_does_not_take_goes_the_entry_way(feeds, outputs):
    fmt = LineFormat("m", "1", "stable", FEATURES)
    assert fmt.line("r1", 1.0, 1764500000.0, feeds, None, outputs, False) is None


def batch_and_single(fmt, ids, latencies, feeds, instances, outputs):
    """A batch's lines, and each request's own line made alone (its row of each array)."""
    when = 1764500000.4567
    lines = fmt.batch(ids, latencies, when, feeds, instances, outputs)
    alone = [fmt.line(ids[i], latencies[i], when, {n: v[i:i + 1] for n, v in feeds.items()},
                      None if instances is None else instances[i:i + 1],
                      {n: v[i:i + 1] for n, v in outputs.items()}, False) for i in range(len(ids))]
    return lines, alone


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64, np.int32, np.uint8])
@pytest.mark.parametrize("rows", [1, 2, 7, 64])
def test_batch_lines_are_the_lines_of_each_request_alone_in_order(dtype, rows):
    rng = np.random.default_rng(rows)
    fmt = LineFormat("m%s\u00e9", "1.0", "can%ary", FEATURES)
    X = (rng.normal(size=(rows, 4)) * 100).astype(dtype)
    if X.dtype.kind == "f":
        X[0, 1] = np.nan  # written as null, as the writer does
        X[-1, 3] = 1e-8
    outputs = {"label": rng.integers(0, 2, rows), "probabilities": rng.random((rows, 2)).astype(np.float32),
               "score": rng.random((rows, 1)), "flags": rng.random((rows, 1, 3)) > 0.5,
               "cube": rng.random((rows, 2, 2)).astype(np.float32), "empty": np.zeros((rows, 0)),
               "100% \"odd\"": np.full(rows, np.nan, dtype=np.float32)}
    ids = [f"id-{i}\\\"x\"," for i in range(rows)]
    latencies = [round(0.001 + 1.7 * i, 3) for i in range(rows)]
    lines, alone = batch_and_single(fmt, ids, latencies, {"X": X}, None, outputs)
    assert lines == alone and len(lines) == rows
    for i, line in enumerate(lines):  # each line is request i's, and a valid record
        record = PredictionRecord.model_validate(json.loads(line))
        assert record.request_id == ids[i] and record.latency_ms == latencies[i]
    if X.dtype.kind == "f":
        assert json.loads(lines[0])["inputs"]["odd \"quoted\" name"] is None
    base = {"model": "m%s\u00e9", "version": "1.0", "variant": "can%ary"}
    for i, line in enumerate(lines):  # and each is the line the writer makes from that request's LogEntry
        entry = LogEntry(base={"request_id": ids[i], **base, "latency_ms": latencies[i], "status": 200,
                               "error": None}, when=1764500000.4567, feeds={"X": X[i:i + 1]}, instances=None,
                         outputs={n: v[i:i + 1] for n, v in outputs.items()}, cached=False, features=FEATURES)
        assert entry.lines() == [line]


def test_batch_lines_of_rows_as_sent_are_the_lines_of_each_request_alone():
    fmt = LineFormat("m", "1", "stable", FEATURES)
    instances = [{"mean radius": i, "f4": 0.5 * i, "text": "a\"b", "nested": [i, None]} for i in range(5)]
    feeds = {"X": np.arange(20, dtype=np.float32).reshape(5, 4)}
    lines, alone = batch_and_single(fmt, [str(i) for i in range(5)], [1.0] * 5, feeds, instances,
                                    {"label": np.arange(5)})
    assert lines == alone and json.loads(lines[3])["inputs"] == instances[3]


@pytest.mark.parametrize("feeds, outputs", [
    ({"X": np.zeros((3, 4), np.float32)}, {"label": np.array([1, 0])}),  # an output of other rows
    ({"X": np.zeros((2, 4), np.float32)}, {"label": np.array([1, 0])}),  # rows != requests (3)
    ({"X": np.zeros((3, 4), np.float32), "Y": np.zeros((3, 1), np.float32)}, {"label": np.arange(3)}),
    ({"Z": np.zeros((3, 4), np.float32)}, {"label": np.arange(3)}),  # no named columns
    ({"X": np.zeros((3, 4), np.float32)}, {"label": np.array(["a", "b", "c"], dtype=object)}),
    ({"X": np.zeros((3, 4), np.float32)}, {"total": np.array(3.0)}),  # no batch axis
])
def test_what_batch_does_not_take_goes_each_requests_own_way(feeds, outputs):
    fmt = LineFormat("m", "1", "stable", FEATURES)
    assert fmt.batch(["a", "b", "c"], [1.0] * 3, 1764500000.0, feeds, None, outputs) is None


ONE_ROW_OUTPUTS = [
    {"label": np.array([4], dtype=np.longlong), "probabilities": np.array([[0.25, 0.75]], np.float32)},  # onnxruntime's
    {"label": np.array([1]), "probabilities": np.array([[0.1, 0.9]], np.float32)},
    {"y": np.array([[2.5]], np.float32)},
    {"y": np.zeros((1, 1, 1))},
    {"y": np.arange(6.0).reshape(1, 2, 3)},
    {"y": np.array(["a"], dtype=object)},
    {"label": np.array([3]), "scores": [np.array([1.0])]},  # not an array: the general way
]


@pytest.mark.parametrize("outputs", ONE_ROW_OUTPUTS, ids=range(len(ONE_ROW_OUTPUTS)))
def test_a_lone_rows_outputs_are_split_as_a_batchs_first_row(outputs):
    """row_outputs has a short way for one row: the same values as row 0 of that row twice."""
    twice = {n: np.concatenate([v, v]) if type(v) is np.ndarray else v * 2 for n, v in outputs.items()}
    one, = row_outputs(outputs, 1)
    first = row_outputs(twice, 2)[0]
    assert jsonfast.dumps(one) == jsonfast.dumps(first)
    # The same types, but onnxruntime's `long long` integers come as int (orjson writes them itself).
    assert {n: type(v) for n, v in one.items()} == \
        {n: int if type(v) is np.longlong else type(v) for n, v in first.items()}


def test_outputs_without_a_batch_axis_are_repeated_for_a_lone_row():
    scalar_output = np.array(3.0)
    wide = np.zeros((2, 3))
    (row,) = row_outputs({"s": scalar_output, "w": wide, "y": np.array([7])}, 1)
    assert float(row["s"]) == 3.0 and row["w"].shape == (2, 3) and row["y"] == 7


def test_rows_as_sent_are_logged_as_their_own_text_on_one_line():
    """SentRows (/predict's usual rows read straight from the body) log each row's JSON text
    as sent; the record is the one the row as an object gives; a text with a line break is
    written again as compact JSON, so the log stays one record a line."""
    names = tuple(FEATURES["X"])
    values = [(1.5, 2, -3.25e-07, 1e16), (0.0, -0.0, 7, 123456.789)]
    objects = [dict(zip(names, row)) for row in values]
    texts = [json.dumps(objects[0]).encode(), json.dumps(objects[1], indent=1).encode()]  # spaces; line breaks
    sent = SentRows(values, names, texts)
    assert list(sent) == objects and sent[1] == objects[1] and sent[:1] == objects[:1] and len(sent) == 2
    fmt = LineFormat("m", "1", "stable", FEATURES)
    outputs = {"y": np.array([0.5, 1.5], np.float32)}
    lines = fmt.batch(["a", "b"], [0.1, 0.2], 1.7e9, None, sent, outputs)
    plain = fmt.batch(["a", "b"], [0.1, 0.2], 1.7e9, None, objects, outputs)
    assert [json.loads(line) for line in lines] == [json.loads(line) for line in plain]
    assert texts[0] in lines[0] and lines[1] == plain[1]  # as sent; written again
    assert all(line.count(b"\n") == 1 for line in lines)
    together = SentRows.first_rows([SentRows([row], names, [text]) for row, text in zip(values, texts)])
    assert together is not None and together.values == values and together.raw == texts
    assert SentRows.first_rows([SentRows([values[0]], names, texts[:1]), [objects[1]]]) is None
    other_model = tuple(list(names))
    assert SentRows.first_rows([SentRows([values[0]], names, texts[:1]),
                                SentRows([values[1]], other_model, texts[1:])]) is None


def test_batch_lines_with_a_time_each_are_each_requests_line_with_its_utc_timestamp():
    """Held-back lone requests are made together, each with its own time: the `ts` of each is
    utc_timestamp's (the same rounding to the microsecond, across ms and second boundaries)."""
    fmt = LineFormat("m", "1", "stable", FEATURES)
    whens = [1764500000.9994, 1764500000.99949, 1764500000.9999996, 1764500001.0004, 1764500001.0004,
             1764500061.25, 1764500000.0000004, 1.5, 0.0]
    rows = len(whens)
    feeds = {"X": np.arange(rows * 4, dtype=np.float32).reshape(rows, 4)}
    outputs = {"label": np.arange(rows)}
    ids, latencies = [f"r{i}" for i in range(rows)], [0.001 * i for i in range(rows)]
    lines = fmt.batch(ids, latencies, whens, feeds, None, outputs)
    for i, when in enumerate(whens):
        assert lines[i] == fmt.line(ids[i], latencies[i], when, {"X": feeds["X"][i:i + 1]}, None,
                                    {"label": outputs["label"][i:i + 1]}, False)
        assert json.loads(lines[i])["ts"] == utc_timestamp(when)
    assert [json.loads(line)["ts"][-7:] for line in lines[:3]] == ["20.999Z", "20.999Z", "21.000Z"]


def test_timestamps_are_utc_timestamps_to_the_millisecond():
    rng = np.random.default_rng(7)
    whens = list(rng.uniform(0, 4e9, 20000)) + [s + k / 1000 + d for s in (1764500000, 1764503599)
                                               for k in range(1000) for d in (0.0, 4.9e-7, 5e-7, -5e-7)]
    assert [_utc_stamp(float(w)) for w in whens] == [utc_timestamp(float(w)) for w in whens]


@pytest.mark.parametrize("ids", [["r1", "\u00e9-\u00fc", "x,y", ""], ["tab\there", "b", "c", "d"],
                                 ["del\x7f", "b", "c", "d"], ["line\u2028sep", "\U0001f600", "c", "d"],
                                 ['q"', "b\\", "c", "d"], ["a\nb", "c", "d", "e"]])
def test_batch_lines_write_each_request_id_as_its_json_string(ids):
    """Ids that need no escape are encoded together; any other one is each id's own JSON text."""
    fmt = LineFormat("m", "1", "stable", FEATURES)
    feeds = {"X": np.arange(16, dtype=np.float32).reshape(4, 4)}
    lines = fmt.batch(ids, [1.0] * 4, 1764500000.0, feeds, None, {"y": np.arange(4)})
    assert [json.loads(line)["request_id"] for line in lines] == ids
    for i, line in enumerate(lines):
        assert b'"request_id":' + jsonfast.dumps(ids[i]) + b',' in line
