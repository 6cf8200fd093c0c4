"""The use case behind `mlship edge sync`: follow a channel on a device, and ship its logs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel


class SyncRequest(BaseModel):
    """Follow NAME@CHANNEL from `source` into the device's `directory`; with `upload_logs`,
    also ship the finished prediction logs found there under NAME/logs/DEVICE/."""

    source: str
    name: str
    channel: str = "stable"
    directory: Path
    public_key: Path | None = None
    root: Path | None = None  # a trusted TUF root to provision DIR/tuf/ with, when it holds none yet
    upload_logs: Path | None = None
    device: str | None = None  # None: the id kept in DIR/state.json (made at the first sync)
    health_cmd: str | None = None  # None: the built-in smoke check (mlship/edge/smoke.py)
    health_timeout: float = 60.0
    retry: bool = False  # install a version held back by a failed health check again
    report: bool = True  # write NAME/devices/ID/status.json to the target
    configured: dict[str, Any] = {}


def sync_device(request: SyncRequest) -> dict[str, Any]:
    """Download the channel's bundle when it changed, verify it, switch to it, check its health (switching
    back when it fails); then report the device's state to the target and ship logs. Names that become
    paths and keys are checked before anything is read or written."""
    from mlship.edge.device import sync, upload_logs
    from mlship.edge.health import health_check
    from mlship.edge.state import device_state
    from mlship.errors import MlshipError
    from mlship.names import check_name
    from mlship.targets.base import open_target

    check_name(request.name, "name")
    check_name(request.channel, "channel")
    device = check_name(request.device, "device") if request.device is not None else None
    health = health_check(request.health_cmd, request.health_timeout)
    target = open_target(request.source, request.configured)
    kept = device_state(request.directory, device).device  # kept in DIR from the first sync on
    device = device or kept
    try:
        if request.root is not None:
            _provision(request.directory, request.root)
        result = sync(target, request.name, request.channel, request.directory, request.public_key, health,
                      request.retry)
    except MlshipError as exc:
        if request.report:
            _report(target, request, device, exc.one_line(), quiet=True)
        raise
    if request.report:
        result["status"] = _report(target, request, device, None)
    if request.upload_logs is not None:
        result["uploaded_logs"] = upload_logs(target, request.name, request.upload_logs, device)
    return result


def _provision(directory: Path, root: Path) -> None:
    from mlship.edge.tuf_client import init_root, provisioned

    if not provisioned(directory):
        directory.mkdir(parents=True, exist_ok=True)
        init_root(directory, root)


def _report(target: Any, request: SyncRequest, device: str, error: str | None, quiet: bool = False) -> dict:
    """Write the device's true state to NAME/devices/ID/status.json; where it went, or why it could not.
    After a failed sync (`quiet`) a failure to report is dropped: the sync's own error is the one to show."""
    from mlship.edge.state import device_state
    from mlship.edge.status import device_status, report_status, status_key
    from mlship.errors import MlshipError

    try:
        state = device_state(request.directory, device).model_copy(update={"device": device})
        status = device_status(request.directory, request.name, request.channel, state, error)
        report_status(target, status)
        return {"written": True, "key": status_key(request.name, status.device)}
    except (MlshipError, OSError) as exc:
        if quiet:
            return {"written": False}
        reason = exc.one_line() if isinstance(exc, MlshipError) else str(exc)
        return {"written": False, "error": reason}


def init_device(directory: Path, root: Path, device: str | None) -> dict[str, Any]:
    """The `mlship edge init` use case: the trusted TUF root in DIR/tuf/, and the device's id in DIR/state.json."""
    from mlship.edge.state import device_state, save_state
    from mlship.edge.tuf_client import init_root
    from mlship.names import check_name

    if device is not None:
        check_name(device, "device id")
    directory.mkdir(parents=True, exist_ok=True)
    version = init_root(directory, root)
    state = device_state(directory, device)
    if device is not None and state.device != device:
        save_state(directory, state := state.model_copy(update={"device": device}))
    return {"directory": str(directory), "root_version": version, "device": state.device}


def fleet_status(name: str, source: str, stale_after: str, configured: dict[str, Any]) -> Any:
    """The `mlship edge fleet` use case: every device's reported state under NAME/devices/ in `source`."""
    from mlship.edge.status import fleet_report
    from mlship.errors import UsageError
    from mlship.names import check_name
    from mlship.targets.base import open_target
    from mlship.tuf.settings import duration_seconds

    check_name(name, "name")
    try:
        seconds = duration_seconds(stale_after)
    except ValueError as exc:
        raise UsageError(f"--stale-after: {exc}") from None
    return fleet_report(open_target(source, configured), name, seconds)


def refresh_metadata(name: str, to: str, configured: dict[str, Any], signing: Any) -> Any:
    """The `mlship edge refresh` use case: re-sign NAME's TUF snapshot and timestamp in the target `to`
    (`signing`: the resolved SigningSettings, None when mlship.yaml configures no TUF keys)."""
    from mlship.errors import UsageError
    from mlship.names import check_name
    from mlship.targets.base import open_target
    from mlship.tuf.releases import refresh

    check_name(name, "name")
    if signing is None:
        raise UsageError("no TUF keys configured", hint="Set signing.keys in mlship.yaml (see mlship keys generate)")
    return refresh(open_target(to, configured), name, signing)
