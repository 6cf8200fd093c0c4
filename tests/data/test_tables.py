"""Reading data files: formats, and errors naming file, line and column.

The characterisation tables below hold what `read_table` (a whole sample) and
`open_table` (chunks of 2 rows) returned for every input in tests/data/inputs.py
before the two readers became one (issue 16): each column's dtype, shape and
cells, or the one-line error. They differ where the callers want them to
(CSV whole numbers stay int64 in chunks and are float64 in a sample; a sample's
CSV goes through the csv module, whose float() reads " 1" and "1_000"), and
they must keep doing so.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from mlship.data.chunks import open_table, read_table
from mlship.data.tables import NPY_COLUMN, expand_paths
from mlship.errors import InvalidInputError
from tests.data.inputs import INPUTS, chunk_outcomes, describe, outcome, write_input


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


# -- characterisation: read_table and open_table on every input --------------------------

inf = float("inf")

# read_table(path): the whole file, typed as a sample.
WHOLE = {'quoted.csv': {'a': ('<f8', (2,), [1.0, 2.0]), 'b': ('|O', (2,), ['x,y', 'he said "hi"'])},
 'newline.csv': {'a': ('<f8', (2,), [1.0, 2.0]), 'b': ('|O', (2,), ['two\nlines', 'z'])},
 'empty-cells.csv': {'a': ('<f8', (3,), [1.0, 'nan', 3.0]),
                     'b': ('<f8', (3,), ['nan', 2.0, 4.0]),
                     'c': ('|O', (3,), ['x', '', 'y'])},
 'na.csv': {'a': ('|O', (3,), ['1', 'n/a', '3'])},
 'ints.csv': {'a': ('<f8', (2,), [1.0, 2.0]), 'b': ('<f8', (2,), [1.5, 2.0])},
 'looks-numeric.csv': {'id': ('<f8', (2,), [123.0, 7.0]), 'z': ('<f8', (2,), [1000.0, inf])},
 'spaces.csv': {'a': ('<f8', (2,), [1.0, 2.0])},
 'underscore.csv': {'a': ('<f8', (2,), [1000.0, 2.0])},
 'bom.csv': {'a': ('<f8', (1,), [1.0]), 'b': ('<f8', (1,), [2.0])},
 'tabs.tsv': {'a': ('<f8', (2,), [1.0, 2.0]), 'b': ('|O', (2,), ['x y', 'z'])},
 'blank-line.csv': {'a': ('<f8', (2,), [1.0, 3.0]), 'b': ('<f8', (2,), [2.0, 4.0])},
 'crlf.csv': {'a': ('<f8', (2,), [1.0, 3.0]), 'b': ('<f8', (2,), [2.0, 4.0])},
 'all-empty.csv': {'a': ('<f8', (2,), ['nan', 'nan']), 'b': ('<f8', (2,), [1.0, 2.0])},
 'words.csv': {'a': ('|O', (2,), ['true', 'false'])},
 'nan-text.csv': {'a': ('<f8', (2,), ['nan', 1.0])},
 'signs.csv': {'a': ('<f8', (2,), [-1.0, 2.0])},
 'past-int64.csv': {'a': ('<f8', (2,), [1e+20, 1.0])},
 'big-field.csv': {'a': ('<f8', (2,), [1.0, 2.0]), 'note': ('|O', (2,), ['nnnnn...(300000)', 'short'])},
 'short-row.csv': ('error',
                   'InvalidInputError',
                   'short-row.csv:3: expected 2 fields, found 1. Check for unquoted delimiters or a truncated '
                   'line'),
 'long-row.csv': ('error',
                  'InvalidInputError',
                  'long-row.csv:2: expected 2 fields, found 3. Check for unquoted delimiters or a truncated '
                  'line'),
 'no-name.csv': ('error', 'InvalidInputError', 'no-name.csv:1: a column has an empty name'),
 'header-only.csv': ('error',
                     'InvalidInputError',
                     'header-only.csv: the file has no rows. Give a sample with at least one row'),
 'nothing.csv': ('error', 'InvalidInputError', 'nothing.csv: the file is empty'),
 'latin1.csv': ('error',
                'InvalidInputError',
                "latin1.csv: cannot read csv data: 'utf-8' codec can't decode byte 0xe9 in position 6: invalid "
                'continuation byte'),
 'unclosed-quote.csv': {'a': ('<f8', (1,), [1.0]), 'b': ('|O', (1,), ['open\n2,3\n'])},
 'nested.jsonl': {'a': ('<f8', (3,), [1.0, 2.5, 'nan']),
                  'b': ('|O', (3,), [{'x': 1}, [1], None]),
                  'c': ('|O', (3,), [None, 's', 3]),
                  'd': ('|O', (3,), [None, True, None])},
 'ints.jsonl': {'a': ('<i8', (3,), [1, 2, 3])},
 'lists.jsonl': {'x': ('<f8', (3, 2), [1.0, 2.0, 3.0, 4.0, 5.0, 6.0])},
 'ragged.jsonl': ('error', 'InvalidInputError', "ragged.jsonl: column 'x' holds lists of different lengths"),
 'past-int64.jsonl': {'a': ('|O', (2,), [1, 100000000000000000000])},
 'keys.jsonl': {'a': ('<f8', (3,), [1.0, 'nan', 'nan']),
                'b': ('<f8', (3,), ['nan', 2.0, 'nan']),
                'c': ('<f8', (3,), ['nan', 'nan', 3.0])},
 'bools.jsonl': {'a': ('|O', (2,), [True, False])},
 'nan.jsonl': {'a': ('<f8', (2,), ['nan', 1.0])},
 'bad-second.jsonl': ('error', 'InvalidInputError', 'bad-second.jsonl:2: invalid JSON: Expecting value'),
 'array-line.jsonl': ('error', 'InvalidInputError', 'array-line.jsonl:1: each line must be a JSON object'),
 'empty.jsonl': ('error',
                 'InvalidInputError',
                 'empty.jsonl: the file has no rows. Give a sample with at least one row'),
 'no-keys.jsonl': ('error',
                  'InvalidInputError',
                  'no-keys.jsonl: the file has no rows. Give a sample with at least one row'),
 'latin1.jsonl': ('error',
                  'InvalidInputError',
                  "latin1.jsonl: cannot read jsonl data: 'utf-8' codec can't decode byte 0xe9 in position 7: "
                  'invalid continuation byte'),
 'records.ndjson': {'a': ('<i8', (2,), [1, 2]), 's': ('|O', (2,), ['x', 'y'])},
 'mixed.parquet': {'i': ('<f8', (3,), [1.0, 2.0, 3.0]),
                   'f': ('<f8', (3,), [1.5, 'nan', 2.0]),
                   's': ('|O', (3,), ['x', None, 'z']),
                   'b': ('<f8', (3,), [1.0, 0.0, 1.0])},
 'int-nulls.parquet': {'i': ('<f8', (3,), [1.0, 'nan', 3.0])},
 'float32.parquet': {'g': ('<f4', (3,), [1.5, 2.5, 3.5])},
 'lists.parquet': {'l': ('<f8', (3, 2), [1.0, 2.0, 3.0, 4.0, 5.0, 6.0])},
 'dates.parquet': {'d': ('|O', (3,), ['2024-01-01', '2024-01-02', '2024-01-03'])},
 'categories.parquet': {'d': ('|O', (3,), ['a', 'b', 'a'])},
 'uint8.parquet': {'u': ('<f8', (3,), [1.0, 2.0, 3.0])},
 'no-rows.parquet': ('error',
                     'InvalidInputError',
                     'no-rows.parquet: the file has no rows. Give a sample with at least one row'),
 'junk.parquet': ('error',
                  'InvalidInputError',
                  "junk.parquet: cannot read parquet data: Could not open Parquet input source 'junk.parquet': "
                  'Parquet magic bytes not found in footer. Either the file is corrupted or this is not a '
                  'parquet file'),
 'matrix.npy': {'__array__': ('<f4', (3, 2), [0.0, 1.0, 2.0, 3.0, 4.0, 5.0])},
 'objects.npy': ('error',
                 'InvalidInputError',
                 'objects.npy: cannot read npy data: Object arrays cannot be loaded when allow_pickle=False'),
 'named.npz': {'x': ('<f8', (3, 2), [1.0, 1.0, 1.0, 1.0, 1.0, 1.0]), 'y': ('<i8', (3,), [0, 1, 2])},
 'uneven.npz': ('error', 'InvalidInputError', 'uneven.npz: arrays have different numbers of rows [2, 3]')}

# open_table(path, batch_rows=2): chunks, typed chunk by chunk.
CHUNKS = {'quoted.csv': [{'a': ('<i8', (2,), [1, 2]), 'b': ('|O', (2,), ['x,y', 'he said "hi"'])}],
 'newline.csv': [{'a': ('<i8', (2,), [1, 2]), 'b': ('|O', (2,), ['two\nlines', 'z'])}],
 'empty-cells.csv': [{'a': ('<f8', (2,), [1.0, 'nan']),
                      'b': ('<f8', (2,), ['nan', 2.0]),
                      'c': ('|O', (2,), ['x', None])},
                     {'a': ('<i8', (1,), [3]), 'b': ('<i8', (1,), [4]), 'c': ('|O', (1,), ['y'])}],
 'na.csv': [{'a': ('|O', (2,), ['1', 'n/a'])}, {'a': ('<i8', (1,), [3])}],
 'ints.csv': [{'a': ('<i8', (2,), [1, 2]), 'b': ('<f8', (2,), [1.5, 2.0])}],
 'looks-numeric.csv': [{'id': ('<i8', (2,), [123, 7]), 'z': ('<f8', (2,), [1000.0, inf])}],
 'spaces.csv': [{'a': ('|O', (2,), [' 1', '2 '])}],
 'underscore.csv': [{'a': ('|O', (2,), ['1_000', '2'])}],
 'bom.csv': [{'a': ('<i8', (1,), [1]), 'b': ('<i8', (1,), [2])}],
 'tabs.tsv': [{'a': ('<i8', (2,), [1, 2]), 'b': ('|O', (2,), ['x y', 'z'])}],
 'blank-line.csv': [{'a': ('<i8', (2,), [1, 3]), 'b': ('<i8', (2,), [2, 4])}],
 'crlf.csv': [{'a': ('<i8', (2,), [1, 3]), 'b': ('<i8', (2,), [2, 4])}],
 'all-empty.csv': [{'a': ('<f8', (2,), ['nan', 'nan']), 'b': ('<i8', (2,), [1, 2])}],
 'words.csv': [{'a': ('|O', (2,), ['true', 'false'])}],
 'nan-text.csv': [{'a': ('<f8', (2,), ['nan', 1.0])}],
 'signs.csv': [{'a': ('<f8', (2,), [-1.0, 2.0])}],
 'past-int64.csv': [{'a': ('<f8', (2,), [1e+20, 1.0])}],
 'big-field.csv': [{'a': ('<i8', (2,), [1, 2]), 'note': ('|O', (2,), ['nnnnn...(300000)', 'short'])}],
 'short-row.csv': ('error',
                   'InvalidInputError',
                   'short-row.csv: cannot read csv data: CSV parse error: Expected 2 columns, got 1: 3'),
 'long-row.csv': ('error',
                  'InvalidInputError',
                  'long-row.csv: cannot read csv data: CSV parse error: Expected 2 columns, got 3: 1,2,3'),
 'no-name.csv': [{'a': ('<i8', (1,), [1]), '': ('<i8', (1,), [2])}],
 'header-only.csv': [],
 'nothing.csv': ('error', 'InvalidInputError', 'nothing.csv: the file is empty'),
 'latin1.csv': ('error',
                'InvalidInputError',
                "latin1.csv: cannot read csv data: 'utf-8' codec can't decode byte 0xe9 in position 6: invalid "
                'continuation byte'),
 'unclosed-quote.csv': [{'a': ('<i8', (1,), [1]), 'b': ('|O', (1,), ['open\n2,3\n'])}],
 'nested.jsonl': [{'a': ('<f8', (2,), [1.0, 2.5]),
                   'b': ('|O', (2,), [{'x': 1}, [1]]),
                   'c': ('|O', (2,), [None, 's'])},
                  {'a': ('<f8', (1,), ['nan']), 'b': ('<f8', (1,), ['nan']), 'c': ('<i8', (1,), [3])}],
 'ints.jsonl': [{'a': ('<i8', (2,), [1, 2])}, {'a': ('<i8', (1,), [3])}],
 'lists.jsonl': [{'x': ('<f8', (2, 2), [1.0, 2.0, 3.0, 4.0])}, {'x': ('<f8', (1, 2), [5.0, 6.0])}],
 'ragged.jsonl': ('error', 'InvalidInputError', "ragged.jsonl: column 'x' holds lists of different lengths"),
 'past-int64.jsonl': [{'a': ('|O', (2,), [1, 100000000000000000000])}],
 'keys.jsonl': [{'a': ('<f8', (2,), [1.0, 'nan'])}, {'a': ('<f8', (1,), ['nan'])}],
 'bools.jsonl': [{'a': ('|O', (2,), [True, False])}],
 'nan.jsonl': [{'a': ('<f8', (2,), ['nan', 1.0])}],
 'bad-second.jsonl': ('error', 'InvalidInputError', 'bad-second.jsonl:2: invalid JSON: Expecting value'),
 'array-line.jsonl': ('error', 'InvalidInputError', 'array-line.jsonl:1: each line must be a JSON object'),
 'empty.jsonl': ('error', 'InvalidInputError', 'empty.jsonl: the file is empty'),
 'no-keys.jsonl': [{}],
 'latin1.jsonl': ('error',
                  'InvalidInputError',
                  "latin1.jsonl: cannot read jsonl data: 'utf-8' codec can't decode byte 0xe9 in position 7: "
                  'invalid continuation byte'),
 'records.ndjson': [{'a': ('<i8', (2,), [1, 2]), 's': ('|O', (2,), ['x', 'y'])}],
 'mixed.parquet': [{'i': ('<i8', (2,), [1, 2]),
                    'f': ('<f8', (2,), [1.5, 'nan']),
                    's': ('|O', (2,), ['x', None]),
                    'b': ('<f8', (2,), [1.0, 0.0])},
                   {'i': ('<i8', (1,), [3]),
                    'f': ('<f8', (1,), [2.0]),
                    's': ('|O', (1,), ['z']),
                    'b': ('<f8', (1,), [1.0])}],
 'int-nulls.parquet': [{'i': ('<f8', (2,), [1.0, 'nan'])}, {'i': ('<i8', (1,), [3])}],
 'float32.parquet': [{'g': ('<f4', (2,), [1.5, 2.5])}, {'g': ('<f4', (1,), [3.5])}],
 'lists.parquet': [{'l': ('<f8', (2, 2), [1.0, 2.0, 3.0, 4.0])}, {'l': ('<f8', (1, 2), [5.0, 6.0])}],
 'dates.parquet': [{'d': ('|O', (2,), ['2024-01-01', '2024-01-02'])}, {'d': ('|O', (1,), ['2024-01-03'])}],
 'categories.parquet': [{'d': ('|O', (2,), ['a', 'b'])}, {'d': ('|O', (1,), ['a'])}],
 'uint8.parquet': [{'u': ('|u1', (2,), [1, 2])}, {'u': ('|u1', (1,), [3])}],
 'no-rows.parquet': [],
 'junk.parquet': ('error',
                  'InvalidInputError',
                  'junk.parquet: cannot read parquet data: Parquet magic bytes not found in footer. Either the '
                  'file is corrupted or this is not a parquet file'),
 'matrix.npy': [{'__array__': ('<f4', (2, 2), [0.0, 1.0, 2.0, 3.0])},
                {'__array__': ('<f4', (1, 2), [4.0, 5.0])}],
 'objects.npy': ('error',
                 'InvalidInputError',
                 "objects.npy: cannot read npy data: Array can't be memory-mapped: Python objects in dtype"),
 'named.npz': ('error', 'InvalidInputError', 'named.npz: npz files cannot be read in chunks'),
 'uneven.npz': ('error', 'InvalidInputError', 'uneven.npz: npz files cannot be read in chunks')}


@pytest.mark.parametrize("name", sorted(INPUTS))
def test_read_table_reads_every_input_as_before(tmp_path, name):
    assert outcome(lambda: describe(read_table(write_input(tmp_path, name))), tmp_path) == WHOLE[name]


@pytest.mark.parametrize("name", sorted(INPUTS))
def test_open_table_reads_every_input_as_before(tmp_path, name):
    assert chunk_outcomes([name], tmp_path)[name] == CHUNKS[name]


# Without pyarrow, CSV chunks come from the csv module: numbers float64 as in a sample, cells kept as written.
FALLBACK_SAME_AS_SAMPLE = ["quoted.csv", "newline.csv", "ints.csv", "looks-numeric.csv", "spaces.csv",
                           "underscore.csv", "bom.csv", "tabs.tsv", "crlf.csv", "all-empty.csv", "words.csv",
                           "nan-text.csv", "signs.csv", "past-int64.csv", "big-field.csv", "unclosed-quote.csv"]


def chunks_without_pyarrow(tmp_path, names: list[str]) -> dict:
    """open_table's chunks in a Python where pyarrow cannot be imported."""
    script = ("import json, sys; from pathlib import Path; sys.modules['pyarrow'] = None; "
              "from tests.data.inputs import chunk_outcomes; "
              "print(json.dumps(chunk_outcomes(sys.argv[2:], Path(sys.argv[1]))))")
    proc = subprocess.run([sys.executable, "-c", script, str(tmp_path), *names], capture_output=True, text=True,
                          cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))), timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_without_pyarrow_csv_chunks_read_as_a_sample_does(tmp_path):
    found = chunks_without_pyarrow(tmp_path, FALLBACK_SAME_AS_SAMPLE + ["empty-cells.csv", "na.csv", "header-only.csv",
                                                                        "nothing.csv", "latin1.csv"])
    for name in FALLBACK_SAME_AS_SAMPLE:  # one chunk of 2 rows at most: the sample's columns exactly
        assert found[name] == json.loads(json.dumps([WHOLE[name]])), name
    assert found["empty-cells.csv"] == json.loads(json.dumps([
        {"a": ("<f8", (2,), [1.0, "nan"]), "b": ("<f8", (2,), ["nan", 2.0]), "c": ("|O", (2,), ["x", ""])},
        {"a": ("<f8", (1,), [3.0]), "b": ("<f8", (1,), [4.0]), "c": ("|O", (1,), ["y"])}]))
    assert found["na.csv"] == json.loads(json.dumps([{"a": ("|O", (2,), ["1", "n/a"])}, {"a": ("<f8", (1,), [3.0])}]))
    assert found["header-only.csv"] == []
    for name in ("nothing.csv", "latin1.csv"):
        assert found[name] == json.loads(json.dumps(CHUNKS[name])), name


