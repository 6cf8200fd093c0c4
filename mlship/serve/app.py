"""The ASGI application: Open Inference Protocol (JSON and binary tensors),
KServe v1, /predict (mlship's and MLflow's formats), /metrics.

Plain ASGI (no web framework) keeps the per-request cost low; routes are a
handful of fixed paths. Everything that depends only on the model (routes,
response headers, the feed plan, the answers' fixed parts) is made once in
`ServeApp.__init__`; a request pays for its parse, its arrays and its bytes.
"""

from __future__ import annotations

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
from mlship.serve.instances import decode_rows
from mlship.predlog.entries import row_outputs
from mlship.serve.service import ModelService

Send = Callable[[dict[str, Any]], Awaitable[None]]
Receive = Callable[[], Awaitable[dict[str, Any]]]


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
        self.answer = protocol.InferAnswer(service.name, service.version)
        self._max_body = service.settings.max_body_bytes
        self._variant = (b"x-mlship-variant", service.variant.encode())
        visible = all(" " <= c <= "~" for c in service.variant)
        self._variant_line = b"x-mlship-variant: %s\r\n" % self._variant[1] if visible else None
        # Request ids: unique per process (random prefix) and cheap (a counter),
        # the 32 hex digits of a uuid4 without a system call per request.
        self._id_prefix, self._ids = os.urandom(8).hex(), itertools.count(1)
        infer = f"{self.prefix}/infer"
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
        endpoint, status, payload, content_type = "other", 500, b"", b"application/json"
        extra_headers: list[tuple[bytes, bytes]] = []
        self.inflight += 1
        scope["mlship.headers"] = headers = dict(reversed(scope["headers"]))  # the first of a repeated header
        request_id = f"{self._id_prefix}{next(self._ids):016x}"
        try:
            # The id goes back in a response header: refused (400) unless it is safe there.
            sent_id = headers.get(b"x-request-id")
            if sent_id:
                request_id = protocol.checked_id(sent_id.decode("latin-1"), "X-Request-ID header") or request_id
            endpoint, handler = self._hot.get((scope["method"], scope["path"])) \
                or self._route(scope["method"], scope["path"])
            status, body = await handler(scope, receive, request_id, started)
            request_id = scope.get("mlship.request_id", request_id)  # an infer body's "id" when no header gave one
            if type(body) is bytes:
                payload = body
            elif isinstance(body, str):
                payload, content_type = body.encode(), b"text/plain; version=0.0.4; charset=utf-8"
            elif isinstance(body, BinaryAnswer):
                payload, content_type = body.header, b"application/octet-stream"
                extra_headers.append((b"inference-header-content-length", b"%d" % len(payload)))
                payload += body.tail
            else:
                payload = jsonfast.dumps(body)
        except RequestError as exc:
            status, payload = exc.status, jsonfast.dumps({"error": exc.message})
        except Exception as exc:  # a bug or a runtime failure: answer 500, keep serving
            status, payload = 500, jsonfast.dumps({"error": f"internal error: {type(exc).__name__}: {exc}"})
        finally:
            self.inflight -= 1
        if self._variant_line is not None and RESPONSE in scope.get("extensions", _NONE):
            # mlship's own protocol (mlship.serve.http): the answer in one message, its
            # header lines made here (the request id and variant are checked: visible ASCII).
            head = b"content-type: %s\r\ncontent-length: %d\r\nx-request-id: %s\r\n%s" % (
                content_type, len(payload), request_id.encode(), self._variant_line)
            for name, value in extra_headers:
                head += b"%s: %s\r\n" % (name, value)
            await send({"type": RESPONSE, "status": status, "head": head, "body": payload})
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

    async def _infer(self, scope: dict[str, Any], receive: Receive, request_id: str, started: float) -> tuple[int, Any]:
        service = self.service
        raw = await self._read_body(scope, receive)
        headers = scope["mlship.headers"]
        declared = headers.get(binary.HEADER)
        header, tail = (raw, None) if declared is None else binary.split_body(raw, declared.decode("latin-1"))
        body = _parse_json(header)
        try:  # a bad request is logged (status and error) before its 4xx
            body_id = body.get("id") if type(body) is dict else None
            if body_id is not None:
                body_id = protocol.checked_id(body_id, "'id'")
            if body_id is not None and b"x-request-id" not in headers:
                request_id = scope["mlship.request_id"] = body_id  # one id: header, body, log
            feeds = self.plan.decode(body, tail)
            # Which outputs, and whether binary: only a body that says so pays for the answer
            wanted = protocol.requested_outputs(body, service.output_names) \
                if "outputs" in body or "parameters" in body else None
        except RequestError as exc:
            service.log_predictions(request_id, started, status=exc.status, error=exc.message)
            raise
        # Logged by the service, a failed run too (status 500, before it is answered: gates count it).
        outputs = await service.predict(feeds, len(scope.get("mlship.tasks", _TWO)) == 1, request_id, started)
        answer, data = self.answer.encode(body_id if body_id is not None else request_id, outputs, wanted)
        return 200, BinaryAnswer(answer, data) if wanted and any(wanted.values()) else answer

    async def _predict(self, scope: dict[str, Any], receive: Receive, request_id: str, started: float) -> tuple[int, Any]:
        service = self.service
        body = _parse_json(await self._read_body(scope, receive))
        feeds, instances = self._decode(request_id, started, lambda: decode_predict(
            body, service.signature, allow_missing=service.settings.allow_missing))
        outputs = await self._predicted_rows(feeds, instances, request_id, started, scope)
        return 200, {
            "predictions": row_outputs(outputs, _rows(feeds, instances)),
            "model": service.name,
            "version": service.version,
            "request_id": request_id,
        }

    async def _v1_predict(self, scope: dict[str, Any], receive: Receive, request_id: str,
                          started: float) -> tuple[int, Any]:
        """KServe v1 (TF Serving's row format): one prediction per instance,
        the bare value for a one-output model, else an object of outputs."""
        service = self.service
        body = _parse_json(await self._read_body(scope, receive))
        if not isinstance(body, dict) or "instances" not in body:
            raise RequestError(400, "request body must be a JSON object with an 'instances' list")
        feeds, instances = self._decode(request_id, started, lambda: decode_rows(
            body["instances"], service.signature, allow_missing=service.settings.allow_missing))
        outputs = await self._predicted_rows(feeds, instances, request_id, started, scope)
        rows = row_outputs(outputs, _rows(feeds, instances))
        if len(outputs) == 1:
            rows = [next(iter(row.values())) for row in rows]
        return 200, {"predictions": rows}

    def _predicted_rows(self, feeds: dict[str, Any], instances: list[dict[str, Any]] | None, request_id: str,
                        started: float, scope: dict[str, Any]) -> Awaitable[dict[str, Any]]:
        """The run (to await) of a request whose answer is per row; the service logs
        it (the rows as sent when they were objects, else the feeds), a failure too."""
        return self.service.predict(feeds, len(scope.get("mlship.tasks", _TWO)) == 1, request_id, started, instances)

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


_TWO = (None, None)  # no set of tasks in the scope: not known to be alone
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

