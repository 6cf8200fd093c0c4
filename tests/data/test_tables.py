"""Reading data files: formats, and errors naming file, line and column."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mlship.data.tables import NPY_COLUMN, read_table
from mlship.errors import InvalidInputError


def test_csv_numbers_text_and_missing_values(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("a,b,c\n1,x,\n2.5,y,3\n")
    table = read_table(path)
    assert table.n_rows == 2
    assert table.column("a").dtype == np.float64 and table.column("a")[1] == 2.5
    assert list(table.column("b")) == ["x", "y"]
    assert np.isnan(table.column("c")[0])


def test_jsonl_scalars_and_lists(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps({"x": [1, 2], "k": "a"}) + "\n\n" + json.dumps({"x": [3, 4], "k": "b"}) + "\n")
    table = read_table(path)
    assert table.column("x").shape == (2, 2)
    assert list(table.column("k")) == ["a", "b"]


def test_parquet(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    path = tmp_path / "d.parquet"
    pq.write_table(pa.table({"a": [1, 2, 3], "s": ["x", "y", "z"]}), path)
    table = read_table(path)
    assert table.column("a").tolist() == [1.0, 2.0, 3.0]
    assert table.column("s").tolist() == ["x", "y", "z"]


def test_npy_is_one_matrix_column(tmp_path):
    path = tmp_path / "d.npy"
    np.save(path, np.ones((4, 3), dtype=np.float32))
    assert read_table(path).column(NPY_COLUMN).shape == (4, 3)


@pytest.mark.parametrize("name,text,expected", [
    ("d.csv", "a,b\n1,2\n3\n", "d.csv:3: expected 2 fields, found 1"),
    ("d.csv", "a,a\n1,2\n", "column 'a' appears twice"),
    ("d.csv", "a,b\n", "has no rows"),
    ("d.csv", "", "the file is empty"),
    ("d.jsonl", '{"a": 1}\n{"a": \n', "d.jsonl:2: invalid JSON"),
    ("d.jsonl", '[1, 2]\n', "d.jsonl:1: each line must be a JSON object"),
    ("d.xlsx", "whatever", "unknown data format '.xlsx'"),
])
def test_bad_files_name_where(tmp_path, name, text, expected):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(InvalidInputError) as info:
        read_table(path)
    assert expected in info.value.one_line()


def test_missing_file(tmp_path):
    with pytest.raises(InvalidInputError, match="data file not found"):
        read_table(tmp_path / "nope.csv")
