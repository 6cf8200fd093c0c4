"""Columns between pyarrow and NumPy through their buffers.

pyarrow's own conversions (`Array.to_numpy`, `pa.array`, `pa.table`) import
pandas when it is installed, ~0.5 s per process that batch scoring and drift
would spend before their first row; fixed-width numbers and booleans need no
more than their buffers, so these go without it. Anything else (text, lists,
dates) takes pyarrow's general path.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mlship.data.tables import column_from_values


def arrow_column(array: Any) -> np.ndarray:
    """A pyarrow array as a column: numbers stay numbers (nulls NaN, booleans
    0/1 as float64), lists 2-D, the rest text. Numbers without nulls are a
    read-only view of the array's buffer; with nulls, one copy."""
    import pyarrow as pa

    if isinstance(array, pa.ChunkedArray):
        array = array.chunk(0) if array.num_chunks == 1 else array.combine_chunks()
    kind = array.type
    if pa.types.is_floating(kind) or pa.types.is_integer(kind) or pa.types.is_boolean(kind):
        values = _numbers(array)
        if array.null_count == 0 and not pa.types.is_boolean(kind):
            return values
        values = values.astype(np.float64)
        if array.null_count:
            values[~_bits(array.buffers()[0], array.offset, len(array))] = np.nan
        return values
    if pa.types.is_dictionary(kind):
        return _decoded(array)
    if pa.types.is_list(kind) or pa.types.is_fixed_size_list(kind):
        return column_from_values(array.to_pylist(), "", "")
    return np.array(array.to_pylist(), dtype=object)


def _decoded(array: Any) -> np.ndarray:
    """A dictionary-encoded array (Parquet's text categories) as its values: the dictionary
    converted once and taken by index (to_pylist makes a scalar per row, ~1 µs each)."""
    values = arrow_column(array.dictionary)
    if values.ndim != 1 or values.dtype.kind not in "iufO":
        return np.array(array.to_pylist(), dtype=object)
    codes, valid = _indices(array)
    if not len(values):  # every value null
        return np.full(len(array), None, dtype=object)
    if valid is not None:
        codes = np.where(valid, codes, 0)  # a null's index may be anything
    out = values[codes]
    if valid is not None:
        out = out.astype(object if out.dtype.kind == "O" else np.float64)
        out[~valid] = None if out.dtype.kind == "O" else np.nan
    return out


def dictionary_codes(array: Any) -> tuple[np.ndarray, list[str]] | None:
    """A dictionary-encoded text array as (codes, categories): each row's index into
    `categories`, -1 where null; None for any other array. Counting codes (np.bincount) is
    ~50x cheaper than counting the decoded texts."""
    import pyarrow as pa

    if isinstance(array, pa.ChunkedArray):
        if array.num_chunks != 1:
            return None
        array = array.chunk(0)
    kind = array.type
    if not pa.types.is_dictionary(kind) or not (pa.types.is_string(kind.value_type)
                                                or pa.types.is_large_string(kind.value_type)):
        return None
    codes, valid = _indices(array)
    if valid is not None:
        codes[~valid] = -1
    return codes, array.dictionary.to_pylist()


def _indices(array: Any) -> tuple[np.ndarray, np.ndarray | None]:
    """A dictionary array's indices (a null's may be anything) and, when it has nulls, which rows are valid."""
    codes = _numbers(array.indices).astype(np.intp)
    valid = _bits(array.indices.buffers()[0], array.indices.offset, len(array)) if array.null_count else None
    return codes, valid


def arrow_array(values: np.ndarray) -> Any:
    """A 1-D NumPy column as a pyarrow array: numbers and booleans from their
    buffer (copied only when strided), other values through pyarrow's inference."""
    import pyarrow as pa

    if values.dtype.kind == "b":
        bits = np.packbits(values, bitorder="little")
        return pa.Array.from_buffers(pa.bool_(), len(values), [None, pa.py_buffer(bits)])
    if values.dtype.kind in "iuf" and values.ndim == 1 and values.dtype.byteorder in "=|":
        values = np.ascontiguousarray(values)
        return pa.Array.from_buffers(pa.from_numpy_dtype(values.dtype), len(values), [None, pa.py_buffer(values)])
    return pa.array(values.tolist() if values.dtype.kind == "O" else values)


def _numbers(array: Any) -> np.ndarray:
    """The values buffer of a fixed-width number or boolean array (null slots hold any value)."""
    data = array.buffers()[1]
    if array.type.bit_width == 1:
        return _bits(data, array.offset, len(array))
    dtype = np.dtype(array.type.to_pandas_dtype())
    if data is None:  # every value null
        return np.zeros(len(array), dtype)
    return np.frombuffer(data, dtype=dtype, count=len(array), offset=array.offset * dtype.itemsize)


def _bits(buffer: Any, offset: int, length: int) -> np.ndarray:
    """A validity or boolean bitmap (least significant bit first) as booleans."""
    if buffer is None:
        return np.ones(length, dtype=bool)
    bits = np.unpackbits(np.frombuffer(buffer, dtype=np.uint8), bitorder="little")
    return bits[offset:offset + length].astype(bool)


def steady_memory_pool() -> None:
    """Have pyarrow allocate from jemalloc in this process (Linux, where its
    wheels include it), unless ARROW_DEFAULT_MEMORY_POOL already chooses.

    A batch job allocates and frees buffers of the same sizes chunk after
    chunk. pyarrow's default pool (mimalloc) hands freed memory back, and the
    kernel zeroes it again, in 2 MB huge pages, when the next chunk needs it:
    ~17% of `mlship predict`'s CPU on 1M rows x 31 columns (perf:
    clear_page_erms under mi_page_free_list_extend), ~1% with jemalloc. Only
    the environment variable reaches the pool the C++ readers use
    (`pa.set_memory_pool` changes Python's default only), and it is read when
    pyarrow is imported: later calls change nothing."""
    import os
    import sys

    if sys.platform.startswith("linux") and "pyarrow" not in sys.modules:
        os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "jemalloc")