def error_of(read) -> str:
    """The one-line InvalidInputError that `read()` raises."""
    with pytest.raises(InvalidInputError) as info:
        read()
    return info.value.one_line()


def test_a_field_past_the_bound_names_file_and_line(tmp_path, monkeypatch):
    import mlship.data.tables

    monkeypatch.setattr(mlship.data.tables, "CSV_FIELD_LIMIT", 1000)
    path = tmp_path / "s.csv"
    path.write_text("a,note\n1,ok\n2," + "n" * 1001 + "\n")
    assert error_of(lambda: read_table(path)) == f"{path}:3: a field is longer than 1,000 characters"


def test_chunks_read_only_the_columns_asked_for_and_keep_text_columns_as_written(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("id,a,b\n00123,1,x\n,2,y\n007,3,z\n")
    tables = list(open_table(path, ["a", "id"], 2, text_columns=frozenset({"id"})))
    assert [list(t.columns) for t in tables] == [["a", "id"], ["a", "id"]]
    assert [t.first_row for t in tables] == [1, 3]
    assert np.concatenate([t.column("id") for t in tables]).tolist() == ["00123", None, "007"]
    assert np.concatenate([t.column("a") for t in tables]).tolist() == [1, 2, 3]


def test_a_file_named_like_a_glob_is_that_file(tmp_path):
    (tmp_path / "a[1].csv").write_text("x\n1\n")
    (tmp_path / "a1.csv").write_text("x\n2\n")
    assert expand_paths(tmp_path / "a[1].csv", {".csv"}) == [tmp_path / "a[1].csv"]
    assert expand_paths(tmp_path / "a[12].csv", {".csv"}) == [tmp_path / "a1.csv"]
    assert expand_paths(tmp_path / "nope.csv", {".csv"}) is None
    assert read_table(tmp_path / "a[1].csv").column("x").tolist() == [1.0]


# -- one reader: what open_table does since read_table became its whole-file mode --------


def test_without_pyarrow_csv_chunks_check_rows_as_a_sample_does(tmp_path):
    """The csv-module fallback used to pad short rows, cut long ones and read a blank
    line as a row of missing values; it is now the sample's reader."""
    found = chunks_without_pyarrow(tmp_path, ["blank-line.csv", "short-row.csv", "long-row.csv", "no-name.csv"])
    assert found["blank-line.csv"] == json.loads(json.dumps(
        [{"a": ("<f8", (2,), [1.0, 3.0]), "b": ("<f8", (2,), [2.0, 4.0])}]))
    assert found["short-row.csv"] == json.loads(json.dumps(WHOLE["short-row.csv"]))
    assert found["long-row.csv"] == json.loads(json.dumps(WHOLE["long-row.csv"]))
    # An unnamed column (pandas' index) is read in chunks, as pyarrow reads it; a sample refuses it.
    assert found["no-name.csv"] == json.loads(json.dumps([{"a": ("<f8", (1,), [1.0]), "": ("<f8", (1,), [2.0])}]))


@pytest.mark.parametrize("header", ["a,a", "a,b,a"])
def test_a_repeated_column_name_is_refused_in_chunks_too(tmp_path, header):
    """pyarrow raised a KeyError on a repeated name it was asked for, and silently took one of the two otherwise."""
    path = tmp_path / "d.csv"
    path.write_text(header + "\n" + ",".join(["1"] * len(header.split(","))) + "\n")
    assert error_of(lambda: list(open_table(path, ["a"]))) == f"{path}:1: column 'a' appears twice"


def test_a_scalar_npy_is_refused_in_chunks_as_in_a_sample(tmp_path):
    """open_table and count_rows raised TypeError: len() of unsized object."""
    from mlship.data.chunks import count_rows

    path = tmp_path / "s.npy"
    np.save(path, np.float32(1))
    assert count_rows(path) is None
    for read in (lambda: list(open_table(path)), lambda: read_table(path)):
        assert error_of(read) == f"{path}: the array is a scalar, expected rows"


@pytest.mark.parametrize("name,content", [("e.npy", b""), ("e.npz", b""), ("t.npy", b"\x93NUMPY")])
def test_an_empty_or_truncated_array_file_is_exit_3_not_a_crash(tmp_path, name, content):
    """read_table let numpy's EOFError through (exit 1)."""
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(InvalidInputError, match=rf"^{re.escape(str(path))}: cannot read np[yz] data: "):
        read_table(path)


def test_an_npz_scalar_is_refused(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, x=np.ones(3), s=np.float32(2))
    assert error_of(lambda: read_table(path)) == f"{path}: the array 's' is a scalar, expected rows"


def test_the_whole_file_as_one_chunk_is_typed_over_every_row(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"id": 1, "a": 1}\n{"id": 2}\n{"id": "x3", "b": [1, 2]}\n')
    chunks = list(open_table(path, batch_rows=2))
    assert [list(t.columns) for t in chunks] == [["id", "a"], ["id", "a"]]  # the first line's keys
    assert chunks[0].column("id").dtype == np.int64 and chunks[1].column("id").dtype == object
    [whole] = open_table(path, batch_rows=None)
    assert list(whole.columns) == ["id", "a", "b"]
    assert whole.column("id").tolist() == [1, 2, "x3"] and whole.column("id").dtype == object


def test_chunk_typing_or_sample_typing_is_chosen_by_sample(tmp_path):
    csv_path, pq_path = tmp_path / "d.csv", tmp_path / "d.parquet"
    csv_path.write_text("i,s\n1, 2\n3,4\n")
    pytest.importorskip("pyarrow")
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"i": [1, 3]}), pq_path)
    [chunk] = open_table(csv_path, batch_rows=None)
    [sample] = open_table(csv_path, batch_rows=None, sample=True)
    assert chunk.column("i").dtype == np.int64 and chunk.column("s").tolist() == [" 2", "4"]
    assert sample.column("i").dtype == np.float64 and sample.column("s").tolist() == [2.0, 4.0]
    assert [t.column("i").dtype for t in open_table(pq_path, batch_rows=1)] == [np.int64, np.int64]
    assert [t.column("i").dtype for t in open_table(pq_path, batch_rows=1, sample=True)] == [np.float64] * 2


