"""Log lines written on the request path (LineFormat) are the lines the
writer makes from a LogEntry, byte for byte; what LineFormat does not take
goes the LogEntry way."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mlship.predlog.entries import LineFormat, LogEntry
from mlship.predlog.schema import PredictionRecord

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
