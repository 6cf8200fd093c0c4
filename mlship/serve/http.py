"""uvicorn's httptools protocol, answering a response in one write.

uvicorn writes a response's status line and headers when the app sends
`http.response.start`, and its body in a second write. On uvloop each write
is a system call that sends a TCP segment at once, and the client wakes up
for each: two per response, where one would do. Here the head waits for the
first body write (or the end of the response) and goes out with it, so an
answer in one body (every answer of `mlship serve`) is one write. Everything
else (parsing, limits, keep-alive, pipelining, flow control, 100-continue,
HEAD, streaming bodies) stays uvicorn's own.
"""

from __future__ import annotations

from typing import Any

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
        parts = [STATUS_LINE[status]]
        for name, value in self.default_headers:  # the date (and server) header
            parts += (name, b": ", value, b"\r\n")
        parts.append(head)
        if not self.keep_alive:
            parts.append(b"connection: close\r\n")
        parts.append(b"\r\n")
        if self.scope["method"] != "HEAD":
            parts.append(body)
        self.transport.write(b"".join(parts))
        self.response_complete = True
        self.message_event.set()
        if not self.keep_alive:
            self.transport.close()
        self.on_response()


class OneWriteProtocol(HttpToolsProtocol):
    """HttpToolsProtocol whose requests answer with one write per response."""

    def on_headers_complete(self) -> None:
        before = self.cycle
        super().on_headers_complete()
        cycle = self.cycle
        if cycle is not before and type(cycle) is RequestResponseCycle:
            # Its task is created but has not run: `send` is looked up when it does.
            cycle.__class__ = _OneWriteCycle
            cycle.transport = _HeldHead(cycle.transport)
            # The server's request tasks: an app may see that its request is alone (mlship's runs it at once).
            cycle.scope["mlship.tasks"] = self.tasks  # type: ignore[typeddict-unknown-key]
            offered = cycle.scope.get("extensions")
            cycle.scope["extensions"] = _EXTENSIONS if not offered else {**offered, **_EXTENSIONS}
