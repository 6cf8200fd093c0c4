"""Rows of a JSON request as model feeds: objects of `feature: value`, or
lists of values for a model with one input.

/predict, MLflow's scoring formats and KServe v1 all come down to these two
shapes; missing values follow mlship.model.feeds' rule in both.
"""

from __future__ import annotations

import operator
from typing import Annotated, Any, Union

import numpy as np

from mlship.data.tables import Table, column_from_values
from mlship.errors import InvalidInputError
from mlship.model.features import request_fields
from mlship.model.feeds import feeds_from_table
from mlship.model.signature import Signature
from mlship.predlog.entries import SentRows
from mlship.serve import protocol
from mlship.serve.errors import RequestError

Feeds = dict[str, np.ndarray]


def feature_names(signature: Signature) -> list[str]:
    """The named features a client sends: each 2-D input's named columns
    (--features, mlship.yaml, the model's metadata), otherwise the input names."""
    return request_fields(signature)


def decode_rows(rows: Any, signature: Signature, *, allow_missing: bool = False,
                where: str = "instances") -> tuple[Feeds, list[dict[str, Any]] | None]:
    """Feeds from a non-empty list of objects or of lists (`where` names it in
    errors), and the objects as sent for the log (None for lists: the log
    names their features from the feeds)."""
    if not isinstance(rows, list) or not rows:
        raise RequestError(400, f"'{where}' must be a non-empty list")
    if isinstance(rows[0], dict):
        return decode_instances(rows, signature, allow_missing=allow_missing, where=where), rows
    return decode_positional(rows, signature, allow_missing=allow_missing, where=where), None


def decode_instances(instances: list[Any], signature: Signature, *, allow_missing: bool = False,
                     where: str = "instances") -> Feeds:
    """Feeds from objects of `feature: value`; row N of an error is
    `where`[N-1]."""
    plan = protocol.plan_for(RowPlan, signature, allow_missing)
    if plan.fast:
        feeds = plan.decode(instances)
        if feeds is not None:
            return feeds
    return _decode_instances(instances, signature, allow_missing=allow_missing, where=where)


class RowPlan:
    """The short way from objects of numbers to feeds, for the usual tabular
    model (one float input whose columns are the named features).

    It takes only what it can decode exactly as the full path does: rows
    with exactly the model's features, every value a JSON number. Anything
    else (a missing or unknown feature, null, text, a bool) goes the full
    way, which answers it or names what is wrong. At start it decodes a
    made-up row both ways and is used only when they agree."""

    def __init__(self, signature: Signature, allow_missing: bool) -> None:
        self.names = feature_names(signature)
        # A row's values in the features' order, as a tuple (one lookup in C per row).
        self._values = operator.itemgetter(*self.names) if len(self.names) > 1 \
            else lambda instance, name=self.names[0] if self.names else "": (instance[name],)
        spec = signature.inputs[0]
        # Only a float input takes the short way; others (a string column: dtype "string", which
        # NumPy does not name) keep a placeholder and the full path.
        floats = spec.dtype in ("float32", "float64")
        self.input, self.dtype = spec.name, np.dtype(spec.dtype if floats else "float32")
        self.fast = False
        if len(signature.inputs) == 1 and floats and self.names:
            probe = [{n: 0.5 + i for i, n in enumerate(self.names)}, {n: -float(i) for i, n in enumerate(self.names)}]
            try:
                want = _decode_instances(probe, signature, allow_missing=allow_missing, where="probe")
            except RequestError:
                return
            self.fast = True
            got = self.decode(probe)
            self.fast = got is not None and set(got) == set(want) and all(
                got[n].dtype == want[n].dtype and np.array_equal(got[n], want[n]) for n in want)

    def decode(self, instances: list[Any]) -> Feeds | None:
        """Feeds, or None when these rows need the full path."""
        count, values = len(self.names), self._values
        rows, kinds = [], set()
        for instance in instances:
            if type(instance) is not dict or len(instance) != count:
                return None
            try:
                row = values(instance)
            except KeyError:
                return None
            rows.append(row)
            kinds.update(map(type, row))
        if not kinds <= _NUMBERS:
            return None
        if int in kinds and not all(-_EXACT < v < _EXACT for row in rows for v in row if type(v) is int):
            return None
        return {self.input: np.array(rows, dtype=self.dtype)}


_NUMBERS = {float, int}
_EXACT = 2**53  # integers a float64 holds exactly, as the full path's columns do


