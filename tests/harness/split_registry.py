"""A registry on loopback that asks for credentials and hands uploads and blob reads to another origin.

Registries backed by object storage answer an upload with a `Location` on the
storage host, and a blob read with a redirect there; that host must never see
the registry's credentials. `start_split_registry(upstream)` puts a front in
front of a plain docker-registry (`upstream`, "127.0.0.1:PORT"):

- the front asks for Basic credentials, or (`bearer=True`) for a Bearer token
  from its own /token realm (given for those Basic credentials);
- upload `Location`s it passes on point at `storage` instead, and with
  `redirect_blobs` it answers blob GETs with a 307 to `storage`;
- `storage` is a second origin: another port on 127.0.0.1 by default, or any
  host:port whose requests arrive at one of the two servers (e.g.
  "localhost:FRONTPORT", the front under another host name); it forwards
  without checking credentials, as a presigned storage URL would.

Every request either server receives is recorded with its role and headers.
For attack tests, `realm`, `blob_location` and `upload_location` (path and
query of the registry's own Location -> the Location sent) can be set to
hostile values, and `storage_challenge` makes storage answer every request
with 401 and that `WWW-Authenticate` (a host fishing for credentials).
"""

from __future__ import annotations

import base64
import http.client
import json
import threading
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

from tests.harness.ports import LOOPBACK
from tests.harness.proxy import HOP

TOKEN = "split-registry-token"


@dataclass
class Received:
    role: str  # "front", "storage" or "token" (GET /token on either server)
    method: str
    path: str
    headers: dict[str, str]


@dataclass
class SplitRegistry:
    front: str
    storage: str
    upstream: str
    user: str
    password: str
    bearer: bool = False
    redirect_blobs: bool = False
    realm: str | None = None  # default: http://FRONT/token
    blob_location: str | None = None  # default: http://STORAGE/v2/.../blobs/DIGEST
    upload_location: Callable[[str], str] | None = None  # default: http://STORAGE + path?query
    storage_challenge: str | None = None
    received: list[Received] = field(default_factory=list)
    servers: list[ThreadingHTTPServer] = field(default_factory=list)
    threads: list[threading.Thread] = field(default_factory=list)

    def by(self, role: str) -> list[Received]:
        return [r for r in self.received if r.role == role]

    def stop(self) -> None:
        for server in self.servers:
            server.shutdown()
            server.server_close()
        for thread in self.threads:
            thread.join(timeout=5)


def start_split_registry(upstream: str, *, user: str = "ci", password: str = "s3cret",
                         storage: str | None = None, bearer: bool = False) -> SplitRegistry:
    """Front and storage servers on free 127.0.0.1 ports, forwarding to `upstream`."""
    split: SplitRegistry

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _handle(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            role = "storage" if self.headers.get("Host") == split.storage else "front"
            if self.path.startswith("/token"):  # the realm: on the front, or on storage when `realm` says so
                role = "token"
            split.received.append(Received(role, self.command, self.path, dict(self.headers.items())))
            if role == "token":
                ok = self.headers.get("Authorization") == _basic(split.user, split.password)
                return self._reply(200 if ok else 401, json.dumps({"token": TOKEN} if ok else {}).encode())
            if role == "storage" and split.storage_challenge:
                return self._reply(401, b"{}", {"WWW-Authenticate": split.storage_challenge})
            if role == "front" and not self._authorized():
                return self._reply(401, b'{"errors":[{"code":"UNAUTHORIZED","message":"credentials needed"}]}',
                                   {"WWW-Authenticate": self._challenge()})
            if role == "front" and split.redirect_blobs and self.command == "GET" and "/blobs/sha256:" in self.path:
                location = split.blob_location or f"http://{split.storage}{self.path}"
                return self._reply(307, b"", {"Location": location})
            self._forward(body, role)

        def _authorized(self) -> bool:
            expected = f"Bearer {TOKEN}" if split.bearer else _basic(split.user, split.password)
            return self.headers.get("Authorization") == expected

        def _challenge(self) -> str:
            if not split.bearer:
                return 'Basic realm="split-registry"'
            realm = f"http://{split.front}/token" if split.realm is None else split.realm
            return f'Bearer realm="{realm}",service="split",scope="repository:ml/bc:pull,push"'

        def _forward(self, body: bytes, role: str) -> None:
            conn = http.client.HTTPConnection(split.upstream, timeout=60)
            # the upstream sees no credentials: the front checked them, storage needs none
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP | {"authorization"}}
            if not (self.command in ("GET", "HEAD") and not body):
                headers["Content-Length"] = str(len(body))
            conn.request(self.command, self.path, body=body or None, headers=headers)
            response = conn.getresponse()
            data = response.read()
            conn.close()
            extra = {k: v for k, v in response.getheaders() if k.lower() not in HOP | {"content-length"}}
            location = extra.get("Location")
            if role == "front" and location and "/blobs/uploads/" in location:
                parts = urllib.parse.urlsplit(location)
                tail = parts.path + (f"?{parts.query}" if parts.query else "")
                extra["Location"] = (split.upload_location or (lambda t: f"http://{split.storage}{t}"))(tail)
            length = response.getheader("Content-Length") if self.command == "HEAD" else None
            self._reply(response.status, data, extra, length)

        def _reply(self, status: int, body: bytes, headers: dict[str, str] | None = None,
                   length: str | None = None) -> None:
            self.send_response(status)
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            if not (headers or {}).get("Content-Type"):
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", length or str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib name
            pass

    servers = [ThreadingHTTPServer((LOOPBACK, 0), Handler) for _ in range(2)]
    front = f"{LOOPBACK}:{servers[0].server_address[1]}"
    split = SplitRegistry(front, storage or f"{LOOPBACK}:{servers[1].server_address[1]}", upstream, user, password,
                          bearer=bearer, servers=servers)
    for server in servers:
        server.daemon_threads = True
        thread = threading.Thread(target=server.serve_forever, args=(0.05,), name="split-registry", daemon=True)
        thread.start()
        split.threads.append(thread)
    return split


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
