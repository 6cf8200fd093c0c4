"""The JSON bodies /predict takes: mlship's `instances` and MLflow's scoring
formats, so an MLflow client or curl recipe moves over unchanged.

    {"instances": [{"f": 1, ...}, ...]}          objects, or lists for a one-input model
    {"dataframe_split": {"columns": [...], "data": [[...], ...]}}
    {"dataframe_records": [{"f": 1, ...}, ...]}
    {"inputs": [[...], ...]}                     rows for a one-input model
    {"inputs": {"f": [1, 2, ...], ...}}          columns, by feature or input name
    {"inputs": {"X": [[...], ...]}}              whole tensors by input name

Exactly one of them per body, as MLflow requires. Everything else in the
body (MLflow's `params`, say) is ignored.
"""

from __future__ import annotations

from typing import Any

from mlship.model.signature import Signature
from mlship.serve.errors import RequestError
from mlship.serve.instances import Feeds, decode_instances, decode_rows, decode_tensors, feature_names

FORMATS = ("instances", "dataframe_split", "dataframe_records", "inputs")


def decode_predict(body: Any, signature: Signature, *,
                   allow_missing: bool = False) -> tuple[Feeds, list[dict[str, Any]] | None]:
    """Feeds and, when the body named its features row by row, the rows for the log."""
    present = [key for key in FORMATS if key in body] if isinstance(body, dict) else []
    if len(present) != 1:
        has = f"; it has {', '.join(present)}, send one" if present else ""
        raise RequestError(400, "request body must be a JSON object with a non-empty 'instances' list, or one of "
                                f"MLflow's 'dataframe_split', 'dataframe_records', 'inputs'{has}")
    key = present[0]
    value = body[key]
    if key == "dataframe_split":
        rows = _split_records(value)
        return decode_instances(rows, signature, allow_missing=allow_missing, where="dataframe_split.data"), rows
    if key == "dataframe_records":
        if not isinstance(value, list) or not value:
            raise RequestError(400, "'dataframe_records' must be a non-empty list of objects")
        return decode_instances(value, signature, allow_missing=allow_missing, where=key), value
    if key == "inputs" and isinstance(value, dict):
        if _names_inputs(value, signature):
            return decode_tensors(value, signature, allow_missing=allow_missing), None
        rows = _column_records(value)
        return decode_instances(rows, signature, allow_missing=allow_missing, where="inputs"), rows
    return decode_rows(value, signature, allow_missing=allow_missing, where=key)


def _names_inputs(value: dict[str, Any], signature: Signature) -> bool:
    """Whether `inputs` holds whole tensors by input name (MLflow's named
    tensors) rather than columns by the features a client sends."""
    inputs = {s.name for s in signature.inputs}
    return set(value) == inputs and inputs != set(feature_names(signature))


def _split_records(split: Any) -> list[dict[str, Any]]:
    """pandas' "split" orientation as one object per row (`index` is dropped)."""
    if not isinstance(split, dict) or not isinstance(split.get("columns"), list) \
            or not isinstance(split.get("data"), list) or not split["data"]:
        raise RequestError(400, "'dataframe_split' must be an object with a 'columns' list and a non-empty "
                                "'data' list of rows")
    columns = split["columns"]
    if len(set(map(str, columns))) != len(columns) or not all(isinstance(c, str) for c in columns):
        raise RequestError(400, "'dataframe_split.columns' must be distinct strings")
    for i, row in enumerate(split["data"]):
        if not isinstance(row, list) or len(row) != len(columns):
            raise RequestError(400, f"dataframe_split.data[{i}] must be a list of {len(columns)} values, one per "
                                    f"column")
    return [dict(zip(columns, row)) for row in split["data"]]


def _column_records(columns: dict[str, Any]) -> list[dict[str, Any]]:
    """MLflow's columnar `inputs` ({name: [value per row]}) as one object per row."""
    lengths = {name: len(values) if isinstance(values, list) else -1 for name, values in columns.items()}
    if not lengths or any(n <= 0 for n in lengths.values()) or len(set(lengths.values())) != 1:
        raise RequestError(400, "'inputs' as an object must map each feature or input to a non-empty list, "
                                f"all of one length; got lengths {dict(list(lengths.items())[:8])}")
    rows = next(iter(lengths.values()))
    return [{name: values[i] for name, values in columns.items()} for i in range(rows)]
