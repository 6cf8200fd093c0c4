"""Data files the characterisation tests in test_tables.py read, by name: text, bytes or a writer."""

from __future__ import annotations

import datetime
import math
from pathlib import Path
from typing import Any, Callable

import numpy as np


def _parquet(columns: Callable[[Any], dict[str, Any]]) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.table(columns(pa)), path)
    return write


INPUTS: dict[str, str | bytes | Callable[[Path], None]] = {
    # CSV and TSV
    "quoted.csv": 'a,b\n"1","x,y"\n"2","he said ""hi"""\n',
    "newline.csv": 'a,b\n1,"two\nlines"\n2,z\n',
    "empty-cells.csv": "a,b,c\n1,,x\n,2,\n3,4,y\n",
    "na.csv": "a\n1\nn/a\n3\n",
    "ints.csv": "a,b\n1,1.5\n2,2\n",
    "looks-numeric.csv": "id,z\n00123,1e3\n007,inf\n",
    "spaces.csv": "a\n 1\n2 \n",
    "underscore.csv": "a\n1_000\n2\n",
    "bom.csv": "\ufeffa,b\n1,2\n".encode(),
    "tabs.tsv": "a\tb\n1\tx y\n2\tz\n",
    "blank-line.csv": "a,b\n1,2\n\n3,4\n",
    "crlf.csv": "a,b\r\n1,2\r\n3,4\r\n",
    "all-empty.csv": "a,b\n,1\n,2\n",
    "words.csv": "a\ntrue\nfalse\n",
    "nan-text.csv": "a\nnan\n1\n",
    "signs.csv": "a\n-1\n+2\n",
    "past-int64.csv": "a\n99999999999999999999\n1\n",
    "big-field.csv": "a,note\n1," + "n" * 300_000 + "\n2,short\n",
    "short-row.csv": "a,b\n1,2\n3\n",
    "long-row.csv": "a,b\n1,2,3\n",
    "no-name.csv": "a,\n1,2\n",
    "header-only.csv": "a,b\n",
    "nothing.csv": "",
    "latin1.csv": b"a,b\n1,\xe9\n",
    "unclosed-quote.csv": 'a,b\n1,"open\n2,3\n',
    # JSON Lines
    "nested.jsonl": '{"a": 1, "b": {"x": 1}, "c": null}\n{"a": 2.5, "b": [1], "c": "s", "d": true}\n\n'
                    '{"a": null, "b": null, "c": 3}\n',
    "ints.jsonl": '{"a": 1}\n{"a": 2}\n{"a": 3}\n',
    "lists.jsonl": '{"x": [1, 2]}\n{"x": [3, 4]}\n{"x": [5, 6]}\n',
    "ragged.jsonl": '{"x": [1, 2]}\n{"x": [3]}\n',
    "past-int64.jsonl": '{"a": 1}\n{"a": 100000000000000000000}\n',
    "keys.jsonl": '{"a": 1}\n{"b": 2}\n{"c": 3}\n',
    "bools.jsonl": '{"a": true}\n{"a": false}\n',
    "nan.jsonl": '{"a": NaN}\n{"a": 1}\n',
    "bad-second.jsonl": '{"a": 1}\n{"a": \n',
    "array-line.jsonl": "[1, 2]\n",
    "empty.jsonl": "",
    "no-keys.jsonl": "{}\n{}\n",
    "latin1.jsonl": b'{"a": "\xe9"}\n',
    "records.ndjson": '{"a": 1, "s": "x"}\n{"a": 2, "s": "y"}\n',
    # Parquet
    "mixed.parquet": _parquet(lambda pa: {"i": [1, 2, 3], "f": [1.5, None, 2.0], "s": ["x", None, "z"],
                                          "b": [True, False, True]}),
    "int-nulls.parquet": _parquet(lambda pa: {"i": pa.array([1, None, 3], pa.int64())}),
    "float32.parquet": _parquet(lambda pa: {"g": pa.array([1.5, 2.5, 3.5], pa.float32())}),
    "lists.parquet": _parquet(lambda pa: {"l": [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]}),
    "dates.parquet": _parquet(lambda pa: {"d": pa.array([datetime.date(2024, 1, d) for d in (1, 2, 3)])}),
    "categories.parquet": _parquet(lambda pa: {"d": pa.array(["a", "b", "a"]).dictionary_encode()}),
    "uint8.parquet": _parquet(lambda pa: {"u": pa.array([1, 2, 3], pa.uint8())}),
    "no-rows.parquet": _parquet(lambda pa: {"a": pa.array([], pa.int64())}),
    "junk.parquet": b"not a parquet file",
    # NumPy
    "matrix.npy": lambda p: np.save(p, np.arange(6, dtype=np.float32).reshape(3, 2)),
    "objects.npy": lambda p: np.save(p, np.array([1, "a"], dtype=object), allow_pickle=True),
    "named.npz": lambda p: np.savez(p, x=np.ones((3, 2)), y=np.arange(3)),
    "uneven.npz": lambda p: np.savez(p, x=np.ones((3, 2)), y=np.arange(2)),
}


def write_input(directory: Path, name: str) -> Path:
    """INPUTS[name] written under `directory`."""
    path = directory / name
    content = INPUTS[name]
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8")
    elif isinstance(content, bytes):
        path.write_bytes(content)
    else:
        content(path)
    return path


def plain(value: Any) -> Any:
    """A cell as a comparable literal: NaN as "nan", arrays as lists, dates as text."""
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    if isinstance(value, np.ndarray):
        return [plain(v) for v in value.tolist()]
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, (datetime.date, datetime.datetime)):
        return value.isoformat()
    if isinstance(value, str) and len(value) > 40:
        return f"{value[:5]}...({len(value)})"
    return value


def describe(table) -> dict[str, tuple[str, tuple[int, ...], list[Any]]]:
    """Each column as (dtype, shape, cells)."""
    return {name: (column.dtype.str, column.shape, [plain(v) for v in column.ravel(order="C").tolist()]
                   if column.dtype != object else [plain(v) for v in column.tolist()])
            for name, column in table.columns.items()}


def outcome(read: Callable[[], Any], directory: Path) -> Any:
    """What `read` returns, or ("error", class name, one-line message without `directory`)."""
    from mlship.errors import MlshipError

    try:
        return read()
    except MlshipError as exc:
        return ("error", type(exc).__name__, exc.one_line().replace(f"{directory}/", ""))


def chunk_outcomes(names: list[str], directory: Path, batch_rows: int = 2) -> dict[str, Any]:
    """open_table's chunks of each input, described (run in a subprocess without pyarrow too)."""
    from mlship.data.chunks import open_table

    return {name: outcome(lambda: [describe(t) for t in open_table(write_input(directory, name), batch_rows=batch_rows)],
                          directory) for name in names}
