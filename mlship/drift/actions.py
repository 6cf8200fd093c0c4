"""Acting on drift: a command to run, a webhook to call."""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.error
import urllib.request
from typing import Any

from mlship.errors import ServiceError


def run_command(command: str, report_path: str | None) -> int:
    """Run `command` in a shell with MLSHIP_DRIFT_REPORT pointing at the JSON report."""
    env = {**os.environ, **({"MLSHIP_DRIFT_REPORT": report_path} if report_path else {})}
    return subprocess.run(command, shell=True, env=env).returncode


def post_webhook(url: str, document: dict[str, Any], *, attempts: int = 4, backoff_s: float = 0.5,
                 timeout_s: float = 10.0) -> int:
    """POST the JSON summary; retry 5xx and connection errors with exponential backoff."""
    data = json.dumps(document).encode()
    last = ""
    for attempt in range(attempts):
        request = urllib.request.Request(url, data=data, method="POST",
                                         headers={"Content-Type": "application/json", "User-Agent": "mlship"})
        try:
            with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(request, timeout=timeout_s) as r:
                return r.status
        except urllib.error.HTTPError as exc:
            last = f"HTTP {exc.code}"
            if exc.code < 500 and exc.code != 429:
                break  # the receiver refused it: retrying will not help
        except (urllib.error.URLError, OSError) as exc:
            last = str(getattr(exc, "reason", exc))
        if attempt + 1 < attempts:
            time.sleep(backoff_s * 2 ** attempt)
    raise ServiceError(f"webhook {url} failed after {attempt + 1} attempts: {last}",
                       hint="The report files were written; check the receiver")
