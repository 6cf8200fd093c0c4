"""Runner.run: on a CPU session it calls onnxruntime's C++ run itself, and gives
what the Python wrapper gives: the same outputs, the same refusals."""

from __future__ import annotations

import numpy as np
import pytest

from mlship.errors import InvalidInputError
from mlship.model.runner import Runner
from tests import models
from tests.support import MODEL


@pytest.fixture(scope="module")
def runner():
    made = Runner.from_path(MODEL)
    assert made._run is not made.session.run  # the short way is on for a CPU session
    return made


def outcome(run, feeds):
    try:
        return [(k, v.dtype.str, v.tobytes()) for k, v in run(feeds).items()]
    except InvalidInputError as exc:
        return exc.message


FEEDS = [
    {"X": models.sample_matrix()[0][:5].astype(np.float32)},
    {"X": np.zeros((1, 30), np.float32)},
    {},  # no input: the wrapper's message names it
    {"Y": np.zeros((1, 30), np.float32)},
    {"X": np.zeros((1, 30), np.float32), "Z": np.zeros(1)},  # an input the model does not have
    {"X": np.zeros((1, 29), np.float32)},
    {"X": np.zeros((1, 30), np.float64)},
]


@pytest.mark.parametrize("feeds", FEEDS, ids=range(len(FEEDS)))
def test_the_short_run_answers_and_refuses_as_the_wrapper_does(runner, feeds):
    wrapped = Runner.from_path(MODEL)
    wrapped._run = wrapped.session.run
    assert outcome(runner.run, feeds) == outcome(wrapped.run, feeds)


def test_a_missing_input_is_refused_naming_it(runner):
    with pytest.raises(InvalidInputError) as caught:
        runner.run({"Y": np.zeros((1, 30), np.float32)})
    assert "Required inputs (['X']) are missing" in caught.value.message
