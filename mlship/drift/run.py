"""The drift command's flow: analyse, write the reports, act, decide the exit code."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel

from mlship.errors import CheckFailedError, UsageError
from mlship.fsutil import atomic_write
from mlship.urls import check_http_url, redact_url


class DriftRequest(BaseModel):
    reference: str | None
    current: str
    window: str | None = None
    min_rows: int | None = None
    drift_share: float = 0.5
    labels: Path | None = None
    json_out: str | None = None
    html: Path | None = None
    markdown: Path | None = None
    fail_on: list[str] = ["dataset"]
    on_drift: str | None = None
    webhook: str | None = None
    strict: bool = False
    chunk_rows: int = 50_000
    columns: dict[str, dict[str, Any]] = {}


def run_drift_command(request: DriftRequest, console: Any) -> dict[str, Any]:
    from mlship.drift.detection import DriftOptions, parse_window, run_drift
    from mlship.drift.html import render_html
    from mlship.drift.render import render_markdown, render_terminal

    if request.reference is None:
        raise UsageError("no reference given", hint="Pass --reference or set monitoring.reference in mlship.yaml")
    parse_window(request.window)  # a bad window is a usage error before any reading
    if request.webhook is not None:
        check_http_url(request.webhook, "--webhook")  # http(s) only, and before any reading
        parts = urlsplit(request.webhook)
        if parts.scheme.lower() == "http" and "@" in parts.netloc:
            console.warn(f"--webhook {redact_url(request.webhook)} sends its credentials unencrypted (http://)")
    conditions = [_condition(c) for c in request.fail_on]
    options = DriftOptions(reference=request.reference, current=request.current, window=request.window,
                           drift_share=request.drift_share, labels=request.labels, strict=request.strict,
                           chunk_rows=request.chunk_rows, columns=request.columns,
                           **({"min_rows": request.min_rows} if request.min_rows else {}))
    with console.status("reading and comparing"):
        report = run_drift(options)
    if request.json_out == "-":
        console.emitted_result = True
        console._stdout.write(json.dumps(report, indent=2) + "\n")
    elif request.json_out:
        atomic_write(Path(request.json_out), json.dumps(report, indent=2).encode())
    if request.html:
        atomic_write(request.html, render_html(report).encode())
    if request.markdown:
        atomic_write(request.markdown, render_markdown(report).encode())
    if request.json_out != "-":
        console.result(report, lambda out: render_terminal(report, out))
    failed = [c for c in conditions if _met(c, report)]
    if failed and request.on_drift:
        from mlship.drift.actions import run_command

        code = run_command(request.on_drift, request.json_out if request.json_out not in (None, "-") else None)
        if code:
            console.warn(f"--on-drift command exited with {code}")
    if request.webhook:
        from mlship.drift.actions import post_webhook

        post_webhook(request.webhook, summary(report))
    if failed:
        raise CheckFailedError(f"drift found ({', '.join(failed)}): {', '.join(report['drifted_columns']) or 'see windows'}")
    return report


def summary(report: dict[str, Any]) -> dict[str, Any]:
    """What a webhook receives: the verdict without per-column detail."""
    keys = ("schema", "reference", "current", "dataset_drift", "drifted_share", "drifted_columns", "thresholds")
    return {**{k: report[k] for k in keys},
            "windows_with_drift": [w["label"] for w in report["windows"] if w.get("dataset_drift")],
            "performance": report["performance"]["current"]}


def _condition(text: str) -> str:
    if text in ("dataset", "any", "window") or (text.startswith("column:") and len(text) > 7):
        return text
    raise UsageError(f"--fail-on {text!r}: use dataset, any, window or column:NAME")


def _met(condition: str, report: dict[str, Any]) -> bool:
    if condition == "dataset":
        return report["dataset_drift"]
    if condition == "any":
        return bool(report["drifted_columns"])
    if condition == "window":
        return any(w.get("dataset_drift") for w in report["windows"])
    return condition[len("column:"):] in report["drifted_columns"]
