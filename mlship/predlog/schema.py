"""One record per prediction; writers (serve, predict, edge run) and readers
(drift, rollout gates, shadow comparison) share this model."""

from __future__ import annotations

import math
from datetime import datetime, timezone
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

SCHEMA = "mlship.predlog/v1"


class PredictionRecord(BaseModel):
    """A prediction as logged: JSON Lines, one object per line."""

    model_config = ConfigDict(extra="allow")

    ts: str = Field(description="UTC time the prediction was made, ISO 8601 with milliseconds and Z.")
    request_id: str = Field(description="X-Request-ID of the request, or a generated one.")
    model: str = Field(description="Model name.")
    version: str = Field(description="Model version.")
    variant: str | None = Field(None, description="Traffic variant: stable, canary, shadow, blue, green…")
    inputs: dict[str, Any] = Field(description="Input features by name, as received.")
    outputs: dict[str, Any] = Field(description="Model outputs by name for this row.")
    latency_ms: float = Field(description="Time spent serving the request, in ms.")
    status: int = Field(200, description="HTTP-like status of the prediction.")
    error: str | None = Field(None, description="What went wrong, when status is not 200.")
    label: Any | None = Field(None, description="Ground truth, often joined later by request_id.")
    cached: bool | None = Field(None, description="True when the answer came from the cache.")
    row: int | None = Field(None, description="Row index within a multi-row request.")


_TEXT, _NUMBER = (str,), (int, float)
# The types of PredictionRecord's top-level fields, checked field by field without
# pydantic on the lenient read path (drift reads millions of records); True: may be null.
META_TYPES: dict[str, tuple[tuple[type, ...], bool]] = {
    "ts": (_TEXT, False), "request_id": (_TEXT, False), "model": (_TEXT, False), "version": (_TEXT, False),
    "variant": (_TEXT, True), "latency_ms": (_NUMBER, False), "status": ((int,), False), "error": (_TEXT, True),
    "label": ((str, int, float, bool), True), "cached": ((bool,), True), "row": ((int,), True),
}
META = tuple(META_TYPES)  # the top-level fields that are not inputs or outputs


# -- what a record's status means: the one definition, shared by drift and the gate --

def is_error(status: int | None) -> bool:
    """A record is an error when the service failed to answer: status 500 or above.

    A refused request (4xx, with `error` saying why) is the caller's mistake,
    not an error of the version that refused it."""
    return status is not None and status >= 500


def is_answered(status: int | None) -> bool:
    """A record is a prediction (its outputs and latency count) when its status
    is below 400; a record without a status is one (the schema's default is 200)."""
    return status is None or status < 400


def utc_timestamp(when: float) -> str:
    """2026-11-29T14:00:00.123Z from a time.time() value."""
    moment = datetime.fromtimestamp(when, tz=timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def ts_epoch(ts: Any) -> float:
    """Epoch seconds of a record's `ts`; NaN when it is not an ISO 8601 time."""
    if not isinstance(ts, str):
        return math.nan
    try:
        return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return math.nan


def answered_mask(status: Any) -> Any:
    """`is_answered` over a status column (float64 with NaN where missing, or object)."""
    import numpy as np

    if status.dtype == object:
        return np.fromiter((is_answered(s) for s in status.tolist()), dtype=bool, count=len(status))
    return ~(status >= 400)  # NaN compares False: a missing status is a prediction


def error_mask(status: Any) -> Any:
    """`is_error` over a status column (float64 with NaN where missing, or object)."""
    import numpy as np

    if status.dtype == object:
        return np.fromiter((is_error(s) for s in status.tolist()), dtype=bool, count=len(status))
    return status >= 500