class BodyPlan:
    """The shortest way for the usual body, `{"instances": [{feature: number,
    ...}, ...]}` (/predict and KServe v1): decoded by msgspec straight from
    its bytes into typed rows, with no dict per row and no type check in
    Python (~1.7 us less a one-row request than JSON parsing then RowPlan).

    It takes exactly what RowPlan takes: the model's features and nothing
    else in each row, every value a JSON number (an integer within 2**53),
    and no other key in the body. `decode` returns None for anything else
    (a bool, null, text, a missing or unknown feature or key, an empty
    list, bad JSON), which goes the full way: the answer and every error
    are the full way's. Without msgspec (it comes with the `serve` extra)
    it takes nothing. `decode_sent` keeps each row's JSON text as sent as
    well, for the prediction log (SentRows)."""

    def __init__(self, signature: Signature, allow_missing: bool) -> None:
        rows = protocol.plan_for(RowPlan, signature, allow_missing)
        self.names, self.input, self.dtype = tuple(rows.names), rows.input, rows.dtype
        self._decoder: Any = None
        if not rows.fast:
            return
        try:
            import msgspec
        except ImportError:  # pragma: no cover - the serve extra brings it
            return
        exact = Annotated[int, msgspec.Meta(gt=-_EXACT, lt=_EXACT)]
        fields = [(f"f{i}", Union[exact, float]) for i in range(len(self.names))]
        try:
            row = msgspec.defstruct("Row", fields, rename={f"f{i}": n for i, n in enumerate(self.names)},
                                    forbid_unknown_fields=True)
            body = msgspec.defstruct("Body", [("instances", list[row])], forbid_unknown_fields=True)
            texts = msgspec.defstruct("Texts", [("instances", list[msgspec.Raw])], forbid_unknown_fields=True)
            self._decoder = msgspec.json.Decoder(body)
            self._texts = msgspec.json.Decoder(texts)
        except Exception:  # names msgspec cannot take (two alike): the full way decides
            self._decoder = None
            return
        self._errors = msgspec.MsgspecError
        self._astuple = msgspec.structs.astuple

    def decode(self, raw: bytes) -> tuple[Feeds, list[tuple[Any, ...]]] | None:
        """Feeds and each row's values in the features' order, or None."""
        if self._decoder is None:
            return None
        try:
            rows = self._decoder.decode(raw).instances
        except self._errors:
            return None
        values = list(map(self._astuple, rows))
        return (self._feeds(values), values) if values else None

    def decode_sent(self, raw: bytes) -> tuple[Feeds, SentRows] | None:
        """`decode`, keeping each row's JSON text as sent too (for the log)."""
        decoded = self.decode(raw)
        if decoded is None:
            return None
        feeds, values = decoded
        start = raw.find(b"[") + 1
        if len(values) == 1 and raw.find(b"[", start) < 0:
            # One row and the body's only "[" (decoded above: no other key than "instances", only
            # numbers in the row): the row's text is what is between it and the last "]".
            return feeds, SentRows(values, self.names, [raw[start:raw.rindex(b"]")].strip()])
        try:
            texts = self._texts.decode(raw).instances
        except self._errors:
            return None
        return feeds, SentRows(values, self.names, list(map(bytes, texts)))

    def _feeds(self, values: list[tuple[Any, ...]]) -> Feeds:
        return {self.input: np.array(values, dtype=self.dtype)}


def _decode_instances(instances: list[Any], signature: Signature, *, allow_missing: bool = False,
                      where: str = "instances") -> Feeds:
    names = feature_names(signature)
    known = set(names)
    for i, instance in enumerate(instances):
        if not isinstance(instance, dict):
            raise RequestError(400, f"{where}[{i}] must be an object of feature: value, like {where}[0]")
        unknown = [k for k in instance if k not in known]
        if unknown:
            raise RequestError(400, f"{where}[{i}]: unknown feature {unknown[0]!r}; the model takes "
                                    f"{_preview(names)}")
        missing = [n for n in names if n not in instance]
        if missing:
            raise RequestError(400, f"{where}[{i}]: missing feature{'s' if len(missing) > 1 else ''} "
                                    f"{', '.join(map(repr, missing[:5]))}{' …' if len(missing) > 5 else ''}")
    table = Table("request", {n: _column(instances, n) for n in names})
    try:
        return feeds_from_table(table, signature, allow_missing=allow_missing)
    except InvalidInputError as exc:
        raise RequestError(400, exc.message.removeprefix("request: ")) from None


def decode_positional(rows: list[Any], signature: Signature, *, allow_missing: bool = False,
                      where: str = "instances") -> Feeds:
    """Feeds from rows of values in the one input's order (MLflow's and
    TF Serving's tensor rows): row i is the input's slice i."""
    if len(signature.inputs) != 1:
        names = ", ".join(s.name for s in signature.inputs)
        raise RequestError(400, f"'{where}' as lists needs a model with one input; this one takes {names}: "
                                f"send objects of input: value")
    if any(isinstance(row, dict) for row in rows):
        raise RequestError(400, f"'{where}' mixes lists and objects; send one kind")
    return decode_tensors({signature.inputs[0].name: rows}, signature, allow_missing=allow_missing, where=where)


def decode_tensors(tensors: dict[str, Any], signature: Signature, *, allow_missing: bool = False,
                   where: str = "inputs") -> Feeds:
    """Feeds from whole tensors by input name (nested lists, batch first),
    checked as OIP tensors of the model's datatypes are."""
    specs = {s.name: s for s in signature.inputs}
    body = []
    for name, data in tensors.items():
        shape = _regular_shape(data)
        if shape is None:
            raise RequestError(400, f"'{where}': input {name!r} has rows of different lengths")
        spec = specs.get(name)
        datatype = protocol.DATATYPES.get(spec.dtype or "") if spec is not None else None
        body.append({"name": name, "shape": shape, "datatype": datatype, "data": data})
    return protocol.decode_inputs({"inputs": body}, signature, allow_missing=allow_missing)


def _regular_shape(data: Any) -> list[int] | None:
    """The shape of nested lists, None when ragged (NumPy would keep the
    short rows as list objects rather than refuse them)."""
    try:
        array = np.asarray(data, dtype=object)
    except ValueError:
        return None
    if any(isinstance(v, list) for v in array.flat):
        return None
    return list(array.shape)


def _column(instances: list[dict[str, Any]], name: str) -> np.ndarray:
    try:
        return column_from_values([inst[name] for inst in instances], "request", name)
    except InvalidInputError as exc:
        raise RequestError(400, exc.message.removeprefix("request: ")) from None


def _preview(names: list[str]) -> str:
    return ", ".join(names[:8]) + (f", … ({len(names)} in all)" if len(names) > 8 else "")
