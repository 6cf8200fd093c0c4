"""Devices' own reports (NAME/devices/ID/status.json, schema mlship.device-status/v1) and the fleet view over them.

Each `edge sync` writes what the device really runs after it (success or not):
its version and previous one, the time, the sync's error, the last health check
and a version held back because its check failed. `mlship edge fleet` reads
them all back. A status is written by a device, so the fleet view trusts none:
a document that does not parse, or names another device than its folder, is
listed as unreadable, never shown as a device.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from mlship.edge.state import DeviceState, HealthResult
from mlship.names import is_valid_name
from mlship.versions import now

SCHEMA = "mlship.device-status/v1"


class DeviceStatus(BaseModel):
    model_config = ConfigDict(extra="ignore")

    schema_id: str = SCHEMA
    device: str
    name: str
    channel: str
    version: str | None  # what `current` points at after the sync
    previous: str | None
    last_sync: str  # UTC, ISO 8601
    last_error: str | None = None  # this sync's error (one line), None when it succeeded
    health: HealthResult | None = None  # the last check of `version`
    held_back: HealthResult | None = None  # the channel's version, which failed its check: not installed again
    mlship: str = ""


def status_key(name: str, device: str) -> str:
    return f"{name}/devices/{device}/status.json"


def device_status(directory: Path, name: str, channel: str, state: DeviceState, error: str | None) -> DeviceStatus:
    """The device's true state now, read from its links and state (not from what the sync meant to do)."""
    import mlship
    from mlship.edge.device import link_target

    version, previous = link_target(directory / "current"), link_target(directory / "previous")
    health = state.health if state.health is not None and state.health.version == version else None
    return DeviceStatus(device=state.device, name=name, channel=channel, version=version, previous=previous,
                        last_sync=now(), last_error=error, health=health, held_back=state.failed,
                        mlship=mlship.__version__)


def report_status(target: Any, status: DeviceStatus) -> None:
    target.write(status_key(status.name, status.device), status.model_dump_json(indent=1).encode())


class FleetDevice(BaseModel):
    device: str
    version: str | None
    previous: str | None
    channel: str
    last_sync: str
    age_s: float | None  # seconds since last_sync; None when the time does not parse
    stale: bool
    failed: bool
    last_error: str | None
    health: str | None  # "ok", "failed: DETAIL", or None when no check ran
    held_back: str | None  # the version held back after a failed check


class FleetReport(BaseModel):
    name: str
    target: str
    checked: str
    stale_after_s: float
    devices: list[FleetDevice]
    versions: dict[str, int]  # version ("none": nothing installed) -> devices
    stale: list[str]
    failures: list[str]
    unreadable: list[dict[str, str]]  # {key, reason}


def fleet_report(target: Any, name: str, stale_after_s: float) -> FleetReport:
    """Every device's status under NAME/devices/, with versions counted, stale and failing devices named."""
    clock = datetime.now(timezone.utc)
    devices: list[FleetDevice] = []
    unreadable: list[dict[str, str]] = []
    for key in target.list_keys(f"{name}/devices/"):
        parts = key.split("/")
        if len(parts) != 4 or parts[3] != "status.json":
            continue
        try:
            devices.append(_row(_parse(target.read(key), parts[2]), clock, stale_after_s))
        except ValueError as exc:
            unreadable.append({"key": key, "reason": str(exc)})
    counts = Counter(d.version or "none" for d in devices)
    return FleetReport(name=name, target=target.describe(), checked=now(), stale_after_s=stale_after_s,
                       devices=devices, versions=dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))),
                       stale=[d.device for d in devices if d.stale], failures=[d.device for d in devices if d.failed],
                       unreadable=unreadable)


def _parse(raw: bytes | None, folder: str) -> DeviceStatus:
    if raw is None:
        raise ValueError("removed while listed")
    try:
        status = DeviceStatus.model_validate(json.loads(raw))
    except (ValueError, RecursionError, ValidationError) as exc:
        raise ValueError(f"not a {SCHEMA} document: {str(exc).splitlines()[0][:120]}") from None
    if status.device != folder:
        raise ValueError(f"names device {status.device[:80]!r}, not its folder {folder!r}")
    names = [status.device, status.name, status.channel, status.version, status.previous]
    if not all(is_valid_name(v) for v in names if v is not None):
        raise ValueError("a device, name, channel or version that is not a valid name")
    return status


def _row(status: DeviceStatus, clock: datetime, stale_after_s: float) -> FleetDevice:
    try:
        age = (clock - datetime.strptime(status.last_sync, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc))
        age_s: float | None = max(0.0, age.total_seconds())
    except ValueError:
        age_s = None
    health = None if status.health is None else "ok" if status.health.ok else f"failed: {status.health.detail}"
    held = status.held_back.version if status.held_back is not None else None
    failed = status.last_error is not None or held is not None or (status.health is not None and not status.health.ok)
    return FleetDevice(device=status.device, version=status.version, previous=status.previous, channel=status.channel,
                       last_sync=status.last_sync, age_s=age_s, stale=age_s is None or age_s > stale_after_s,
                       failed=failed, last_error=status.last_error, health=health, held_back=held)
