"""The numeric sketch's bucket counts: dense (np.bincount over a narrow span) or sparse
(a dict, for values over huge ranges), the same profile JSON either way, and pieces
merged equal to one pass."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mlship.drift.sketch import NumericSketch


def sketch(values: np.ndarray, pieces: int = 1) -> NumericSketch:
    result = NumericSketch()
    for part in np.array_split(values, pieces):
        result.add(part)
    return result


def buckets(s: NumericSketch) -> dict:
    return json.loads(json.dumps(s.to_json()["buckets"]))


@pytest.mark.parametrize("wide", [False, True])
def test_pieces_merged_equal_one_pass_and_survive_json(wide):
    rng = np.random.default_rng(5)
    values = rng.normal(0, 1, 20_000)
    if wide:  # keys span more than the dense limit: the sparse store
        values = np.concatenate([values, 10.0 ** rng.uniform(-150, 150, 3000), -(10.0 ** rng.uniform(-150, 150, 3000))])
        rng.shuffle(values)
    whole = sketch(values, pieces=6)
    assert (whole.pos.sparse is not None) == wide
    left, right = sketch(values[:9000], 2), sketch(values[9000:], 3)
    left.merge(right)
    assert buckets(left) == buckets(whole)
    again = NumericSketch.from_json(json.loads(json.dumps(whole.to_json())))
    assert buckets(again) == buckets(whole)
    assert sum(c for _, c in buckets(whole)["pos"]) + sum(c for _, c in buckets(whole)["neg"]) \
        + buckets(whole)["zero"] == len(values)


def test_dense_merged_into_sparse_and_back():
    rng = np.random.default_rng(6)
    narrow, wide = rng.normal(0, 1, 5000), 10.0 ** rng.uniform(-150, 150, 5000)
    a, b = sketch(narrow), sketch(wide)
    a.merge(sketch(wide))
    b.merge(sketch(narrow))
    assert buckets(a) == buckets(b) == buckets(sketch(np.concatenate([narrow, wide])))
    values, weights = a.weighted()
    assert np.all(np.diff(values) > 0) and weights.sum() == 10_000
