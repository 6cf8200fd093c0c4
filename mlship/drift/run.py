"""The `mlship drift` use case: check the request, analyse, write the reports, act.

The command calls `prepare` (usage errors before any reading), `analyse` (the
typed report, with the report files written), renders the report, then calls
`act` (the --on-drift command and the webhook); nothing here prints.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field

from mlship.drift.report import DriftReport
from mlship.drift.settings import DriftOptions, DriftSettings
from mlship.errors import UsageError
from mlship.fsutil import atomic_write
from mlship.urls import check_http_url, redact_url

STDOUT = "-"


class DriftRequest(BaseModel):
    """One `mlship drift`: the comparison, the reports to write and what to do on drift."""

    model_config = ConfigDict(extra="forbid")

    options: DriftOptions
    json_out: Optional[str] = Field(None, description="Where the JSON report goes: a file, or - for stdout.")
    html: Optional[Path] = None
    markdown: Optional[Path] = None
    fail_on: Optional[list[str]] = Field(None, description="dataset, any, window, quality, column:NAME or never "
                                         "(report only); by default what the headline says: window with "
                                         "--window, else dataset.")
    on_drift: Optional[str] = Field(None, description="Shell command run when a --fail-on condition is met.")
    webhook: Optional[str] = Field(None, description="http(s) URL that receives the summary.")

    @property
    def report_file(self) -> Optional[str]:
        """The JSON report's file, when one is written (not stdout)."""
        return self.json_out if self.json_out not in (None, STDOUT) else None

    @property
    def conditions(self) -> list[str]:
        """The --fail-on conditions: the given ones, else the one the headline verdict answers."""
        return self.fail_on or (["window"] if self.options.window else ["dataset"])


class DriftVerdict(BaseModel):
    """What acting on a report found and did."""

    failed: list[str] = Field(description="The --fail-on conditions met.")
    unjudged: list[str] = Field(default_factory=list, description="The --fail-on conditions the data was too "
                                "small to judge (exit 5 when none is met).")
    on_drift_exit: Optional[int] = Field(None, description="The --on-drift command's exit code, when it ran.")
    message: str = Field("", description="Why the command fails, when a condition is met.")


def drift_options(settings: DriftSettings, **run: object) -> DriftOptions:
    """The options of one run: `settings` (flags already applied) plus the run's own values
    (None means not given)."""
    if settings.reference is None:
        raise UsageError("no reference given", hint="Pass --reference or set monitoring.reference in mlship.yaml")
    return DriftOptions(**settings.model_dump(), **{k: v for k, v in run.items() if v is not None})


def prepare(request: DriftRequest) -> list[str]:
    """Refuse a bad request before any reading; the warnings to show."""
    from mlship.drift.detection import parse_window

    parse_window(request.options.window)
    warnings = []
    if request.webhook is not None:
        check_http_url(request.webhook, "--webhook")  # http(s) only
        parts = urlsplit(request.webhook)
        if parts.scheme.lower() == "http" and "@" in parts.netloc:
            warnings.append(f"--webhook {redact_url(request.webhook)} sends its credentials unencrypted (http://)")
    for condition in request.conditions:
        _check_condition(condition)
    if "never" in request.conditions and len(set(request.conditions)) > 1:
        raise UsageError("--fail-on never means report only, and cannot be combined with other conditions",
                         hint="Drop --fail-on never, or the other --fail-on values")
    if "window" in request.conditions and not request.options.window:  # no windows: never met, a silent pass
        raise UsageError("--fail-on window judges windows, and none were asked for", hint="Add --window 1h (or 5000rows)")
    return warnings


def analyse(request: DriftRequest) -> DriftReport:
    """The drift report, with the report files asked for written (atomically)."""
    from mlship.drift.detection import run_drift
    from mlship.drift.html import render_html
    from mlship.drift.render import render_markdown

    report = run_drift(request.options)
    _check_columns(request, report)  # before any report file is written
    if request.report_file:
        atomic_write(Path(request.report_file), json.dumps(report.document(), indent=2).encode())
    if request.html:
        atomic_write(request.html, render_html(report).encode())
    if request.markdown:
        atomic_write(request.markdown, render_markdown(report).encode())
    return report


def act(request: DriftRequest, report: DriftReport) -> DriftVerdict:
    """Run --on-drift when a --fail-on condition is met, then post the webhook summary."""
    failed = [c for c in request.conditions if _met(c, report)]
    unjudged = [] if failed else [c for c in request.conditions if not _judgeable(c, report)]
    exit_code = None
    if failed and request.on_drift:
        from mlship.drift.actions import run_command

        exit_code = run_command(request.on_drift, request.report_file)
    if request.webhook:
        from mlship.drift.actions import post_webhook

        post_webhook(request.webhook, report.summary())
    message = f"drift found ({', '.join(failed)}): {', '.join(report.drifted_columns) or 'see windows'}"
    if failed == ["quality"]:
        message = f"data quality: {', '.join(f'{k} {n}' for k, n in report.quality.counts.items())}"
    if unjudged:
        message = f"not enough data to judge --fail-on {', '.join(unjudged)}: {report.verdict.text}"
    return DriftVerdict(failed=failed, unjudged=unjudged, on_drift_exit=exit_code,
                        message=message if failed or unjudged else "")


def _check_condition(text: str) -> None:
    if not (text in ("dataset", "any", "window", "quality", "never")
            or (text.startswith(COLUMN) and _column(text))):
        raise UsageError(f"--fail-on {text!r}: use dataset, any, window, quality, column:NAME or never")


def _check_columns(request: DriftRequest, report: DriftReport) -> None:
    """--fail-on column:NAME naming a column the data does not have could never fail, so a typo
    in a CI job would pass silently: exit 2 naming the columns (`--fail-on never` reports only)."""
    known = [c.name for c in report.columns]
    shown = ", ".join(known[:12]) + (f", … and {len(known) - 12} more" if len(known) > 12 else "")
    for condition in request.conditions:
        if condition.startswith(COLUMN) and _column(condition) not in known:
            raise UsageError(f"--fail-on {condition}: no column {_column(condition)!r} in the data "
                             f"(columns: {shown})", hint="Name one of these, or pass --fail-on never to report only")


def _judgeable(condition: str, report: DriftReport) -> bool:
    """Whether the data was large enough to judge `condition` (quality always is)."""
    if condition == "window":
        return any(not w.insufficient for w in report.windows)
    if condition.startswith(COLUMN):
        return any(c.judged for c in report.columns if c.name == _column(condition))
    if condition in ("dataset", "any"):
        return any(c.judged for c in report.columns)
    return True


def _met(condition: str, report: DriftReport) -> bool:
    if condition == "dataset":
        return report.dataset_drift
    if condition == "any":
        return bool(report.drifted_columns)
    if condition == "window":
        return any(w.dataset_drift for w in report.windows)
    if condition == "quality":
        return bool(report.quality.violations)
    if condition == "never":
        return False
    return _column(condition) in report.drifted_columns


COLUMN = "column:"


def _column(condition: str) -> str:
    """The column a `column:NAME` condition names."""
    return condition[len(COLUMN):]
