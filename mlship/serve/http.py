"""uvicorn's httptools protocol, answering a response in one write.

uvicorn writes a response's status line and headers when the app sends
`http.response.start`, and its body in a second write. On uvloop each write
is a system call that sends a TCP segment at once, and the client wakes up
for each: two per response, where one would do. Here the head waits for the
first body write (or the end of the response) and goes out with it, so an
answer in one body (every answer of `mlship serve`) is one write. Everything
else (parsing, limits, keep-alive, pipelining, flow control, 100-continue,
HEAD, streaming bodies) stays uvicorn's own.

An app may also take requests without an ASGI task of their own (what
`mlship serve` does for its prediction routes): given `direct(scope)` true
for a request, the protocol reads its whole body and calls `direct_answer(scope,
body, respond)`; the app calls `respond(status, head, body)` once, now or
later. That spares each request a task, its receive and send coroutines and
their messages. A body over 64 KiB, an `Expect: 100-continue` or a
concurrency limit reached goes to the app in a task as usual.
"""

from __future__ import annotations

import asyncio
import urllib.parse
from typing import Any, Callable

import httptools
from uvicorn.protocols.http.flow_control import HIGH_WATER_LIMIT, service_unavailable
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol, RequestResponseCycle

# The ASGI extension this protocol offers (in scope["extensions"]): a response in
# one message, `{"type": RESPONSE, "status": int, "head": bytes, "body": bytes}`,
# where `head` is the app's header lines ("name: value\r\n" each, content-length
# among them), made and checked by the app (once per model, most of them). It
# spares a response uvicorn's two messages and its header-by-header checks.
RESPONSE = "mlship.response"
_EXTENSIONS = {RESPONSE: {}}


class _HeldHead:
    """The cycle's transport: holds the head written during
    `http.response.start` and sends it with the next write."""

    __slots__ = ("transport", "holding", "head")

    def __init__(self, transport: Any) -> None:
        self.transport = transport
        self.holding = False
        self.head: bytes | None = None

    def write(self, data: bytes) -> None:
        if self.holding:
            self.head = data
            return
        if self.head is not None:
            data, self.head = self.head + data, None
        self.transport.write(data)

    def flush(self) -> None:
        if self.head is not None:
            head, self.head = self.head, None
            self.transport.write(head)

    def close(self) -> None:
        self.flush()
        self.transport.close()

    def __getattr__(self, name: str) -> Any:  # is_closing, get_extra_info, ...
        return getattr(self.transport, name)


class _OneWriteCycle(RequestResponseCycle):
    transport: Any
    direct = False  # to be answered by the app's `direct_answer` once its body is read

    def respond(self, status: int, head: bytes, body: bytes) -> None:
        """The answer to a request the app took directly (the `respond` it is given)."""
        if self.response_started or self.disconnected or self.transport.is_closing():
            return  # nobody to answer
        if self.flow.write_paused:  # the client is not reading: wait for it in a task, as `send` does
            tasks = self.scope["mlship.tasks"]  # type: ignore[typeddict-item]
            task = asyncio.get_running_loop().create_task(
                self.send({"type": RESPONSE, "status": status, "head": head, "body": body}))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            return
        self._respond(status, head, body)

    async def send(self, message: Any) -> None:
        if message["type"] == RESPONSE and not self.response_started:
            if self.flow.write_paused and not self.disconnected:
                await self.flow.drain()
            if not self.disconnected:
                self._respond(message["status"], message["head"], message["body"])
            return
        held = self.transport
        if message["type"] == "http.response.start" and not self.response_started:
            held.holding = True
            try:
                await super().send(message)
            finally:
                held.holding = False
            return
        try:
            await super().send(message)
        finally:
            if self.disconnected:
                held.head = None  # nobody to answer
            elif self.response_complete:
                held.flush()  # a HEAD answer has no body write

    def _respond(self, status: int, head: bytes, body: bytes) -> None:
        """What uvicorn does for a start and a final body, in one write."""
        self.response_started = True
        self.waiting_for_100_continue = False
        keep_alive = self.keep_alive
        self.transport.write(b"%s%s%s%s\r\n%s" % (
            STATUS_LINE[status], _default_lines(self.default_headers), head,
            b"" if keep_alive else b"connection: close\r\n", body if self.scope["method"] != "HEAD" else b""))
        self.response_complete = True
        self.message_event.set()
        if not keep_alive:
            self.transport.close()
        self.on_response()


_defaults: tuple[Any, bytes] = (None, b"")


def _default_lines(headers: list[tuple[bytes, bytes]]) -> bytes:
    """The server's default header lines (date, server): uvicorn makes a new list of
    them once a second, so they are joined once per list."""
    global _defaults
    if _defaults[0] is not headers:
        _defaults = (headers, b"".join(b"%s: %s\r\n" % pair for pair in headers))
    return _defaults[1]


