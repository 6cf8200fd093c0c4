"""A small client of the OCI distribution API (no engine needed).

Auth follows the registry's `WWW-Authenticate` challenge: Basic, or a Bearer
token from the named realm. Credentials come from Docker's config
(`$DOCKER_CONFIG/config.json` or ~/.docker/config.json, `auths` entries) or,
for Amazon ECR, from boto3 (EcrAuth). Loopback registries (127.0.0.0/8,
localhost, ::1) and hosts listed in MLSHIP_INSECURE_REGISTRIES are reached
over plain HTTP, every other one over HTTPS.

Credentials go only to the origin (scheme, host, port) they were issued for:
upload `Location`s and blob redirects on another origin (object storage behind
the registry) are followed without them, and another origin's 401 is never
answered. Token realms get the Basic credentials, as the challenge asks, but
only over https (plain http only to the hosts above). Every URL a server hands
us is checked by `check_url` first: http(s), a host, no user info.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import os
import re
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from mlship.errors import ServiceError
from mlship.urls import redact_url

MANIFEST_TYPES = ("application/vnd.oci.image.manifest.v1+json",
                  "application/vnd.docker.distribution.manifest.v2+json")
INDEX_TYPES = ("application/vnd.oci.image.index.v1+json",
               "application/vnd.docker.distribution.manifest.list.v2+json")
CHUNK_SIZE = 32 << 20  # blobs larger than this go up in PATCH chunks of this size
BLOCK = 1 << 20
REDIRECTS = (301, 302, 303, 307, 308)
MAX_REDIRECTS = 5
DEFAULT_PORTS = {"http": 80, "https": 443}


class RegistryUnavailable(ServiceError):
    """The registry did not answer, or answered 5xx: worth another try."""


@dataclass
class Response:
    status: int
    headers: Any
    body: bytes

    def error_text(self) -> str:
        try:
            errors = json.loads(self.body)["errors"]
            return "; ".join(f"{e.get('code')}: {e.get('message')}" for e in errors)
        except (ValueError, KeyError, TypeError):
            return self.body[:200].decode("utf-8", "replace").strip() or f"HTTP {self.status}"


def docker_credentials(host: str) -> tuple[str, str] | None:
    """user, password for `host` from Docker's config.json `auths`, or None."""
    path = Path(os.environ.get("DOCKER_CONFIG") or Path.home() / ".docker") / "config.json"
    try:
        auths = json.loads(path.read_text()).get("auths", {})
    except (OSError, ValueError):
        return None
    for key in (host, f"https://{host}", f"http://{host}", f"https://{host}/v1/", f"https://{host}/v2/"):
        entry = auths.get(key) or {}
        if entry.get("auth"):
            user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
            return user, password
        if entry.get("username"):
            return entry["username"], entry.get("password", "")
    return None


def is_insecure(host: str) -> bool:
    name = host.rsplit(":", 1)[0].strip("[]") if not host.startswith("[") else host[1:].split("]")[0]
    listed = {h.strip() for h in os.environ.get("MLSHIP_INSECURE_REGISTRIES", "").split(",") if h.strip()}
    return name in ("localhost", "::1") or name.startswith("127.") or host in listed or name in listed


def same_origin(a: str, b: str) -> bool:
    """Whether two absolute URLs share scheme, host and port (default ports filled in, case ignored)."""
    return _origin(a) == _origin(b)


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = -1  # never equal to a real origin's port
    return scheme, (parts.hostname or "").lower(), port or DEFAULT_PORTS.get(scheme)


def check_url(url: str, what: str, registry: str) -> str:
    """`url`, if `what` ("a redirect"…) that `registry` handed us may be contacted: http(s) with a host and a valid port,
    no user info (it hides the real host), plain http only to loopback or MLSHIP_INSECURE_REGISTRIES hosts.
    Anything else is a ServiceError (exit 7) naming the registry."""
    parts = urllib.parse.urlsplit(url)
    shown = redact_url(url)[:120]  # presigned URLs carry signatures in the query, some hosts user info
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ServiceError(f"registry {registry} gave {what} that is not an http(s) URL ({shown!r}); "
                           "nothing was sent there")
    if "@" in parts.netloc:
        raise ServiceError(f"registry {registry} gave {what} that carries user info ({shown}); nothing was sent "
                           "there")
    try:
        parts.port
    except ValueError:
        raise ServiceError(f"registry {registry} gave {what} with an invalid port ({shown})") from None
    if parts.scheme == "http" and not is_insecure(parts.netloc):
        raise ServiceError(f"registry {registry} gave {what} over plain http ({shown}); nothing was sent there",
                           hint="Only loopback hosts and hosts in MLSHIP_INSECURE_REGISTRIES are reached over "
                                "plain HTTP")
    return url


