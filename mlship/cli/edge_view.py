"""How `mlship edge fleet` prints its report. Every value shown came from a device's status file,
so each cell is a rich Text (verbatim, never markup)."""

from __future__ import annotations

from typing import Any

from mlship.edge.status import FleetReport


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "unknown"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.0f}s"


def render_fleet(out: Any, report: FleetReport) -> None:
    from rich.table import Table
    from rich.text import Text

    versions = ", ".join(f"{v}: {n}" for v, n in report.versions.items()) or "no devices"
    out.print(Text(f"{report.name} in {report.target}: {len(report.devices)} devices ({versions}); "
                   f"{len(report.stale)} stale (no sync for {_age(report.stale_after_s)}), "
                   f"{len(report.failures)} failing"))
    if report.devices:
        table = Table()
        for column in ("device", "version", "previous", "channel", "last sync", "health"):
            table.add_column(column, no_wrap=True)  # ids stay whole, for copying
        table.add_column("problem", overflow="fold")
        for d in report.devices:
            problem = (f"held back {d.held_back}" if d.held_back else "") or (d.last_error or "")
            table.add_row(*(Text(str(v)) for v in (
                d.device, d.version or "-", d.previous or "-", d.channel,
                f"{_age(d.age_s)} ago" + (" (stale)" if d.stale else ""), (d.health or "-").split(":")[0],
                problem or (d.health if d.health and d.health != "ok" else "-"))))
        out.print(table)
    for bad in report.unreadable:
        out.print(Text(f"unreadable: {bad['key']}: {bad['reason']}"))
