"""Acting on drift: a command to run, a webhook to call."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from http.client import HTTPException
from typing import Any

from mlship.errors import ServiceError
from mlship.urls import check_http_url, hide_url_secrets, redact_url


def run_command(command: str, report_path: str | None) -> int:
    """Run `command` in a shell with MLSHIP_DRIFT_REPORT pointing at the JSON report."""
    env = {**os.environ, **({"MLSHIP_DRIFT_REPORT": report_path} if report_path else {})}
    return subprocess.run(command, shell=True, env=env).returncode


def post_webhook(url: str, document: dict[str, Any], *, attempts: int = 4, backoff_s: float = 0.5,
                 timeout_s: float = 10.0) -> int:
    """POST the JSON summary to an http(s) URL and return the 2xx status: only a 2xx is delivery.

    Redirects are not followed: a 3xx is not delivery (a POST must not turn into
    an empty GET, nor its body go wherever the receiver points). 5xx, 429 and
    connection errors are retried with exponential backoff; other answers are
    final. `user:password@` in the URL is sent as Basic auth to that host only.
    The URL is only ever shown redacted (`mlship.urls.redact_url`).
    """
    check_http_url(url, "--webhook")
    target, headers = _target(url)
    shown = redact_url(url)
    data = json.dumps(document).encode()
    opener = _opener()
    last, tried = "", 0
    for attempt in range(attempts):
        tried = attempt + 1
        request = urllib.request.Request(target, data=data, method="POST", headers=headers)
        try:
            with opener.open(request, timeout=timeout_s) as response:
                response.read()
                return response.status
        except urllib.error.HTTPError as exc:
            exc.close()
            last = f"HTTP {exc.code}"
            if 300 <= exc.code < 400:
                location = exc.headers.get("Location") if exc.headers else None
                where = f"a redirect to {redact_url(urllib.parse.urljoin(target, location))}" if location \
                    else "a redirect without a Location"
                last = f"answered {exc.code} ({where}); redirects are not followed"
                break  # the receiver wants another URL: configure that one
            if exc.code < 500 and exc.code != 429:
                break  # the receiver refused it: retrying will not help
        except urllib.error.URLError as exc:
            last = hide_url_secrets(str(exc.reason), url)  # library text may quote the URL
        except (OSError, HTTPException, ValueError) as exc:
            last = hide_url_secrets(str(exc) or type(exc).__name__, url)
        if attempt + 1 < attempts:
            time.sleep(backoff_s * 2 ** attempt)
    raise ServiceError(f"webhook {shown} failed after {tried} attempt{'s' if tried > 1 else ''}: "
                       f"{last}", hint="The report files were written; check the receiver")


def _target(url: str) -> tuple[str, dict[str, str]]:
    """The URL without userinfo and fragment, and the headers (Basic auth from the userinfo)."""
    parts = urllib.parse.urlsplit(url)
    headers = {"Content-Type": "application/json", "User-Agent": "mlship"}
    userinfo, at, hostport = parts.netloc.rpartition("@")
    if at:
        user, _, password = userinfo.partition(":")
        token = base64.b64encode(f"{urllib.parse.unquote(user)}:{urllib.parse.unquote(password)}".encode()).decode()
        headers["Authorization"] = f"Basic {token}"
    return urllib.parse.urlunsplit((parts.scheme, hostport, parts.path or "/", parts.query, "")), headers


def _opener() -> Any:
    """http and https only, no proxies from the environment, no redirect handler:
    a 3xx surfaces as an HTTPError instead of being followed."""
    opener = urllib.request.OpenerDirector()
    for handler in (urllib.request.HTTPHandler(), urllib.request.HTTPSHandler(),
                    urllib.request.HTTPDefaultErrorHandler(), urllib.request.HTTPErrorProcessor()):
        opener.add_handler(handler)
    return opener
