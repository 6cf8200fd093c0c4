"""OneWriteProtocol: uvicorn's httptools protocol answering in one write.

Driven in process through a transport that records its writes, so what
goes out in which write is exact (on a socket, how reads split is timing)."""

from __future__ import annotations

import pytest

import asyncio

import uvicorn
from uvicorn.server import ServerState

from mlship.serve import server
from mlship.serve.http import RESPONSE, OneWriteProtocol


class RecordingTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        assert not self.closed, "write after close"
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name, default=None):
        return {"sockname": ("127.0.0.1", 8080), "peername": ("127.0.0.1", 50000)}.get(name, default)

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def app(scope, receive, send):
    """Echoes the body; /stream answers in two chunks, /fail raises after starting."""
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    answer = body or b"hello"
    if scope["path"] == "/one":  # the one-message response this protocol offers
        assert RESPONSE in scope["extensions"]
        await send({"type": RESPONSE, "status": 201, "body": answer,
                    "head": b"content-length: %d\r\nx-app: 1\r\n" % len(answer)})
        return
    if scope["path"] == "/stream":
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"one,", "more_body": True})
        await send({"type": "http.response.body", "body": b"two"})
        return
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", b"%d" % len(answer)), (b"x-app", b"1")]})
    if scope["path"] == "/fail":
        raise RuntimeError("after the start")
    await send({"type": "http.response.body", "body": answer})


def exchange(*chunks: bytes, after=None) -> RecordingTransport:
    """Feed the request bytes to a new connection; run until its tasks are done."""
    async def main():
        config = uvicorn.Config(app, lifespan="off", log_level="critical", server_header=False, date_header=False)
        state = ServerState()
        protocol = OneWriteProtocol(config=config, server_state=state, app_state={})
        transport = RecordingTransport()
        protocol.connection_made(transport)
        for chunk in chunks:
            protocol.data_received(chunk)
            for _ in range(20):  # let the request's task run as far as it can
                await asyncio.sleep(0)
            if after:
                after(transport)
        while state.tasks:
            await asyncio.gather(*state.tasks, return_exceptions=True)
        return transport
    return asyncio.run(main())


def test_a_response_in_one_body_is_one_write():
    transport = exchange(b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n")
    assert transport.writes == [b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\nx-app: 1\r\n\r\nhello"]
    assert not transport.closed  # keep-alive


def test_pipelined_requests_get_one_write_each_in_order():
    transport = exchange(b"POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc"
                         b"POST /b HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nde")
    assert [w.split(b"\r\n\r\n")[1] for w in transport.writes] == [b"abc", b"de"]


def test_head_answers_the_head_alone():
    transport = exchange(b"HEAD /x HTTP/1.1\r\nHost: a\r\n\r\n")
    assert transport.writes == [b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\nx-app: 1\r\n\r\n"]


def test_a_streamed_body_sends_the_head_with_its_first_chunk():
    transport = exchange(b"GET /stream HTTP/1.1\r\nHost: a\r\n\r\n")
    assert len(transport.writes) == 2
    assert transport.writes[0].startswith(b"HTTP/1.1 200 OK\r\n") and transport.writes[0].endswith(b"\r\n4\r\none,\r\n")
    assert transport.writes[1] == b"3\r\ntwo\r\n0\r\n\r\n"


def test_100_continue_goes_out_before_the_body_is_sent():
    seen = []
    transport = exchange(b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n", b"xyz",
                         after=lambda t: seen.append(list(t.writes)))
    assert seen[0] == [b"HTTP/1.1 100 Continue\r\n\r\n"]  # not held back: the client waits for it
    assert transport.writes[1] == b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\nx-app: 1\r\n\r\nxyz"


def test_an_app_failing_after_the_start_still_sends_the_head_then_closes():
    transport = exchange(b"GET /fail HTTP/1.1\r\nHost: a\r\n\r\n")
    assert transport.writes == [b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\nx-app: 1\r\n\r\n"]
    assert transport.closed


def test_serve_uses_it_with_httptools():
    assert server._uvicorn_options(server.ServeSettings(model_path="m.onnx", name="m", version="1"))["http"] \
        is OneWriteProtocol


@pytest.mark.parametrize("version", ["0.53.2", "0.55.0", "1.0.0", "0.54.0.dev1"])
def test_an_untested_uvicorn_serves_with_its_own_protocol(monkeypatch, version):
    # The one-write protocol builds on uvicorn's internals: only releases it was tested with use it.
    import uvicorn

    monkeypatch.setattr(uvicorn, "__version__", version)
    expected = OneWriteProtocol if version.startswith("0.54.") else "httptools"
    assert server._http_protocol() == expected


def test_a_one_message_response_is_one_write_with_the_servers_own_headers():
    transport = exchange(b"POST /one HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc"
                         b"HEAD /one HTTP/1.1\r\nHost: a\r\n\r\n")
    assert transport.writes == [b"HTTP/1.1 201 Created\r\ncontent-length: 3\r\nx-app: 1\r\n\r\nabc",
                                b"HTTP/1.1 201 Created\r\ncontent-length: 5\r\nx-app: 1\r\n\r\n"]
    assert not transport.closed


def test_a_one_message_response_closes_a_connection_that_asked_for_it():
    transport = exchange(b"GET /one HTTP/1.0\r\nHost: a\r\n\r\n")
    assert transport.writes == [b"HTTP/1.1 201 Created\r\ncontent-length: 5\r\nx-app: 1\r\nconnection: close\r\n\r\n"
                                b"hello"]
    assert transport.closed


def test_the_app_answers_in_standard_messages_under_another_server(tmp_path):
    """Without the extension (any other ASGI server) ServeApp sends http.response.start and .body."""
    from mlship.serve.app import ServeApp
    from mlship.serve.service import ModelService
    from mlship.serve.settings import ServeSettings
    from tests.support import MODEL

    service = ModelService(ServeSettings(model_path=MODEL, name="bc", version="1", variant="canary"))
    sent = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": "/v2/health/ready", "headers": [(b"x-request-id", b"r-1")]}
    asyncio.run(ServeApp(service)(scope, receive, send))
    service.close()
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
    assert (b"x-request-id", b"r-1") in sent[0]["headers"] and (b"x-mlship-variant", b"canary") in sent[0]["headers"]
    assert sent[1]["body"] == b'{"ready":true}'
