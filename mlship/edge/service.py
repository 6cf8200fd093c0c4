"""The use case behind `mlship edge sync`: follow a channel on a device, and ship its logs."""

from __future__ import annotations

import socket
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
    device: str | None = None  # None: the host name
    configured: dict[str, Any] = {}


def sync_device(request: SyncRequest) -> dict[str, Any]:
    """Download the channel's bundle when it changed, verify it, switch to it; then ship logs.
    Names that become paths and keys are checked before anything is read or written."""
    from mlship.edge.device import sync, upload_logs
    from mlship.names import check_name
    from mlship.targets.base import open_target

    check_name(request.name, "name")
    check_name(request.channel, "channel")
    shipping = request.upload_logs is not None
    device = check_name(request.device or socket.gethostname(), "device") if shipping else None
    target = open_target(request.source, request.configured)
    if request.root is not None:
        from mlship.edge.tuf_client import init_root, provisioned

        if not provisioned(request.directory):
            request.directory.mkdir(parents=True, exist_ok=True)
            init_root(request.directory, request.root)
    result = sync(target, request.name, request.channel, request.directory, request.public_key)
    if shipping:
        result["uploaded_logs"] = upload_logs(target, request.name, request.upload_logs, device)
    return result


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
