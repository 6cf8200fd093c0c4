"""Fast JSON when orjson is installed (the `serve` extra), stdlib json otherwise.

NumPy arrays and scalars serialize directly (float32 with its shortest
repr, so 17.99 stays 17.99 rather than 17.989999771118164).
"""

from __future__ import annotations

import functools
import json
from typing import Any, Callable


def _fallback(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


try:
    import orjson

    _OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS

    # A partial, not a def: no Python frame per call (serving calls it several times a request).
    dumps: Callable[[Any], bytes] = functools.partial(orjson.dumps, option=_OPTIONS, default=_fallback)

    loads = orjson.loads
    DecodeError: type[Exception] = orjson.JSONDecodeError
except ImportError:  # pragma: no cover - exercised without the extra
    def dumps(value: Any) -> bytes:
        return json.dumps(value, separators=(",", ":"), default=_fallback).encode()

    loads = json.loads
    DecodeError = json.JSONDecodeError
