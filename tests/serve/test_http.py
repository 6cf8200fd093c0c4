"""OneWriteProtocol: uvicorn's httptools protocol answering in one write.

Driven in process through a transport that records its writes, so what
goes out in which write is exact (on a socket, how reads split is timing)."""

from __future__ import annotations

import pytest

import asyncio
import time

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


def connection(asgi_app, **options) -> tuple[OneWriteProtocol, RecordingTransport, ServerState]:
    """A new connection of the protocol to `asgi_app`, its transport recording the writes."""
    config = uvicorn.Config(asgi_app, lifespan="off", log_level="critical", server_header=False, date_header=False,
                            **options)
    config.load()
    state = ServerState()
    protocol = OneWriteProtocol(config=config, server_state=state, app_state={})
    transport = RecordingTransport()
    protocol.connection_made(transport)
    return protocol, transport, state


def exchange(*chunks: bytes, after=None) -> RecordingTransport:
    """Feed the request bytes to a new connection; run until its tasks are done."""
    async def main():
        protocol, transport, state = connection(app)
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


# -- requests an app answers without a task (direct / direct_answer) ---------------

class DirectApp:
    """Takes POSTs to /direct* directly: answers with the body it got (/direct-later: a turn of
    the loop later, as a batch would); anything else goes through ASGI, noted in `asgi`."""

    def __init__(self) -> None:
        self.asgi: list[str] = []
        self.direct_bodies: list[bytes] = []

    def direct(self, scope) -> bool:
        return scope["method"] == "POST" and scope["path"].startswith("/direct")

    def direct_answer(self, scope, body, respond) -> None:
        self.direct_bodies.append(body)
        answer = lambda: respond(200, b"content-length: %d\r\n" % len(body), body)  # noqa: E731
        if scope["path"] == "/direct-later":
            asyncio.get_running_loop().call_soon(answer)
        else:
            answer()

    async def __call__(self, scope, receive, send):
        self.asgi.append(scope["path"])
        await app(scope, receive, send)


def direct_exchange(*chunks: bytes, before_answer=None, direct_app=None, answers=0):
    direct_app = direct_app or DirectApp()
    seen_tasks = []

    async def main():
        protocol, transport, state = connection(direct_app, proxy_headers=False)  # as mlship serves: unwrapped
        for chunk in chunks:
            protocol.data_received(chunk)
            seen_tasks.append(len(state.tasks))
            if before_answer:
                before_answer(protocol)
            for _ in range(20):
                await asyncio.sleep(0)
        while state.tasks:
            await asyncio.gather(*state.tasks, return_exceptions=True)
        deadline = time.monotonic() + 30
        while len(transport.writes) < answers and time.monotonic() < deadline:  # a batch run on a thread
            await asyncio.sleep(0.01)
        for _ in range(20):  # a batch's callbacks (the prediction log)
            await asyncio.sleep(0)
        return transport
    transport = asyncio.run(main())
    return transport, direct_app, seen_tasks