class OneWriteProtocol(HttpToolsProtocol):
    """HttpToolsProtocol whose requests answer with one write per response,
    and whose app may answer some requests without a task (see above).

    Its request callbacks are uvicorn 0.54's (mlship.serve.server.ONE_WRITE_UVICORN)
    folded together, with a request's cycle made as this protocol's own at once, and
    the keep-alive timer armed once per idle spell instead of once per response."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._direct: Callable[[Any], bool] | None = getattr(self.app, "direct", None)
        self._answer: Callable[[Any, bytes, Callable[[int, bytes, bytes], None]], None] | None = \
            getattr(self.app, "direct_answer", None)
        self._idle_since: float | None = None  # when the last answer went out, while no request is in

    # -- a request ----------------------------------------------------------------

    def on_message_begin(self) -> None:
        self.url = b""
        self.expect_100_continue = False
        self.headers = []
        self.scope = {  # type: ignore[typeddict-item]
            "type": "http",
            "asgi": {"version": self.asgi_version, "spec_version": "2.3"},
            "http_version": "1.1",
            "server": self.server,
            "client": self.client,
            "scheme": self.scheme,
            "root_path": self.root_path,
            "headers": self.headers,
            "state": self.app_state.copy(),
            "extensions": _EXTENSIONS,
            # The server's request tasks: an app may see that its request is alone (mlship's runs it at once).
            "mlship.tasks": self.tasks,
        }

    def on_headers_complete(self) -> None:
        parser, scope = self.parser, self.scope
        http_version = parser.get_http_version()
        scope["method"] = parser.get_method().decode("ascii")
        if http_version != "1.1":
            scope["http_version"] = http_version
        if parser.should_upgrade() and self._should_upgrade():
            return
        parsed_url = httptools.parse_url(self.url)
        raw_path = parsed_url.path
        path = raw_path.decode("ascii")
        if "%" in path:
            path = urllib.parse.unquote(path)
        scope["path"] = self.root_path + path
        scope["raw_path"] = self.root_path.encode("ascii") + raw_path
        scope["query_string"] = parsed_url.query or b""
        if self.limit_concurrency is not None and (
                len(self.connections) >= self.limit_concurrency or len(self.tasks) >= self.limit_concurrency):
            app = service_unavailable
            self.logger.warning("Exceeded concurrency limit.")
        else:
            app = self.app
        existing_cycle = self.cycle
        self.cycle = cycle = _OneWriteCycle(
            scope=scope,
            transport=self.transport,
            flow=self.flow,
            logger=self.logger,
            access_logger=self.access_logger,
            access_log=self.access_log,
            default_headers=self.server_state.default_headers,
            message_event=asyncio.Event(),
            expect_100_continue=self.expect_100_continue,
            keep_alive=http_version != "1.0" and parser.should_keep_alive(),
            on_response=self.on_response_complete,
        )
        if existing_cycle is None or existing_cycle.response_complete:
            self._start_asgi_task(cycle, app)
        else:  # a pipelined request, queued: its task (if any) starts later
            self.flow.pause_reading()
            self.pipeline.appendleft((cycle, app))

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: Any) -> None:
        if app is self.app and self._direct is not None and not cycle.waiting_for_100_continue \
                and self._direct(cycle.scope):
            cycle.direct = True  # type: ignore[attr-defined]
            if not cycle.more_body:  # a pipelined request, read while the one before was answered
                self._hand_over(cycle)
            return
        self._task(cycle, app)

    def _task(self, cycle: Any, app: Any) -> None:
        """The request's ASGI task, its response's head held for its first body write."""
        cycle.transport = _HeldHead(cycle.transport)
        super()._start_asgi_task(cycle, app)

    def on_body(self, body: bytes) -> None:
        cycle = self.cycle
        if (self.parser.should_upgrade() and self._should_upgrade()) or cycle.response_complete:
            return
        cycle.body += body
        if len(cycle.body) > HIGH_WATER_LIMIT:
            self.flow.pause_reading()
            if cycle.direct:  # type: ignore[attr-defined]
                # A big body: the app reads it in a task of its own, with flow control and its limits.
                cycle.direct = False  # type: ignore[attr-defined]
                self._task(cycle, self.app)
        cycle.message_event.set()

    def on_message_complete(self) -> None:
        cycle = self.cycle
        if (self.parser.should_upgrade() and self._should_upgrade()) or cycle.response_complete:
            return
        cycle.more_body = False
        cycle.message_event.set()
        if cycle.direct:  # type: ignore[attr-defined]
            self._hand_over(cycle)

    def _hand_over(self, cycle: Any) -> None:
        cycle.direct = False
        self._answer(cycle.scope, bytes(cycle.body), cycle.respond)  # type: ignore[misc]

    # -- keep-alive: one timer per idle spell -------------------------------------

    def _unset_keepalive_if_required(self) -> None:
        """Data came in (or the answer went out): not idle. The timer, if armed, finds
        that out when it fires, instead of being cancelled on every request."""
        self._idle_since = None

    def on_response_complete(self) -> None:
        self.server_state.total_requests += 1
        if self.transport.is_closing():
            return
        self.flow.resume_reading()
        if self.pipeline:
            self._idle_since = None
            cycle, app = self.pipeline.pop()
            self._start_asgi_task(cycle, app)
            return
        self._idle_since = self.loop.time()
        if self.timeout_keep_alive_task is None:
            self.timeout_keep_alive_task = self.loop.call_later(self.timeout_keep_alive, self._keep_alive_due)

    def _keep_alive_due(self) -> None:
        """Close the connection once it has been idle for the keep-alive timeout."""
        self.timeout_keep_alive_task = None
        if self._idle_since is None or self.transport.is_closing():
            return  # a request is in: armed again when it is answered
        left = self._idle_since + self.timeout_keep_alive - self.loop.time()
        if left > 0:
            self.timeout_keep_alive_task = self.loop.call_later(left, self._keep_alive_due)
        else:
            self.timeout_keep_alive_handler()

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        if self.timeout_keep_alive_task is not None:
            self.timeout_keep_alive_task.cancel()
            self.timeout_keep_alive_task = None