def test_npz_reads_whole_and_not_in_chunks(tmp_path):
    path = write_input(tmp_path, "named.npz")
    [table] = open_table(path, batch_rows=None)
    assert table.column("x").shape == (3, 2) and table.column("y").tolist() == [0, 1, 2]
    with pytest.raises(InvalidInputError, match="npz files cannot be read in chunks"):
        list(open_table(path))


def test_a_requested_column_missing_from_the_header_is_named(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("a,b\n1,2\n")
    assert error_of(lambda: list(open_table(path, ["a", "x"], sample=True))) == f"{path}:1: no column 'x'. It has: a, b"


def test_parquet_chunks_read_through_a_buffer_smaller_than_a_page_are_the_file(tmp_path):
    """Parquet pages are read through a 64 KiB buffer: pages of MBs, chunks that end inside a
    row group, nulls and text give back the file's values exactly."""
    pytest.importorskip("pyarrow")
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(3)
    rows = 150_000
    x = rng.normal(size=rows)
    y = np.where(rng.random(rows) < 0.1, np.nan, rng.random(rows)).astype(np.float32)
    words = np.array(["a", "bb", "ccc"])[rng.integers(0, 3, rows)]
    path = tmp_path / "big.parquet"
    pq.write_table(pa.table({"x": x, "y": pa.array(y, from_pandas=True), "w": words}), path,
                   row_group_size=100_000, data_page_size=4 << 20, use_dictionary=["w"])
    assert pq.ParquetFile(path).metadata.row_group(0).column(0).total_compressed_size > 8 * (1 << 16)
    chunks = list(open_table(path, ["x", "y", "w"], 40_000))
    assert [c.n_rows for c in chunks] == [40_000, 40_000, 40_000, 30_000]
    assert [c.first_row for c in chunks] == [1, 40_001, 80_001, 120_001]
    assert np.array_equal(np.concatenate([c.column("x") for c in chunks]), x)
    assert np.array_equal(np.concatenate([c.column("y") for c in chunks]), y, equal_nan=True)
    assert np.concatenate([c.column("w") for c in chunks]).tolist() == words.tolist()


def test_reading_parquet_in_chunks_imports_no_file_systems(tmp_path):
    """pyarrow.parquet imports pyarrow's S3/GCS/Azure/HDFS bindings and ssl (~13 ms of the GIL
    before a batch job's first chunk): the streaming reader, the schema and the row count go
    without it, and read the columns ParquetFile would (a struct by its name or a dotted leaf)."""
    pytest.importorskip("pyarrow")
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "n.parquet"
    pq.write_table(pa.table({"a": [1.0, 2.0, 3.0], "s": [{"x": 1, "y": "p"}, {"x": 2, "y": "q"}, None]}), path)
    code = ("import sys; from pathlib import Path; from mlship.data.chunks import count_rows, file_columns, open_table; "
            f"p = Path({str(path)!r}); "
            "print(file_columns(p), count_rows(p), [t.column('a').tolist() for t in open_table(p, ['a'], 2)], "
            "sorted(m for m in ('pyarrow.parquet', 'pyarrow.fs', 'ssl') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "['a', 's'] 3 [[1.0, 2.0], [3.0]] []", done.stderr
    for columns in (["s", "a"], ["s.y"]):
        [chunk] = open_table(path, columns, 10)
        expected = pq.ParquetFile(path).read(columns=columns)
        assert list(chunk.columns) == expected.schema.names
        assert [chunk.column(n).tolist() for n in chunk.columns] == [c.to_pylist() for c in expected.columns]
