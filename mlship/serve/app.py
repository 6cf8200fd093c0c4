"""The ASGI application: Open Inference Protocol (JSON and binary tensors),
KServe v1, /predict (mlship's and MLflow's formats), /metrics.

Plain ASGI (no web framework) keeps the per-request cost low; routes are a
handful of fixed paths. Everything that depends only on the model (routes,
response headers, the feed plan, the answers' fixed parts) is made once in
`ServeApp.__init__`; a request pays for its parse, its arrays and its bytes.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import os
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from mlship import __version__
from mlship import jsonfast
from mlship.serve import binary, protocol
from mlship.serve.errors import RequestError
from mlship.serve.formats import decode_predict
from mlship.serve.instances import BodyPlan, decode_rows
from mlship.predlog.entries import SentRows, row_outputs
from mlship.serve.service import ModelService

Send = Callable[[dict[str, Any]], Awaitable[None]]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Handler = Callable[[dict[str, Any], Receive, float], Awaitable[tuple[int, Any]]]
# A prediction request made ready to run: its feeds, its rows as sent (logged in their
# place; None: the feeds), and what makes the answer's body of the outputs.
_Prepared = tuple[dict[str, Any], "list[dict[str, Any]] | None", Callable[[dict[str, Any]], Any]]


@dataclass
class BinaryAnswer:
    """A JSON header followed by binary tensor data (binary tensor extension)."""

    header: bytes
    tail: bytes


class ServeApp:
    """ASGI app around one ModelService."""

    def __init__(self, service: ModelService) -> None:
        self.service = service
        self.prefix = f"/v2/models/{service.name}"
        self.inflight = 0
        self._observe = service.metrics.observe_request
        service.metrics.inflight_now = lambda: self.inflight
        self.plan = protocol.FeedPlan(service.signature, service.settings.allow_missing)
        self.rows = protocol.plan_for(BodyPlan, service.signature, service.settings.allow_missing)
        self.answer = protocol.InferAnswer(service.name, service.version)
        # Binary requests' JSON headers seen before (tritonclient sends one per shape): decoded once.
        self._known_headers: dict[bytes, protocol.KnownHeader] = {}
        self._max_body = service.settings.max_body_bytes
        self._variant = (b"x-mlship-variant", service.variant.encode())
        visible = all(" " <= c <= "~" for c in service.variant)
        self._variant_line = b"x-mlship-variant: %s\r\n" % self._variant[1] if visible else None
        # Request ids: unique per process (random prefix) and cheap (a counter),
        # the 32 hex digits of a uuid4 without a system call per request.
        self._id_prefix, self._ids = os.urandom(8).hex(), itertools.count(1)
        infer = f"{self.prefix}/infer"
        self._prepare: dict[Handler, Callable[[dict[str, Any], bytes, float], _Prepared]] = {}
        self._infer = self._prediction(self._prepare_infer)
        self._predict = self._prediction(self._prepare_predict)
        self._v1_predict = self._prediction(self._prepare_v1)
        self._hot = {  # the prediction routes, found without parsing the path
            ("POST", infer): ("infer", self._infer),
            ("POST", f"{self.prefix}/versions/{service.version}/infer"): ("infer", self._infer),
            ("POST", "/predict"): ("predict", self._predict),
            ("POST", "/invocations"): ("predict", self._predict),
            ("POST", f"/v1/models/{service.name}:predict"): ("predict", self._v1_predict),
        }

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            await self._http(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                # What start-up made (modules, the model, the plans) lives as long as the
                # process: the collector need not walk it again on every full collection,
                # a pause every request in flight would wait for.
                gc.collect()
                gc.freeze()
                # A young-generation collection every 700 net allocations ran once per
                # micro-batch at 64 connections (the requests in flight hold that many
                # objects), ~2 us a request; 10,000 still bounds what cycles keep.
                gc.set_threshold(10_000, *gc.get_threshold()[1:])
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.service.close()  # in-flight requests are done by now: flush the log
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        endpoint, status, body = "other", 500, None
        self.inflight += 1
        try:
            self._begin(scope)
            endpoint, handler = self._hot.get((scope["method"], scope["path"])) \
                or self._route(scope["method"], scope["path"])
            status, body = await handler(scope, receive, started)
        except Exception as exc:
            status, body = _failure(exc)
        finally:
            self.inflight -= 1
        status, content_type, payload, extra_headers = self._encoded(status, body)
        request_id = scope["mlship.request_id"]
        if self._variant_line is not None and RESPONSE in scope.get("extensions", _NONE):
            # mlship's own protocol (mlship.serve.http): the answer in one message.
            await send({"type": RESPONSE, "status": status, "body": payload,
                        "head": self._head(content_type, payload, request_id, extra_headers)})
        else:
            headers = [
                (b"content-type", content_type),
                (b"content-length", b"%d" % len(payload)),
                (b"x-request-id", request_id.encode()),
                self._variant,
                *extra_headers,
            ]
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": payload})
        self._observe(endpoint, status, time.perf_counter() - started)

    def _begin(self, scope: dict[str, Any]) -> None:
        """The request's headers (the first of a repeated one) and its id, in the scope.
        The id goes back in a response header: one sent is refused (400) unless it is safe there."""
        scope["mlship.headers"] = headers = dict(reversed(scope["headers"]))
        scope["mlship.request_id"] = f"{self._id_prefix}{next(self._ids):016x}"
        sent_id = headers.get(b"x-request-id")
        if sent_id:
            scope["mlship.request_id"] = protocol.checked_id(sent_id.decode("latin-1"), "X-Request-ID header") \
                or scope["mlship.request_id"]

    @staticmethod
    def _encoded(status: int, body: Any) -> tuple[int, bytes, bytes, tuple[tuple[bytes, bytes], ...]]:
        """A handler's answer as (status, content type, bytes, extra headers)."""
        if type(body) is bytes:
            return status, b"application/json", body, ()
        if isinstance(body, str):
            return status, b"text/plain; version=0.0.4; charset=utf-8", body.encode(), ()
        if isinstance(body, BinaryAnswer):
            return status, b"application/octet-stream", body.header + body.tail, \
                ((b"inference-header-content-length", b"%d" % len(body.header)),)
        try:
            return status, b"application/json", jsonfast.dumps(body), ()
        except Exception as exc:  # an answer that cannot be encoded: a bug, answered 500
            return 500, b"application/json", jsonfast.dumps(_internal(exc)), ()

    def _head(self, content_type: bytes, payload: bytes, request_id: str,
              extra_headers: tuple[tuple[bytes, bytes], ...]) -> bytes:
        """A response's header lines for mlship.serve.http (the request id and variant
        are checked: visible ASCII)."""
        head = b"content-type: %s\r\ncontent-length: %d\r\nx-request-id: %s\r\n%s" % (
            content_type, len(payload), request_id.encode(), self._variant_line)
        for name, value in extra_headers:
            head += b"%s: %s\r\n" % (name, value)
        return head

    # -- prediction requests without an ASGI task (mlship.serve.http) ---------------

    def direct(self, scope: dict[str, Any]) -> bool:
        """Whether mlship.serve.http may hand this request to `direct_answer` (its whole
        body read) instead of running the app in a task of its own: a
        prediction route, answered in one message, with no cache (its lookup is a coroutine)."""
        return (scope["method"], scope["path"]) in self._hot and self._variant_line is not None \
            and self.service.cache is None

    def direct_answer(self, scope: dict[str, Any], body: bytes, respond: Callable[[int, bytes, bytes], None]) -> None:
        """Answer a request `direct` took, from its whole body: `respond(status,
        head, payload)` is called once, at the next turn of the loop or when its
        batch has run. Counted in flight from now, as a task would be from its start,
        so requests read in the same turn batch together."""
        self.inflight += 1
        asyncio.get_running_loop().call_soon(self._answer, scope, body, respond, time.perf_counter())

    def _answer(self, scope: dict[str, Any], raw: bytes, respond: Callable[[int, bytes, bytes], None],
                started: float) -> None:
        endpoint, handler = self._hot[(scope["method"], scope["path"])]
        try:
            self._begin(scope)
            if len(raw) > self._max_body:
                raise RequestError(413, f"request body is over the limit of {self._max_body} bytes")
            feeds, instances, finish = self._prepare[handler](scope, raw, started)
        except Exception as exc:
            self._answered(scope, respond, endpoint, started, *_failure(exc))
            return

        replied = False

        def reply(outputs: dict[str, Any] | None, error: Exception | None) -> None:
            nonlocal replied
            replied = True
            try:
                if error is not None:
                    raise error
                status, body = 200, finish(outputs)
            except Exception as exc:
                status, body = _failure(exc)
            self._answered(scope, respond, endpoint, started, status, body)

        try:
            self.service.predict_to(feeds, self.inflight == 1 and not scope.get("mlship.tasks", _TWO),
                                    scope["mlship.request_id"], started, instances, reply)
        except Exception as exc:
            if not replied:  # failed before its run was answered (a reply that raised has answered)
                self._answered(scope, respond, endpoint, started, *_failure(exc))

    def _answered(self, scope: dict[str, Any], respond: Callable[[int, bytes, bytes], None], endpoint: str,
                  started: float, status: int, body: Any) -> None:
        self.inflight -= 1
        status, content_type, payload, extra_headers = self._encoded(status, body)
        try:
            respond(status, self._head(content_type, payload, scope["mlship.request_id"], extra_headers), payload)
        finally:
            self._observe(endpoint, status, time.perf_counter() - started)

    def _route(self, method: str, path: str) -> tuple[str, Callable[..., Awaitable[tuple[int, Any]]]]:
        path = path.rstrip("/") or "/"
        gets = {
            "/v2/health/live": ("health", self._live),
            "/v2/health/ready": ("health", self._ready),
            "/v2": ("metadata", self._server_metadata),
            "/metrics": ("metrics", self._metrics),
            "/ping": ("health", self._ready),  # MLflow's and SageMaker's health check
            "/v1/models": ("metadata", self._v1_models),
        }
        if path in gets:
            self._allow(method, "GET", path)
            return gets[path]
        if path in ("/predict", "/invocations"):  # /invocations: MLflow's scoring path
            self._allow(method, "POST", path)
            return "predict", self._predict
        if path.startswith("/v2/models/"):
            return self._model_route(method, path)
        if path.startswith("/v1/models/"):
            return self._v1_route(method, path)
        raise RequestError(404, f"no such endpoint: {path}")

    def _model_route(self, method: str, path: str) -> tuple[str, Callable[..., Awaitable[tuple[int, Any]]]]:
        parts = path.split("/")[3:]  # name [versions v] [infer|ready]
        name, rest = parts[0], parts[1:]
        if name != self.service.name:
            raise RequestError(404, f"model {name!r} not found; this server serves {self.service.name!r}")
        if rest[:1] == ["versions"]:
            if len(rest) < 2 or rest[1] != self.service.version:
                version = rest[1] if len(rest) > 1 else ""
                raise RequestError(404, f"model {name!r} has no version {version!r}; "
                                        f"served: {self.service.version!r}")
            rest = rest[2:]
        action = rest[0] if rest else ""
        if action == "" and len(rest) <= 1:
            self._allow(method, "GET", path)
            return "metadata", self._model_metadata
        if action == "ready" and len(rest) == 1:
            self._allow(method, "GET", path)
            return "health", self._ready
        if action == "infer" and len(rest) == 1:
            self._allow(method, "POST", path)
            return "infer", self._infer
        raise RequestError(404, f"no such endpoint: {path}")

    def _v1_route(self, method: str, path: str) -> tuple[str, Callable[..., Awaitable[tuple[int, Any]]]]:
        """KServe v1: GET /v1/models/NAME (ready), POST /v1/models/NAME:predict."""
        name, _, verb = path.removeprefix("/v1/models/").partition(":")
        if name != self.service.name:
            raise RequestError(404, f"model {name!r} not found; this server serves {self.service.name!r}")
        if verb == "":
            self._allow(method, "GET", path)
            return "health", self._v1_ready
        if verb == "predict":
            self._allow(method, "POST", path)
            return "predict", self._v1_predict
        raise RequestError(404, f"no such endpoint: {path} (KServe v1 verbs here: predict)")

    @staticmethod
    def _allow(method: str, allowed: str, path: str) -> None:
        if method != allowed and not (allowed == "GET" and method == "HEAD"):
            raise RequestError(405, f"{method} is not allowed on {path}; use {allowed}")

    # -- handlers ----------------------------------------------------------------

    async def _live(self, *_: Any) -> tuple[int, Any]:
        return 200, {"live": True}

    async def _ready(self, *_: Any) -> tuple[int, Any]:
        return 200, {"ready": True}

    async def _server_metadata(self, *_: Any) -> tuple[int, Any]:
        return 200, {"name": "mlship", "version": __version__, "extensions": ["binary_tensor_data"]}

    async def _v1_models(self, *_: Any) -> tuple[int, Any]:
        return 200, {"models": [self.service.name]}

    async def _v1_ready(self, *_: Any) -> tuple[int, Any]:
        return 200, {"name": self.service.name, "ready": True}

    async def _metrics(self, *_: Any) -> tuple[int, Any]:
        return 200, self.service.metrics.render()

    async def _model_metadata(self, *_: Any) -> tuple[int, Any]:
        sig = self.service.signature
        return 200, {
            "name": self.service.name,
            "versions": [self.service.version],
            "platform": "onnxruntime_onnx",
            "inputs": [protocol.tensor_metadata(s) for s in sig.inputs],
            "outputs": [protocol.tensor_metadata(s) for s in sig.outputs],
            "parameters": {"variant": self.service.variant, "feature_names": sig.feature_names,
                           "execution_provider": self.service.runner.providers.chosen,
                           "providers": self.service.runner.providers.model_dump()},
        }

    def _prediction(self, prepare: Callable[[dict[str, Any], bytes, float], _Prepared]) -> Handler:
        """The handler of a prediction route in the app's own task: read the body,
        prepare (`prepare`: the feeds, the rows as sent, and what makes the answer of
        the outputs), await the run, answer."""
        async def handle(scope: dict[str, Any], receive: Receive, started: float) -> tuple[int, Any]:
            feeds, instances, finish = prepare(scope, await self._read_body(scope, receive), started)
            alone = self.inflight == 1 and len(scope.get("mlship.tasks", _TWO)) == 1
            return 200, finish(await self.service.predict(feeds, alone, scope["mlship.request_id"], started, instances))

        self._prepare[handle] = prepare
        return handle

    def _prepare_infer(self, scope: dict[str, Any], raw: bytes, started: float) -> _Prepared:
        service = self.service
        headers = scope["mlship.headers"]
        declared = headers.get(binary.HEADER)
        header, tail = (raw, None) if declared is None else binary.split_body(raw, declared.decode("latin-1"))
        known = self._known_headers.get(header) if tail is not None else None
        feeds = known.decode(tail) if known is not None else None
        if feeds is not None:  # a binary header seen before: its id (checked) and the outputs asked for too
            body_id, wanted = known.answer
            if body_id is not None and b"x-request-id" not in headers:
                scope["mlship.request_id"] = body_id
        else:
            body = _parse_json(header)
            try:  # a bad request is logged (status and error) before its 4xx
                body_id = body.get("id") if type(body) is dict else None
                if body_id is not None:
                    body_id = protocol.checked_id(body_id, "'id'")
                if body_id is not None and b"x-request-id" not in headers:
                    scope["mlship.request_id"] = body_id  # one id: header, body, log
                feeds = self.plan.decode(body, tail)
                # Which outputs, and whether binary: only a body that says so pays for the answer
                wanted = protocol.requested_outputs(body, service.output_names) \
                    if "outputs" in body or "parameters" in body else None
            except RequestError as exc:
                service.log_predictions(scope["mlship.request_id"], started, status=exc.status, error=exc.message)
                raise
            if tail is not None and len(header) <= _KNOWN_HEADER_BYTES:
                self._know(header, body, len(tail), (body_id, wanted))
        answer_id = body_id if body_id is not None else scope["mlship.request_id"]

        def finish(outputs: dict[str, Any]) -> Any:
            answer, data = self.answer.encode(answer_id, outputs, wanted)
            return BinaryAnswer(answer, data) if wanted and any(wanted.values()) else answer
        # Logged by the service, a failed run too (status 500, before it is answered: gates count it).
        return feeds, None, finish

    def _know(self, header: bytes, body: Any, size: int, answer: tuple[str | None, dict[str, bool] | None]) -> None:
        """Keep a binary request's header that decoded the short way (at most 64 of them)."""
        known = self.plan.known_header(body, size)
        if known is not None:
            if len(self._known_headers) >= 64:
                self._known_headers.clear()
            known.answer = answer
            self._known_headers[header] = known

    def _prepare_predict(self, scope: dict[str, Any], raw: bytes, started: float) -> _Prepared:
        service, request_id = self.service, scope["mlship.request_id"]
        quick = self._quick_rows(raw)
        if quick is not None:
            feeds, instances = quick
        else:
            body = _parse_json(raw)
            feeds, instances = self._decode(request_id, started, lambda: decode_predict(
                body, service.signature, allow_missing=service.settings.allow_missing))

        def finish(outputs: dict[str, Any]) -> Any:
            return {"predictions": row_outputs(outputs, _rows(feeds, instances)), "model": service.name,
                    "version": service.version, "request_id": request_id}
        return feeds, instances, finish

    def _prepare_v1(self, scope: dict[str, Any], raw: bytes, started: float) -> _Prepared:
        """KServe v1 (TF Serving's row format): one prediction per instance,
        the bare value for a one-output model, else an object of outputs."""
        service = self.service
        quick = self._quick_rows(raw)
        if quick is not None:
            feeds, instances = quick
        else:
            body = _parse_json(raw)
            if not isinstance(body, dict) or "instances" not in body:
                raise RequestError(400, "request body must be a JSON object with an 'instances' list")
            feeds, instances = self._decode(scope["mlship.request_id"], started, lambda: decode_rows(
                body["instances"], service.signature, allow_missing=service.settings.allow_missing))

        def finish(outputs: dict[str, Any]) -> Any:
            rows = row_outputs(outputs, _rows(feeds, instances))
            if len(outputs) == 1:
                rows = [next(iter(row.values())) for row in rows]
            return {"predictions": rows}
        return feeds, instances, finish

    def _quick_rows(self, raw: bytes) -> tuple[dict[str, Any], SentRows | None] | None:
        """Feeds (and the rows as sent, when there is a log) of the usual
        `{"instances": [...]}` body, by BodyPlan; None: the full way."""
        if self.service.log is not None:
            return self.rows.decode_sent(raw)
        quick = self.rows.decode(raw)
        return (quick[0], None) if quick is not None else None

    def _decode(self, request_id: str, started: float, decode: Callable[[], Any]) -> Any:
        """Decode a request; a bad one is logged (status and error) before its 4xx."""
        try:
            return decode()
        except RequestError as exc:
            self.service.log_predictions(request_id, started, status=exc.status, error=exc.message)
            raise

    async def _read_body(self, scope: dict[str, Any], receive: Receive) -> bytes:
        """The whole body, refused (413) as soon as it is over --max-body-bytes."""
        limit = self._max_body
        declared = scope["mlship.headers"].get(b"content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            raise RequestError(413, f"request body of {declared.decode()} bytes is over the limit of {limit} bytes")
        message = await receive()
        if not message.get("more_body"):  # the usual small body: one message
            body = message.get("body", b"")
            if len(body) > limit:
                raise RequestError(413, f"request body is over the limit of {limit} bytes")
            return body
        chunks, size = [message.get("body", b"")], len(message.get("body", b""))
        while True:
            message = await receive()
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise RequestError(413, f"request body is over the limit of {limit} bytes")
            chunks.append(chunk)
            if not message.get("more_body"):
                break
        return b"".join(chunks)


_KNOWN_HEADER_BYTES = 4096  # a binary request's header kept for the next (FeedPlan.known_header) up to this size
_TWO = (None, None)  # no set of tasks in the scope: not known to be alone


def _internal(exc: BaseException) -> dict[str, str]:
    return {"error": f"internal error: {type(exc).__name__}: {exc}"}


def _failure(exc: Exception) -> tuple[int, dict[str, str]]:
    """The answer to a request that failed with `exc`: its 4xx, else 500 (a bug or a
    runtime failure: answered, and serving goes on)."""
    if isinstance(exc, RequestError):
        return exc.status, {"error": exc.message}
    return 500, _internal(exc)
_NONE: dict[str, Any] = {}
RESPONSE = "mlship.response"  # mlship.serve.http.RESPONSE (not imported: the app runs under any ASGI server)


def _rows(feeds: dict[str, Any], instances: list[dict[str, Any]] | None) -> int:
    return len(instances) if instances is not None else len(next(iter(feeds.values())))


def _parse_json(raw: bytes) -> Any:
    if not raw:
        raise RequestError(400, "request body is empty; send JSON")
    try:
        return jsonfast.loads(raw)
    except (jsonfast.DecodeError, ValueError, UnicodeDecodeError) as exc:
        raise RequestError(400, f"request body is not valid JSON: {exc}") from None

