"""`mlship doctor`: what is installed, what answers, which credentials were found."""

from __future__ import annotations

import typer

from mlship.cli._common import config_for, state

_STYLE = {"ok": "green", "warn": "yellow", "fail": "red"}


def doctor(ctx: typer.Context) -> None:
    """Check the installation, the configured services and the credentials found (exit 7: one is unreachable).

    Lists mlship's optional packages and onnxruntime's providers; probes each target,
    registry, router, deploy runtime and Prometheus server mlship.yaml names (3 s each,
    side by side); names where credentials come from, never their values.
    """
    from mlship.doctor import run_doctor
    from mlship.errors import ServiceError

    report = run_doctor(config_for(ctx))
    state(ctx).console.result(report.as_dict(), lambda out: _render(out, report))
    if report.unreachable:
        names = ", ".join(c.name for c in report.unreachable)
        raise ServiceError(f"unreachable: {names}", hint="See the details above; fix the service or mlship.yaml")


def _render(out, report) -> None:
    """A table on a terminal; in a log, one unwrapped line per check (nothing cut or folded)."""
    if not out.is_terminal:
        width = max(len(c.name) for c in report.checks)
        for check in report.checks:
            out.print(f"{check.status:<4}  {check.group:<11}  {check.name:<{width}}  {check.detail}",
                      markup=False, highlight=False, soft_wrap=True)
        return
    from rich.table import Table
    from rich.text import Text

    table = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
    for column in ("group", "name", "status", "detail"):
        table.add_column(column, overflow="fold")
    for check in report.checks:
        table.add_row(Text(check.group), Text(check.name), Text(check.status, style=_STYLE[check.status]),
                      Text(check.detail))
    out.print(table)
