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
from typing import Any, Callable

from uvicorn.protocols.http.flow_control import HIGH_WATER_LIMIT
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
    """HttpToolsProtocol whose requests answer with one write per response,
    and whose app may answer some requests without a task (see above)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._direct: Callable[[Any], bool] | None = getattr(self.app, "direct", None)
        self._answer: Callable[[Any, bytes, Callable[[int, bytes, bytes], None]], None] | None = \
            getattr(self.app, "direct_answer", None)

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        if self.cycle is not None:
            self._adopt(self.cycle)  # a pipelined request, queued: its task (if any) starts later

    def _adopt(self, cycle: RequestResponseCycle) -> None:
        if type(cycle) is RequestResponseCycle:
            # Its task has not been created or has not run: `send` is looked up when it does.
            cycle.__class__ = _OneWriteCycle
            cycle.transport = _HeldHead(cycle.transport)
            # The server's request tasks: an app may see that its request is alone (mlship's runs it at once).
            cycle.scope["mlship.tasks"] = self.tasks  # type: ignore[typeddict-unknown-key]
            offered = cycle.scope.get("extensions")
            cycle.scope["extensions"] = _EXTENSIONS if not offered else {**offered, **_EXTENSIONS}

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: Any) -> None:
        self._adopt(cycle)
        if app is self.app and self._direct is not None and not cycle.waiting_for_100_continue \
                and self._direct(cycle.scope):
            cycle.direct = True  # type: ignore[attr-defined]
            if not cycle.more_body:  # a pipelined request, read while the one before was answered
                self._hand_over(cycle)
            return
        super()._start_asgi_task(cycle, app)

    def on_body(self, body: bytes) -> None:
        cycle = self.cycle
        super().on_body(body)
        if cycle.direct and len(cycle.body) > HIGH_WATER_LIMIT:  # type: ignore[union-attr]
            # A big body: the app reads it in a task of its own, with flow control and its limits.
            cycle.direct = False  # type: ignore[union-attr]
            super()._start_asgi_task(cycle, self.app)  # type: ignore[arg-type]

    def on_message_complete(self) -> None:
        cycle = self.cycle
        super().on_message_complete()
        if cycle is not None and cycle.direct and not cycle.more_body:  # type: ignore[attr-defined]
            self._hand_over(cycle)

    def _hand_over(self, cycle: Any) -> None:
        cycle.direct = False
        self._answer(cycle.scope, bytes(cycle.body), cycle.respond)  # type: ignore[misc]