@dataclass
class Registry:
    """One registry host; `credentials` returns (user, password) or None."""

    host: str
    credentials: Callable[[], tuple[str, str] | None] = lambda: None
    timeout: float = 60
    chunk_size: int = CHUNK_SIZE
    _conn: Any = field(default=None, repr=False)
    _auth: str | None = field(default=None, repr=False)
    _scopes: set = field(default_factory=set, repr=False)

    @property
    def base_url(self) -> str:
        return f"{'http' if is_insecure(self.host) else 'https'}://{self.host}"

    # ------------------------------------------------------------------ reading

    def manifest(self, repository: str, reference: str) -> tuple[bytes, str]:
        """The manifest (or index) bytes and media type for a tag or digest."""
        accept = ", ".join(MANIFEST_TYPES + INDEX_TYPES)
        response = self.request("GET", f"/v2/{repository}/manifests/{reference}", headers={"Accept": accept},
                                ok=(200, 404))
        if response.status == 404:
            raise ServiceError(f"image {self.host}/{repository}:{reference} not found ({response.error_text()})",
                               hint="Check the repository and tag, or push the base image first")
        media_type = response.headers.get("Content-Type", "").split(";")[0]
        if reference.startswith("sha256:") and _sha256(response.body) != reference:
            raise ServiceError(f"manifest {reference} from {self.host}/{repository} does not match its digest")
        return response.body, media_type

    def blob_bytes(self, repository: str, digest: str) -> bytes:
        """A small blob (an image config) in memory, digest-checked."""
        body = self.request("GET", f"/v2/{repository}/blobs/{digest}").body
        if _sha256(body) != digest:
            raise ServiceError(f"blob {digest} from {self.host}/{repository} does not match its digest")
        return body

    def download_blob(self, repository: str, digest: str, dest: Path) -> None:
        """Stream a blob into `dest` (through a temporary name), checking its digest. Authenticated like any
        request; a redirect to a storage host is followed without the credentials."""
        status, raw, url = self._send("GET", f"{self.base_url}/v2/{repository}/blobs/{digest}", {}, follow=True)
        if status != 200:
            self._check("GET", url, Response(status, raw.headers, raw.read()), (200,))
        _save_checked(raw, dest, digest, f"{self.host}/{repository}")

    # ------------------------------------------------------------------ writing

    def has_blob(self, repository: str, digest: str) -> bool:
        return self.request("HEAD", f"/v2/{repository}/blobs/{digest}", ok=(200, 404)).status == 200

    def mount_blob(self, repository: str, digest: str, source: str) -> str | None:
        """Mount a blob from another repository; None when mounted, else an upload URL to use."""
        query = urllib.parse.urlencode({"mount": digest, "from": source})
        response = self.request("POST", f"/v2/{repository}/blobs/uploads/?{query}", ok=(201, 202))
        return None if response.status == 201 else self._location(response)

    def upload_blob(self, repository: str, digest: str, path: Path, size: int,
                    advance: Callable[[int], None] = lambda n: None, location: str | None = None) -> None:
        """Upload a file as a blob: one PUT, or PATCH chunks then a closing PUT for large blobs."""
        if location is None:
            location = self._location(self.request("POST", f"/v2/{repository}/blobs/uploads/", ok=(202,)))
        offset = 0
        if size > self.chunk_size:
            while offset < size:
                length = min(self.chunk_size, size - offset)
                response = self.request("PATCH", location, body=(path, offset, length), ok=(202,), headers={
                    "Content-Type": "application/octet-stream", "Content-Range": f"{offset}-{offset + length - 1}"},
                    advance=advance)
                location, offset = self._location(response), offset + length
            body: Any = b""
        else:
            body = (path, 0, size)
        sep = "&" if "?" in location else "?"
        response = self.request("PUT", f"{location}{sep}digest={urllib.parse.quote(digest)}", body=body,
                                headers={"Content-Type": "application/octet-stream"}, ok=(201, 400),
                                advance=advance)
        if response.status == 400:
            raise ServiceError(f"registry {self.host} rejected blob {digest} for {repository}: "
                               f"{response.error_text()}", hint="The local blob does not match its digest; build again")

    def put_manifest(self, repository: str, tag: str, manifest: bytes, media_type: str) -> str:
        """PUT the manifest under `tag`; the digest the registry reports."""
        response = self.request("PUT", f"/v2/{repository}/manifests/{tag}", body=manifest,
                                headers={"Content-Type": media_type}, ok=(201, 400))
        if response.status == 400:
            raise ServiceError(f"registry {self.host} rejected the manifest for {repository}:{tag}: "
                               f"{response.error_text()}")
        return response.headers.get("Docker-Content-Digest") or _sha256(manifest)

    # ------------------------------------------------------------------ HTTP

    def request(self, method: str, url: str, *, headers: dict[str, str] | None = None, body: Any = b"",
                ok: tuple[int, ...] = (200,), advance: Callable[[int], None] = lambda n: None) -> Response:
        """One request (a path on this registry, or a URL it handed us) through `_send`; reads follow redirects.
        5xx and lost connections raise RegistryUnavailable, any other unexpected status a ServiceError."""
        url = self.base_url + url if url.startswith("/") else url
        status, raw, url = self._send(method, url, dict(headers or {}), body, advance,
                                      follow=method in ("GET", "HEAD"))
        response = Response(status, raw.headers, raw.read())
        self._check(method, url, response, ok)
        return response

    def _send(self, method: str, url: str, headers: dict[str, str], body: Any = b"",
              advance: Callable[[int], None] = lambda n: None, follow: bool = False) -> tuple[int, Any, str]:
        """Status, unread response and final URL. `Authorization` goes only to this registry's own origin,
        and only that origin's 401 is answered (once); `follow` follows redirects (checked by check_url)."""
        for _ in range(MAX_REDIRECTS + 1):
            own = same_origin(url, self.base_url)
            for attempt in range(2):
                sent = {**headers, "Authorization": self._auth} if own and self._auth else dict(headers)
                status, raw = self._open(method, url, sent, body, advance)
                if status != 401 or attempt == 1:
                    break
                challenge = raw.headers.get("WWW-Authenticate", "")
                raw.read()
                if not own:  # a storage host fishing for the registry's credentials
                    raise ServiceError(f"{_netloc(url)}, where registry {self.host} sent a {method}, asked for "
                                       f"credentials; mlship sends them only to {self.host} itself",
                                       hint="Check the registry's storage configuration")
                self._answer_challenge(challenge)
            location = raw.getheader("Location") if follow and status in REDIRECTS else None
            if not location:
                return status, raw, url
            raw.read()
            url = check_url(urllib.parse.urljoin(url, location), "a redirect", self.host)
        raise ServiceError(f"registry {self.host}: {method} {urllib.parse.urlsplit(url).path}: too many redirects")

    def _check(self, method: str, url: str, response: Response, ok: tuple[int, ...]) -> None:
        """Raise the error an unexpected status means (see request)."""
        status = response.status
        if status in (401, 403):
            raise ServiceError(f"registry {self.host} refused access ({status}: {response.error_text()})",
                               hint="Check the credentials (docker login, DOCKER_CONFIG, or AWS for ECR)")
        if status >= 500:
            raise RegistryUnavailable(f"registry {self.host} answered {status} to {method} "
                                      f"{urllib.parse.urlsplit(url).path}: {response.error_text()}")
        if status not in ok:
            raise ServiceError(f"registry {self.host}: {method} {urllib.parse.urlsplit(url).path} answered "
                               f"{status} ({response.error_text()})")

    def _open(self, method: str, url: str, headers: dict[str, str], body: Any = b"",
              advance: Callable[[int], None] = lambda n: None) -> tuple[int, Any]:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https"):  # every caller checked already; never speak HTTP elsewhere
            raise ServiceError(f"registry {self.host}: refusing to contact a {parts.scheme or 'relative'} URL")
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        try:
            conn = self._connection(parts.scheme, parts.netloc)
            conn.putrequest(method, target, skip_accept_encoding=True)
            length = body[2] if isinstance(body, tuple) else len(body)
            for key, value in {**headers, "Content-Length": str(length)}.items():
                if method not in ("GET", "HEAD") or key != "Content-Length":
                    conn.putheader(key, value)
            conn.endheaders()
            _send_body(conn, body, advance)
            response = conn.getresponse()
            return response.status, response
        except (OSError, http.client.HTTPException) as exc:
            self._close()
            raise RegistryUnavailable(f"registry {parts.netloc} is unreachable ({type(exc).__name__}: {exc})",
                                      hint="Check that it runs and that the address is right") from None

    def _connection(self, scheme: str, netloc: str) -> Any:
        key = (scheme, netloc)
        if self._conn is None or self._conn[0] != key:
            self._close()
            cls = http.client.HTTPSConnection if scheme == "https" else http.client.HTTPConnection
            self._conn = (key, cls(netloc, timeout=self.timeout))
        return self._conn[1]

    def _close(self) -> None:
        if self._conn is not None:
            self._conn[1].close()
            self._conn = None

    def _answer_challenge(self, challenge: str) -> None:
        scheme, _, params = challenge.partition(" ")
        creds = self.credentials()
        if scheme.lower() == "basic":
            if creds is None:
                raise ServiceError(f"registry {self.host} needs credentials and none are configured",
                                   hint=f"docker login {self.host} (or set DOCKER_CONFIG)")
            self._auth = "Basic " + base64.b64encode(f"{creds[0]}:{creds[1]}".encode()).decode()
        elif scheme.lower() == "bearer":
            fields = dict(re.findall(r'(\w+)="([^"]*)"', params))
            self._scopes.update(s for s in fields.get("scope", "").split(" ") if s)
            self._auth = "Bearer " + self._token(fields, creds)
        else:
            raise ServiceError(f"registry {self.host} asks for unsupported auth '{scheme}'")

    def _token(self, fields: dict[str, str], creds: tuple[str, str] | None) -> str:
        """A token from the challenge's realm, asked with the Basic credentials (the realm may be another host:
        that is where the registry says they go), for every scope seen so far."""
        realm = check_url(fields.get("realm", ""), "a token realm", self.host)
        query = [("service", fields.get("service", ""))] + [("scope", s) for s in sorted(self._scopes)]
        url = f"{realm}{'&' if '?' in realm else '?'}{urllib.parse.urlencode(query)}"
        headers = {"Authorization": "Basic " + base64.b64encode(f"{creds[0]}:{creds[1]}".encode()).decode()} \
            if creds else {}
        saved, self._auth = self._auth, None
        status, raw = self._open("GET", url, headers)
        body = raw.read()
        self._auth = saved
        if status != 200:
            raise ServiceError(f"token service {_netloc(url)} refused a token for {self.host} ({status})",
                               hint="Check the credentials (docker login, DOCKER_CONFIG)")
        try:
            data = json.loads(body)
            token = data.get("token") or data.get("access_token")
        except (ValueError, AttributeError):
            token = None
        if not isinstance(token, str) or not token or not token.isprintable():
            raise ServiceError(f"token service {_netloc(url)} answered no usable token for {self.host}")
        return token

    def _location(self, response: Response) -> str:
        location = response.headers.get("Location")
        if not location:
            raise ServiceError(f"registry {self.host} started an upload without a Location")
        return check_url(urllib.parse.urljoin(self.base_url + "/", location), "an upload location", self.host)


def _send_body(conn: Any, body: Any, advance: Callable[[int], None]) -> None:
    if not isinstance(body, tuple):
        if body:
            conn.send(body)
        return
    path, offset, length = body
    with open(path, "rb") as fh:
        fh.seek(offset)
        while length > 0:
            block = fh.read(min(BLOCK, length))
            if not block:
                raise OSError(f"{path} is shorter than expected")
            conn.send(block)
            length -= len(block)
            advance(len(block))


def _save_checked(response: Any, dest: Path, digest: str, where: str) -> None:
    sha = hashlib.sha256()
    partial = dest.with_name(f".{dest.name}.partial")
    with open(partial, "wb") as fh:
        for block in iter(lambda: response.read(BLOCK), b""):
            sha.update(block)
            fh.write(block)
    if f"sha256:{sha.hexdigest()}" != digest:
        partial.unlink(missing_ok=True)
        raise ServiceError(f"blob {digest} from {where} does not match its digest")
    os.replace(partial, dest)


def _sha256(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


def _netloc(url: str) -> str:
    return urllib.parse.urlsplit(url).netloc
