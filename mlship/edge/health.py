"""The health check `edge sync` runs after switching to a new version.

The built-in check (mlship/edge/smoke.py: the bundle's sample rows through the
model) or the device's own command (`--health-cmd`), each in a process of its
own, without a shell, in a session of its own so a timeout ends it and its
children. The command sees MLSHIP_EDGE_DIR, MLSHIP_EDGE_VERSION and
MLSHIP_EDGE_MODEL and runs in the version's directory; exit 0 is healthy.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from pydantic import BaseModel

from mlship.edge.state import HealthResult
from mlship.errors import UsageError
from mlship.versions import now

DEFAULT_TIMEOUT_S = 60.0


class HealthCheck(BaseModel):
    """How a new version is checked: `command` (argv) or the built-in smoke check, within `timeout` seconds."""

    command: list[str] | None = None
    timeout: float = DEFAULT_TIMEOUT_S


def health_check(command: str | None, timeout: float) -> HealthCheck:
    """--health-cmd and --health-timeout checked before anything on the device changes (exit 2)."""
    if timeout <= 0:
        raise UsageError(f"--health-timeout {timeout:g}: must be more than 0 seconds")
    if command is None:
        return HealthCheck(timeout=timeout)
    try:
        argv = shlex.split(command)
    except ValueError as exc:
        raise UsageError(f"--health-cmd {command!r}: {exc}") from None
    if not argv:
        raise UsageError("--health-cmd is empty", hint="Name a program, e.g. --health-cmd 'bin/check --quick'")
    if shutil.which(argv[0]) is None:
        raise UsageError(f"--health-cmd: {argv[0]!r} is not an executable program (run without a shell)",
                         hint="Give its path, or a program on PATH")
    return HealthCheck(command=argv, timeout=timeout)


def run_health(check: HealthCheck, directory: Path, version: str, model: str) -> HealthResult:
    """Run the check on DIR/versions/VERSION; its verdict, with the last line it printed."""
    directory = directory.absolute()  # the check runs in the version's directory
    folder = directory / "versions" / version
    argv = check.command or [sys.executable, "-m", "mlship.edge.smoke", str(folder)]
    what = f"command: {Path(check.command[0]).name}" if check.command else "smoke"
    env = {**os.environ, "MLSHIP_EDGE_DIR": str(directory), "MLSHIP_EDGE_VERSION": version,
           "MLSHIP_EDGE_MODEL": str(folder / model)}
    start = time.monotonic()
    try:
        proc = subprocess.Popen(argv, cwd=folder, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, start_new_session=True)
    except OSError as exc:
        return _result(version, False, what, f"cannot start {argv[0]}: {exc.strerror or exc}", start)
    try:
        out, _ = proc.communicate(timeout=check.timeout)
    except subprocess.TimeoutExpired:
        _end(proc)
        return _result(version, False, what, f"no answer within {check.timeout:g} s (ended)", start)
    last = _last_line(out)
    if not check.command:  # the smoke check says what it ran: "ok: bundle sample (8 rows)"
        ok = proc.returncode == 0 and last.startswith("ok: ")
        what, detail = (last[4:], "ok") if ok else ("smoke", last.removeprefix("failed: ") or f"exit {proc.returncode}")
        return _result(version, ok, what, detail, start)
    detail = f"exit {proc.returncode}" + (f": {last}" if last else "")
    return _result(version, proc.returncode == 0, what, detail, start)


def _end(proc: subprocess.Popen) -> None:
    """End the check and whatever it started (its own session), by its process group."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.communicate()


def _last_line(out: bytes) -> str:
    lines = [line for line in out.decode("utf-8", "replace").splitlines() if line.strip()]
    return lines[-1].strip()[:300] if lines else ""


def _result(version: str, ok: bool, what: str, detail: str, start: float) -> HealthResult:
    return HealthResult(version=version, ok=ok, check=what, detail=detail,
                        seconds=round(time.monotonic() - start, 3), checked=now())