def test_a_direct_request_is_answered_in_one_write_without_a_task():
    transport, direct_app, tasks = direct_exchange(b"POST /direct HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc")
    assert transport.writes == [b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nabc"]
    assert direct_app.asgi == [] and tasks == [0] and not transport.closed


def test_a_direct_body_in_pieces_is_handed_over_once_whole():
    transport, direct_app, _ = direct_exchange(b"POST /direct HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\n\r\nab",
                                               b"cd", b"ef")
    assert direct_app.direct_bodies == [b"abcdef"]
    assert transport.writes == [b"HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\nabcdef"]


def test_pipelined_direct_requests_are_answered_in_order():
    transport, direct_app, _ = direct_exchange(
        b"POST /direct-later HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc"
        b"POST /other HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nde"
        b"POST /direct HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\nf")
    assert [w.split(b"\r\n\r\n")[1] for w in transport.writes] == [b"abc", b"de", b"f"]
    assert direct_app.asgi == ["/other"] and direct_app.direct_bodies == [b"abc", b"f"]


def test_a_big_direct_body_goes_to_the_app_in_a_task():
    big = b"x" * 70_000
    transport, direct_app, _ = direct_exchange(
        b"POST /direct HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n" % len(big) + big[:40_000], big[40_000:])
    assert direct_app.asgi == ["/direct"] and direct_app.direct_bodies == []
    assert transport.writes == [b"HTTP/1.1 200 OK\r\ncontent-length: 70000\r\nx-app: 1\r\n\r\n" + big]


def test_a_direct_route_expecting_100_continue_goes_to_the_app_in_a_task():
    transport, direct_app, _ = direct_exchange(
        b"POST /direct HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n", b"xyz")
    assert direct_app.asgi == ["/direct"]
    assert transport.writes == [b"HTTP/1.1 100 Continue\r\n\r\n",
                                b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\nx-app: 1\r\n\r\nxyz"]


def test_a_direct_answer_to_a_client_gone_writes_nothing():
    transport, _, _ = direct_exchange(b"POST /direct-later HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc",
                                      before_answer=lambda protocol: protocol.connection_lost(None))
    assert transport.writes == []


def test_a_direct_answer_waits_for_a_client_that_is_not_reading():
    resumed = []

    def pause_then_resume(protocol):
        protocol.pause_writing()  # the transport's buffer is full
        loop = asyncio.get_running_loop()
        loop.call_later(0.05, lambda: (resumed.append(list(protocol.transport.writes)), protocol.resume_writing()))

    transport, _, _ = direct_exchange(b"POST /direct-later HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc",
                                      before_answer=pause_then_resume)
    assert resumed == [[]]  # nothing written while paused
    assert transport.writes == [b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nabc"]


def test_serve_hands_its_prediction_routes_to_the_protocol_directly_with_the_same_answers(tmp_path):
    """mlship serve's config leaves ServeApp unwrapped (the protocol sees its hooks); its
    prediction routes answer the same directly as in an ASGI task, a bad request too."""
    import json

    from mlship.serve.app import ServeApp
    from mlship.serve.service import ModelService
    from mlship.serve.settings import ServeSettings
    from tests.support import MODEL

    settings = ServeSettings(model_path=MODEL, name="bc", version="1", log_dir=tmp_path / "log")
    service = ModelService(settings)
    serve_app = ServeApp(service)
    config = uvicorn.Config(serve_app, **server._uvicorn_options(settings))
    config.load()
    assert config.loaded_app is serve_app
    row = [14.0] * 30
    requests = {
        "/v2/models/bc/infer": {"id": "r-1", "inputs": [{"name": "X", "shape": [1, 30], "datatype": "FP32",
                                                         "data": row}]},
        "/predict": {"instances": [row]},
        "/v1/models/bc:predict": {"instances": [row]},
        "/invocations": {"inputs": {"X": [row]}},  # MLflow's tensor form
    }
    bad = b"POST /v2/models/bc/infer HTTP/1.1\r\nHost: a\r\nX-Request-ID: r-bad\r\nContent-Length: 9\r\n\r\n{\"inputs\""
    raw = b"".join(b"POST %s HTTP/1.1\r\nHost: a\r\nX-Request-ID: r-%d\r\nContent-Length: %d\r\n\r\n%s" % (
        path.encode(), i, len(json.dumps(body)), json.dumps(body).encode()) for i, (path, body) in enumerate(requests.items()))
    spy = []
    direct_answer = serve_app.direct_answer
    serve_app.direct_answer = lambda *a: (spy.append(a[0]["path"]), direct_answer(*a))
    transport, _, tasks = direct_exchange(raw + bad, direct_app=serve_app, answers=5)
    assert spy == [*requests, "/v2/models/bc/infer"] and tasks == [0]
    direct = [w.split(b"\r\n\r\n", 1) for w in transport.writes]

    def via_asgi(path, body, request_id):
        sent = []

        async def receive():
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message):
            sent.append(message)
        scope = {"type": "http", "method": "POST", "path": path, "headers": [(b"x-request-id", request_id)]}
        asyncio.run(serve_app(scope, receive, send))
        return sent[0]["status"], sent[1]["body"]

    expected = [via_asgi(path, json.dumps(body).encode(), b"r-%d" % i) for i, (path, body) in enumerate(requests.items())]
    expected.append(via_asgi("/v2/models/bc/infer", b'{"inputs"', b"r-bad"))
    service.close()
    assert [(int(head.split(b" ")[1]), body) for head, body in direct] == expected
    assert [s for s, _ in expected] == [200, 200, 200, 200, 400]
    assert b"x-request-id: r-0\r\n" in direct[0][0] and b"x-request-id: r-bad\r\n" in direct[4][0]
    logged = [json.loads(line) for f in sorted((tmp_path / "log").glob("*.jsonl")) for line in f.read_text().splitlines()]
    ids = [r["request_id"] for r in logged]
    assert sorted(ids) == sorted(["r-0", "r-1", "r-2", "r-3"] * 2)  # each path logged its predictions



class Clock:
    """What the protocol asks of its loop for keep-alive: the time (set by the test) and timers (recorded)."""

    def __init__(self) -> None:
        self.now = 100.0
        self.timers: list[list] = []  # [delay, callback, cancelled]

    def time(self) -> float:
        return self.now

    def call_later(self, delay, callback):
        timer = [delay, callback, False]
        self.timers.append(timer)

        class Handle:
            def cancel(self) -> None:
                timer[2] = True
        return Handle()

    def __getattr__(self, name):  # create_task and the rest: the running loop's
        return getattr(asyncio.get_running_loop(), name)

    def fire(self) -> None:
        """Run the newest timer's callback, as the loop would when it is due."""
        delay, callback, cancelled = self.timers[-1]
        assert not cancelled
        callback()


def keep_alive_connection(timeout: float = 5.0):
    protocol, transport, _ = connection(app, timeout_keep_alive=timeout)
    clock = Clock()
    protocol.loop = clock  # the protocol's timers and time only (the requests' tasks run on the real loop)
    return protocol, transport, clock


async def answer(protocol: OneWriteProtocol, data: bytes = b"POST /one HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\nx"):
    """Feed a request's bytes; wait for its task (the app answers in one)."""
    protocol.data_received(data)
    for _ in range(5):
        await asyncio.sleep(0)
    while protocol.tasks:
        await asyncio.gather(*protocol.tasks, return_exceptions=True)


def test_keep_alive_arms_one_timer_for_an_idle_spell_not_one_per_response():
    async def main():
        protocol, transport, clock = keep_alive_connection(timeout=5.0)
        for _ in range(3):
            await answer(protocol)
            clock.now += 1.0
        assert len(transport.writes) == 3
        assert [(t[0], t[2]) for t in clock.timers] == [(5.0, False)]  # armed after the first answer, never cancelled
    asyncio.run(main())


def test_keep_alive_timer_waits_out_the_rest_of_a_later_idle_spell():
    async def main():
        protocol, transport, clock = keep_alive_connection(timeout=5.0)
        await answer(protocol)  # idle from 100.0, timer due at 105.0
        clock.now = 103.0
        await answer(protocol)  # idle again from 103.0
        clock.now = 105.0
        clock.fire()
        assert not transport.closed
        assert clock.timers[-1][0] == pytest.approx(3.0)  # armed again for what is left: until 108.0
        clock.now = 108.0
        clock.fire()
        assert transport.closed
    asyncio.run(main())


def test_keep_alive_closes_a_connection_idle_for_the_timeout():
    async def main():
        protocol, transport, clock = keep_alive_connection(timeout=5.0)
        await answer(protocol)
        clock.now += 5.0
        clock.fire()
        assert transport.closed and len(clock.timers) == 1
    asyncio.run(main())


def test_keep_alive_never_closes_a_connection_while_its_request_is_in():
    async def main():
        protocol, transport, clock = keep_alive_connection(timeout=5.0)
        await answer(protocol)
        protocol.data_received(b"POST /one HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nab")  # the rest to come
        clock.now += 60.0
        clock.fire()
        assert not transport.closed and len(clock.timers) == 1  # not armed again while the request is in
        await answer(protocol, b"cde")
        assert transport.writes[-1].endswith(b"\r\n\r\nabcde")
        assert len(clock.timers) == 2 and clock.timers[-1][0] == 5.0  # idle again: armed for the whole timeout
    asyncio.run(main())


def test_keep_alive_timer_is_cancelled_when_the_connection_is_lost():
    async def main():
        protocol, transport, clock = keep_alive_connection(timeout=5.0)
        await answer(protocol)
        protocol.connection_lost(None)
        assert clock.timers[-1][2]  # cancelled
    asyncio.run(main())
