"""URLs given by users that carry secrets: checking them and showing them safely.

Webhook URLs often are the credential (Slack's /services/T/B/XXX, `?token=`,
`user:password@`), so they are printed only through `redact_url`: scheme,
host, port and the first path segment stay; userinfo, the rest of the path,
the query and the fragment become `***` or `…`.
"""

from __future__ import annotations

import re
from urllib.parse import SplitResult, urlsplit

from mlship.errors import UsageError

HIDDEN = "…"


def redact_url(url: str) -> str:
    """`url` safe to print: scheme://[***@]host[:port][/first-segment[/…]][?…][#…].

    Never raises; something that is not a URL shows as "(not a URL)".
    """
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return "(not a URL)"
    scheme = parts.scheme.lower()
    if not scheme:
        return "(not a URL)"
    if not parts.netloc:
        return f"{scheme}:{HIDDEN}" if not url.strip().lower().startswith(f"{scheme}://") else f"{scheme}://{HIDDEN}"
    return f"{scheme}://{_authority(parts)}{_path(parts.path)}" + (f"?{HIDDEN}" if parts.query else "") \
        + (f"#{HIDDEN}" if parts.fragment else "")


def _authority(parts: SplitResult) -> str:
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"  # IPv6
    try:
        port = parts.port
    except ValueError:
        port = None  # not a port: whatever it was is not shown
    userinfo = "***@" if "@" in parts.netloc else ""
    return f"{userinfo}{host}" + (f":{port}" if port is not None else "")


def _path(path: str) -> str:
    if not path or path == "/":
        return path
    first, sep, rest = path[1:].partition("/")
    return f"/{first}" + (f"/{HIDDEN}" if sep else "")


def hide_url_secrets(text: str, url: str) -> str:
    """`text` (say, an error from a library) with `url` and its secret parts replaced:
    the whole URL by its redacted form, then the password, user, query and path tail by ***."""
    text = text.replace(url, redact_url(url))
    try:
        parts = urlsplit(url)
    except ValueError:
        return text
    tail = parts.path[1:].partition("/")[2]
    for secret in sorted({parts.password or "", parts.username or "", parts.query, parts.fragment, tail},
                         key=len, reverse=True):
        if len(secret) >= 4:  # shorter ones would mangle ordinary words and numbers
            text = text.replace(secret, "***")
    return text


_USERINFO = re.compile(r"(://|^|\s)[^/@\s]+@(?=[\w.\[-])")
_QUERY = re.compile(r"\?[^\s'\"<>=&?]*=[^\s'\"<>]*")
_CREDENTIAL = re.compile(r"(?i)\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]{8,}")
_SECRET_VALUE = re.compile(
    r"(?i)\b(AccountKey|SharedAccessSignature|sig|signature|x-amz-signature|x-amz-credential|x-amz-security-token|"
    r"access_token|token|password|secret|key)\s*[=:]\s*[^;&\s'\",]+")


def redact(text: str) -> str:
    """`text` (an SDK's message, a configured address, a probe's result) without the secrets
    such text carries: `user:password@` becomes `***@`, a URL's query (SAS signatures, presigned
    parameters) becomes `?…`, bearer and basic credentials, account keys and `secret=`-like values become `***`.

    The one scrubber for free text; URLs known as URLs go through `redact_url`."""
    text = _USERINFO.sub(r"\1***@", text)
    text = _QUERY.sub("?" + HIDDEN, text)
    text = _CREDENTIAL.sub(r"\1 ***", text)
    return _SECRET_VALUE.sub(lambda m: f"{m.group(1)}=***", text)


def check_http_url(value: str, what: str) -> str:
    """`value` if it is an absolute http(s) URL with a host (and a valid port), else a
    UsageError naming `what` (the flag or setting) and showing only the redacted URL."""
    hint = "Use http://HOST[:PORT]/PATH or https://HOST[:PORT]/PATH"
    if not value or any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in value):
        raise UsageError(f"{what}: not a URL (empty, or holds spaces or control characters)",
                         hint=hint + "; encode spaces as %20")
    shown = redact_url(value)
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError as exc:
        raise UsageError(f"{what} {shown}: not a valid URL ({exc})", hint=hint) from None
    if not parts.scheme:
        raise UsageError(f"{what}: not an absolute URL", hint=hint)
    if parts.scheme.lower() not in ("http", "https"):
        raise UsageError(f"{what} {shown}: only http:// and https:// URLs are accepted", hint=hint)
    if not parts.hostname:
        raise UsageError(f"{what} {shown}: the URL names no host", hint=hint)
    if port == 0:
        raise UsageError(f"{what} {shown}: port 0 is not a port", hint=hint)
    return value
