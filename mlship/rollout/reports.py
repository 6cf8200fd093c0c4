"""Typed results of the analysis gate: what `step` and `status` print, what
`--json` shows, and what a rollout state keeps of each step's gate."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

Result = Literal["pass", "fail", "inconclusive"]


class Metric(BaseModel):
    """One measure of the candidate against its threshold."""

    name: str
    result: Result
    value: float | None = None
    threshold: float | None = None
    detail: str = ""


class Percentiles(BaseModel):
    p50: float | None = None
    p99: float | None = None


class OutputDelta(BaseModel):
    """How far a float output of the candidate strays from stable's on the same requests."""

    mean: float
    max: float


class ShadowReport(BaseModel):
    """Agreement of the two versions on the requests both answered (joined by request id and row)."""

    joined: int
    agreement: float | None
    disagreements: int
    stable_only: int
    candidate_errors: int
    output_deltas: dict[str, OutputDelta]
    latency_ms: dict[Literal["stable", "candidate"], Percentiles]
    rtol: float | None = Field(None, description="Regressors agree when |candidate - stable| <= atol + rtol * |stable|.")
    atol: float | None = None


class GateReport(BaseModel):
    """The gate's verdict over one window: fail if any metric fails, inconclusive if any cannot tell."""

    result: Result
    since: str
    until: str
    counts: dict[str, int]
    metrics: list[Metric]
    shadow: ShadowReport | None = None

    def reasons(self, result: Result) -> str:
        """The details of the metrics with this result, joined for one line."""
        return "; ".join(f"{m.name} {m.detail}" for m in self.metrics if m.result == result)

    def at_step(self, step: int) -> "GateResult":
        """This report as a rollout state keeps it: with the step index it judged."""
        return GateResult(**dict(self), step=step)


class GateResult(GateReport):
    """A gate report kept in the rollout state (the last 50), with the step it judged."""

    step: int
