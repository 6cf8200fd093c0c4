"""Data files that crashed a command (exit 1) before open_table became the one
reader (issue 16): a CSV header that repeats a name, a NumPy file holding a
scalar, an empty or truncated NumPy file. Each is now exit 3 with one line
naming the file, and nothing written.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.adversarial.files import relu_model, write_csv
from tests.adversarial.test_inputs import one_line_error
from tests.support import run


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path, relu_model(tmp_path / "m.onnx", ["a", "b"])


@pytest.mark.parametrize("header", [["a", "b", "a"], ["a", "a"]])
def test_a_repeated_column_name_is_exit_3_for_predict_and_profile(project, header):
    """predict silently scored one of the two 'a' columns; profile (drift's reader) raised KeyError."""
    root, model = project
    data = write_csv(root / "d.csv", header, [[1] * len(header), [2] * len(header)])
    for args in (["predict", str(model), "--input", str(data), "--output", "o.csv"],
                 ["profile", str(data), "-o", "p.json"]):
        assert one_line_error(run(*args), 3) == f"error: {data}:1: column 'a' appears twice"
    assert sorted(p.name for p in root.iterdir()) == ["d.csv", "m.onnx"]


def test_a_scalar_npy_is_exit_3_for_predict_and_check(project):
    """predict raised TypeError: len() of unsized object."""
    root, model = project
    np.save(root / "s.npy", np.float32(1))
    for args in (["predict", str(model), "--input", "s.npy", "--output", "o.csv"],
                 ["check", str(model), "--sample", "s.npy"]):
        assert one_line_error(run(*args), 3) == "error: s.npy: the array is a scalar, expected rows"
    assert not (root / "o.csv").exists()


@pytest.mark.parametrize("content", [b"", b"\x93NUMPY"])
def test_an_empty_or_truncated_npy_sample_is_exit_3(project, content):
    """check --sample let numpy's EOFError through."""
    root, model = project
    (root / "e.npy").write_bytes(content)
    line = one_line_error(run("check", str(model), "--sample", "e.npy"), 3)
    assert line.startswith("error: e.npy: cannot read npy data: ")
