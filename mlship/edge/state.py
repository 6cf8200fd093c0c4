"""What a device remembers about itself in DIR/state.json (beside DIR/tuf/, outside what bundles unpack into).

Its id (from `edge init --device-id`, or made once and kept), the health check of
the version it runs, and a version that failed its health check: the channel's
version is not installed again while the channel still names it.
"""

from __future__ import annotations

import json
import re
import secrets
import socket
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError

from mlship.errors import InvalidInputError, UsageError
from mlship.fsutil import atomic_write
from mlship.names import check_name, is_valid_name

STATE = "state.json"


class HealthResult(BaseModel):
    """One health check of an installed version: which check, its verdict and why."""

    model_config = ConfigDict(extra="forbid")

    version: str
    ok: bool
    check: str  # "bundle sample (N rows)", "generated input (1 row)" or "command: ARGV0"
    detail: str
    seconds: float
    checked: str  # UTC time, ISO 8601


class DeviceState(BaseModel):
    model_config = ConfigDict(extra="forbid")

    device: str
    health: HealthResult | None = None  # the last check, of the version it names
    failed: HealthResult | None = None  # a version held back: it failed its check after the switch


def load_state(directory: Path) -> DeviceState | None:
    path = directory / STATE
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise UsageError(f"{path}: cannot read the device state: {exc.strerror or exc}") from None
    try:
        state = DeviceState.model_validate(json.loads(raw))
    except (ValueError, ValidationError) as exc:
        raise InvalidInputError(f"{path} is not a device state mlship wrote ({str(exc).splitlines()[0]})",
                                hint=f"Remove {path}; the device gets a new id on its next sync") from None
    check_name(state.device, "device", where=str(path))
    return state


def save_state(directory: Path, state: DeviceState) -> None:
    try:
        directory.mkdir(parents=True, exist_ok=True)
        atomic_write(directory / STATE, json.dumps(state.model_dump(), indent=1, sort_keys=True).encode())
    except OSError as exc:
        raise UsageError(f"{directory / STATE}: cannot keep the device state: {exc.strerror or exc}") from None


def device_state(directory: Path, device: str | None = None) -> DeviceState:
    """The device's state; a new one (id `device`, else the host name plus a random suffix) is kept at once,
    so the id is stable across syncs."""
    state = load_state(directory)
    if state is None:
        state = DeviceState(device=check_name(device, "device") if device else generated_id())
        save_state(directory, state)
    return state


def generated_id() -> str:
    host = re.sub(r"[^A-Za-z0-9_.-]", "-", socket.gethostname())[:48].strip(".-_") or "device"
    device = f"{host}-{secrets.token_hex(4)}"
    return device if is_valid_name(device) else f"device-{secrets.token_hex(4)}"
