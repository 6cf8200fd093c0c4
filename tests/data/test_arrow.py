"""Columns between pyarrow and NumPy through buffers (mlship/data/arrow.py):
the same values pyarrow's own conversions give, without importing pandas."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pyarrow as pa
import pytest

from mlship.data.arrow import arrow_array, arrow_column

ARRAYS = {
    "floats with a null": pa.array([1.5, None, 3.0]),
    "int32": pa.array([1, 2, 3], pa.int32()),
    "ints with a null": pa.array([1, None, 3]),
    "booleans with a null": pa.array([True, False, None, True]),
    "booleans": pa.array([True, False, True]),
    "all null": pa.array([None, None], pa.float64()),
    "sliced floats": pa.array(np.arange(20, dtype=np.float32)).slice(3, 9),
    "sliced booleans": pa.array([True, None] * 10).slice(5, 11),
    "sliced ints with nulls": pa.array([1, None, 3, 4, None, 6, 7, 8, 9, 10]).slice(1, 7),
    "chunked": pa.chunked_array([[1.0, None], [2.0]]),
    "uint8": pa.array([1, 2], pa.uint8()),
    "float16": pa.array([0.5], pa.float16()),
    "text": pa.array(["a", None, "c"]),
}


@pytest.mark.parametrize("name", ARRAYS)
def test_arrow_column_equals_pyarrow_to_numpy(name):
    array = ARRAYS[name]
    want = array.to_numpy(zero_copy_only=False)
    if array.null_count and want.dtype.kind in "iufb" or pa.types.is_boolean(array.type):
        want = want.astype(np.float64)  # the column rule: nulls NaN, booleans 0/1
    got = arrow_column(array)
    assert got.dtype == want.dtype
    if want.dtype.kind == "O":
        assert got.tolist() == want.tolist()
    else:
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("values", [np.arange(5, dtype=np.int64), np.linspace(0, 1, 7, dtype=np.float32),
                                    np.array([True, False, True]), np.arange(12.0).reshape(3, 4)[:, 1],
                                    np.array(["x", None, "z"], dtype=object)])
def test_arrow_array_round_trips(values):
    array = arrow_array(values)
    assert array.to_pylist() == values.tolist()
    assert len(array) == len(values)


def test_reading_and_writing_numbers_imports_no_pandas():
    code = ("import sys, numpy as np, pyarrow as pa\n"
            "from mlship.data.arrow import arrow_array, arrow_column\n"
            "column = arrow_column(pa.chunked_array([arrow_array(np.arange(9.0))]))\n"
            "pa.Table.from_arrays([arrow_array(column), arrow_array(column > 4)], names=['x', 'big'])\n"
            "print('pandas' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


@pytest.mark.parametrize("array", [
    pa.array(["b", "a", None, "b"]).dictionary_encode(),
    pa.DictionaryArray.from_arrays(pa.array([1, 0, None, 1], pa.int32()), pa.array(["x", "y"])).slice(1, 3),
    pa.DictionaryArray.from_arrays(pa.array([0, 1, 1], pa.int8()), pa.array([2.5, 7.0])),
    pa.DictionaryArray.from_arrays(pa.array([None, None], pa.int32()), pa.array([], pa.string())),
])
def test_dictionary_arrays_decode_to_their_values(array):
    got = arrow_column(array)
    want = array.to_pylist()
    assert [None if isinstance(v, float) and v != v else v for v in got.tolist()] == want


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="jemalloc is chosen on Linux only")
@pytest.mark.parametrize("chosen,expected", [(None, "jemalloc"), ("system", "system")])
def test_a_batch_job_allocates_from_jemalloc_unless_the_environment_chooses(chosen, expected):
    import os

    env = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}
    if chosen:
        env["ARROW_DEFAULT_MEMORY_POOL"] = chosen
    code = ("from mlship.data.arrow import steady_memory_pool; steady_memory_pool(); import pyarrow as pa, "
            "pyarrow.parquet; steady_memory_pool(); print(pa.default_memory_pool().backend_name)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert out.stdout.split() == [expected] and out.stderr == ""
