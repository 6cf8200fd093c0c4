"""Free loopback ports and polling with readable timeouts."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

LOOPBACK = "127.0.0.1"


class WaitTimeout(TimeoutError):
    """A service did not become ready (or exited) while we were waiting for it."""


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now.

    The socket is closed before returning, so another process could take the
    port before the caller binds it; starters retry on an early exit for that reason.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def log_tail(path: Path | str | None, lines: int = 30) -> str:
    """Return the last ``lines`` lines of a log file, or a note when there is none."""
    if path is None:
        return "(no log)"
    try:
        text = Path(path).read_text(errors="replace")
    except OSError as exc:
        return f"(log {path} unreadable: {exc})"
    tail = text.splitlines()[-lines:]
    return "\n".join(tail) if tail else f"(log {path} is empty)"


def wait_until(
    predicate: Callable[[], object],
    timeout: float,
    what: str,
    *,
    log: Path | str | None = None,
    process: subprocess.Popen | None = None,
    interval: float = 0.05,
) -> object:
    """Poll ``predicate`` until it returns something truthy and return that value.

    Exceptions from the predicate count as "not yet" (a refused connection is
    the normal state while a server starts). On timeout, or as soon as
    ``process`` exits, raise :class:`WaitTimeout` naming ``what``, the last
    exception seen and the tail of ``log``.
    """
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            result = predicate()
            if result:
                return result
        except Exception as exc:  # noqa: BLE001 - any failure means "not ready yet"
            last_error = exc
        if process is not None and process.poll() is not None:
            reason = f"process {process.pid} exited with code {process.returncode}"
            break
        if time.monotonic() >= deadline:
            reason = f"not ready after {timeout:.1f}s"
            break
        time.sleep(interval)
    detail = f"; last error: {last_error!r}" if last_error is not None else ""
    raise WaitTimeout(f"{what}: {reason}{detail}\n--- log tail ({log}) ---\n{log_tail(log)}")
