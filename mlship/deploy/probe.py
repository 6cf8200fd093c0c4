"""Asking a slot what it serves, over the Open Inference Protocol's health and metadata routes.

Used by runtimes (wait until a new version is ready and serves its version) and by
`rollout start` (refuse a candidate slot that serves another version).
"""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.request
from typing import Callable

from mlship.deploy.base import DeployError

# Slots are on the operator's network: never through an HTTP proxy from the environment.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))
POLL_S = 0.2


def _get(url: str, timeout: float) -> tuple[int, bytes] | None:
    """Status and body of GET url; None when nothing answers."""
    try:
        with _OPENER.open(urllib.request.Request(url, headers={"Connection": "close"}), timeout=timeout) as reply:
            return reply.status, reply.read(1 << 20)
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, b""
    except (OSError, ValueError):
        return None


def occupied(address: str, timeout: float = 1.0) -> bool:
    """Whether something accepts connections at `address` (HOST:PORT)."""
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            return True
    except (OSError, ValueError):
        return False


def served_versions(address: str, model: str, timeout: float = 2.0) -> list[str] | None:
    """The versions `/v2/models/MODEL` at `address` (HOST:PORT or a base URL) reports; None when it
    does not answer with them."""
    base = address.rstrip("/") if "://" in address else f"http://{address}"
    answer = _get(f"{base}/v2/models/{model}", timeout)
    if answer is None or answer[0] != 200:
        return None
    try:
        versions = json.loads(answer[1]).get("versions")
    except (ValueError, AttributeError):
        return None
    return [str(v) for v in versions] if isinstance(versions, list) else None


def wait_serving(address: str, model: str, version: str, timeout_s: float,
                 exited: Callable[[], str | None] = lambda: None) -> None:
    """Wait until `address` is ready (`/v2/health/ready`) and reports `version` of `model`.

    `exited` says why the process behind the slot ended (None while it runs), so a crash
    fails at once instead of at the deadline. Raises DeployError with the reason.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        answer = _get(f"http://{address}/v2/health/ready", 2.0)
        if answer is not None and answer[0] == 200:
            break
        ended = exited()
        if ended:
            raise DeployError(f"it stopped before it was ready ({ended})")
        if time.monotonic() > deadline:
            raise DeployError(f"not ready at http://{address}/v2/health/ready within {timeout_s:.0f} s")
        time.sleep(POLL_S)
    versions = served_versions(address, model)
    if versions is None or version not in versions:
        shown = ", ".join(versions) if versions else "no version of it"
        raise DeployError(f"http://{address}/v2/models/{model} reports {shown}, not {version}")
