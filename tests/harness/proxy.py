"""A counting HTTP proxy on loopback, put in front of a registry.

It records every request (method, path, request body bytes), so a test can
count blob uploads, and it can go down in the middle of an upload: after
`cut_after_bytes` of request bodies it drops the connection and stops
listening, as a registry that dies mid-push would. With `bearer` set to
(user, password) it asks for Bearer tokens, which its own /token realm gives
for those Basic credentials, the way Docker Hub or GHCR do.
"""

from __future__ import annotations

import base64
import http.client
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.harness.ports import LOOPBACK

HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "te", "trailer", "upgrade"}


@dataclass
class Seen:
    method: str
    path: str
    body_bytes: int


@dataclass
class CountingProxy:
    address: str
    upstream: str
    server: ThreadingHTTPServer
    thread: threading.Thread
    requests: list[Seen] = field(default_factory=list)
    cut_after_bytes: int | None = None
    body_total: int = 0
    bearer: tuple[str, str] | None = None
    token = "mlship-test-token"

    def blob_uploads(self) -> list[Seen]:
        """Finished blob uploads: the PUT that closes each upload session."""
        return [r for r in self.requests if r.method == "PUT" and "/blobs/uploads/" in r.path]

    def uploaded_bytes(self) -> int:
        return sum(r.body_bytes for r in self.requests if r.method in ("PUT", "PATCH") and "/blobs/" in r.path)

    def reset(self) -> None:
        self.requests.clear()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def start_counting_proxy(upstream: str) -> CountingProxy:
    """Proxy 127.0.0.1:FREE -> `upstream` ("127.0.0.1:PORT")."""
    proxy: CountingProxy

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _forward(self) -> None:
            body = self._body()
            if body is None:
                return
            proxy.requests.append(Seen(self.command, self.path, len(body)))
            if proxy.bearer is not None and self._token_refused():
                return
            conn = http.client.HTTPConnection(upstream, timeout=60)
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP}
            headers["Content-Length"] = str(len(body))
            if self.command in ("GET", "HEAD") and not body:
                headers.pop("Content-Length")
            conn.request(self.command, self.path, body=body or None, headers=headers)
            response = conn.getresponse()
            data = response.read()
            self.send_response(response.status)
            for key, value in response.getheaders():
                if key.lower() not in HOP and key.lower() != "content-length":
                    self.send_header(key, value)
            length = response.getheader("Content-Length") if self.command == "HEAD" else str(len(data))
            self.send_header("Content-Length", length or "0")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)
            conn.close()

        def _token_refused(self) -> bool:
            user, password = proxy.bearer
            basic = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
            if self.path.startswith("/token"):
                ok = self.headers.get("Authorization") == basic
                self._reply(200 if ok else 401, json.dumps({"token": proxy.token}).encode() if ok else b"{}")
                return True
            if self.headers.get("Authorization") == f"Bearer {proxy.token}":
                return False
            realm = f'Bearer realm="http://{proxy.address}/token",service="test",scope="repository:ml/bc:pull,push"'
            self._reply(401, b'{"errors":[{"code":"UNAUTHORIZED","message":"token needed"}]}', realm)
            return True

        def _reply(self, status: int, body: bytes, challenge: str | None = None) -> None:
            self.send_response(status)
            if challenge:
                self.send_header("WWW-Authenticate", challenge)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _body(self) -> bytes | None:
            chunks = []
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        self.rfile.readline()
                        break
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
                    if self._cut(size):
                        return None
            else:
                remaining = int(self.headers.get("Content-Length") or 0)
                while remaining:
                    block = self.rfile.read(min(remaining, 1 << 16))
                    if not block:
                        break
                    chunks.append(block)
                    remaining -= len(block)
                    if self._cut(len(block)):
                        return None
            return b"".join(chunks)

        def _cut(self, n: int) -> bool:
            proxy.body_total += n
            if proxy.cut_after_bytes is None or proxy.body_total < proxy.cut_after_bytes:
                return False
            self.close_connection = True
            threading.Thread(target=proxy.stop, daemon=True).start()  # the registry "goes down"
            self.connection.close()
            return True

        do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _forward

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib name
            pass

    server = ThreadingHTTPServer((LOOPBACK, 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), name="counting-proxy", daemon=True)
    thread.start()
    proxy = CountingProxy(f"{LOOPBACK}:{server.server_address[1]}", upstream, server, thread)
    return proxy
