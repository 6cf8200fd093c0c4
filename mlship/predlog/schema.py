"""One record per prediction; writers (serve, predict, edge run) and readers
(drift, rollout gates, shadow comparison) share this model."""

from __future__ import annotations

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


def utc_timestamp(when: float) -> str:
    """2026-11-29T14:00:00.123Z from a time.time() value."""
    moment = datetime.fromtimestamp(when, tz=timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
