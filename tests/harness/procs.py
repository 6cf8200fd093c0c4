"""Process and mount cleanup for the harness, all keyed to things we started.

A process is named by (pid, start time) so a recycled pid is never signalled.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

Proc = tuple[int, str]  # (pid, kernel start time)


def _stat(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name: [state, ppid, …, starttime at 19]."""
    try:
        # The command name may contain spaces and ")", so split after the last ")".
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _all_pids() -> list[int]:
    return [int(entry) for entry in os.listdir("/proc") if entry.isdigit()]


def _start_time(pid: int) -> str | None:
    fields = _stat(pid)
    return fields[19] if fields else None


def spawn(argv: list[str], log: Path, **kwargs: Any) -> subprocess.Popen:
    """Start ``argv`` with stdout and stderr appended to ``log``."""
    with open(log, "ab") as log_file:
        # A new session keeps Ctrl-C in the pytest terminal from reaching the
        # service directly, so stop() decides how it ends.
        return subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
            start_new_session=True, **kwargs,
        )


def stop_process(process: subprocess.Popen, timeout: float) -> None:
    """SIGTERM a process we started, wait up to ``timeout``, then SIGKILL it."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def descendants(pid: int) -> list[Proc]:
    """Every live descendant of ``pid``."""
    children: dict[int, list[int]] = {}
    for candidate in _all_pids():
        fields = _stat(candidate)
        if fields:
            children.setdefault(int(fields[1]), []).append(candidate)
    found, todo = [], list(children.get(pid, []))
    while todo:
        child = todo.pop()
        start = _start_time(child)
        if start is not None:
            found.append((child, start))
        todo.extend(children.get(child, []))
    return found


def mentioning(marker: str) -> list[Proc]:
    """Processes whose command line contains ``marker`` (a unique temp path of ours)."""
    found = []
    for pid in _all_pids():
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        start = _start_time(pid)
        if marker.encode() in cmdline and pid != os.getpid() and start is not None:
            found.append((pid, start))
    return found


def alive(processes: list[Proc]) -> list[int]:
    """The pids from ``processes`` that still run (same start time, not a zombie)."""
    running = []
    for pid, start in processes:
        fields = _stat(pid)
        if fields and fields[19] == start and fields[0] != "Z":
            running.append(pid)
    return running


def kill(processes: list[Proc], grace: float = 5.0) -> None:
    """SIGTERM, wait ``grace``, then SIGKILL the ``processes`` still alive."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in alive(processes):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + grace
        while alive(processes) and time.monotonic() < deadline:
            time.sleep(0.05)


def wait_reaped(processes: list[Proc], timeout: float = 3.0) -> None:
    """Give init a moment to reap orphans we killed, so no <defunct> entries linger."""
    deadline = time.monotonic() + timeout
    while any(_start_time(pid) == start for pid, start in processes) and time.monotonic() < deadline:
        time.sleep(0.05)


_MNT_DETACH = 2


def _mounts_under(root: Path) -> list[str]:
    prefix = str(root).rstrip("/") + "/"
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return []
    # Field 5 is the mount point, with spaces and the like octal-escaped.
    points = (line.split()[4].encode().decode("unicode_escape") for line in lines)
    return [point for point in points if point.startswith(prefix)]


def remove_tree(root: Path) -> None:
    """Unmount whatever is left under ``root`` (deepest first), then delete it.

    If a mount cannot be removed the tree is left in place: deleting files
    through a live mount could reach outside the temp dir.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    for _ in range(3):
        mounts = _mounts_under(root)
        if not mounts:
            break
        for point in sorted(mounts, key=len, reverse=True):
            libc.umount2(point.encode(), _MNT_DETACH)  # lazy: busy mounts go too
    if not _mounts_under(root):
        shutil.rmtree(root, ignore_errors=True)
