"""The simple JSON endpoint: `{"instances": [{"feature": value, ...}, ...]}`."""

from __future__ import annotations

from typing import Any

import numpy as np

from mlship.data.tables import Table, column_from_values
from mlship.errors import InvalidInputError
from mlship.model.feeds import feeds_from_table
from mlship.model.signature import Signature
from mlship.serve.errors import RequestError


def feature_names(signature: Signature) -> list[str]:
    """The named features a client sends: metadata names for a single 2-D
    input, otherwise the input names."""
    if signature.feature_names and len(signature.inputs) == 1:
        return signature.feature_names
    return [s.name for s in signature.inputs]


def decode_instances(body: Any, signature: Signature, *,
                     allow_missing: bool = False) -> tuple[dict[str, np.ndarray], list[dict[str, Any]]]:
    """Feeds for the model, and the instances as sent (for the log).

    Row N of an error is instances[N-1]; missing values follow
    mlship.model.feeds' rule."""
    if not isinstance(body, dict) or not isinstance(body.get("instances"), list) or not body["instances"]:
        raise RequestError(400, "request body must be a JSON object with a non-empty 'instances' list")
    instances = body["instances"]
    names = feature_names(signature)
    known = set(names)
    for i, instance in enumerate(instances):
        if not isinstance(instance, dict):
            raise RequestError(400, f"instances[{i}] must be an object of feature: value")
        unknown = [k for k in instance if k not in known]
        if unknown:
            raise RequestError(400, f"instances[{i}]: unknown feature {unknown[0]!r}; the model takes "
                                    f"{_preview(names)}")
        missing = [n for n in names if n not in instance]
        if missing:
            raise RequestError(400, f"instances[{i}]: missing feature{'s' if len(missing) > 1 else ''} "
                                    f"{', '.join(map(repr, missing[:5]))}{' …' if len(missing) > 5 else ''}")
    table = Table("request", {n: _column(instances, n) for n in names})
    try:
        return feeds_from_table(table, signature, allow_missing=allow_missing), instances
    except InvalidInputError as exc:
        raise RequestError(400, exc.message.removeprefix("request: ")) from None


def _column(instances: list[dict[str, Any]], name: str) -> np.ndarray:
    try:
        return column_from_values([inst[name] for inst in instances], "request", name)
    except InvalidInputError as exc:
        raise RequestError(400, exc.message.removeprefix("request: ")) from None


def _preview(names: list[str]) -> str:
    return ", ".join(names[:8]) + (f", … ({len(names)} in all)" if len(names) > 8 else "")
