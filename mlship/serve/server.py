"""Starting the HTTP server (uvicorn) around a ModelService."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
from typing import Any, Callable, Iterator

from mlship.errors import UsageError
from mlship.extras import require
from mlship.serve.settings import ServeSettings

_SETTINGS_ENV = "MLSHIP_SERVE_SETTINGS_JSON"


def serve(settings: ServeSettings, on_ready: Callable[[Any], None] = lambda service: None) -> None:
    """Load the model (errors before binding the port), then serve until
    SIGTERM/SIGINT: stop accepting, finish in-flight requests, flush the log."""
    from mlship.serve.app import ServeApp
    from mlship.serve.service import ModelService

    uvicorn = require("uvicorn")
    service = ModelService(settings)
    sock = _bind(settings)  # before saying "serving": a taken port is an error, not a hang
    on_ready(service)
    if settings.workers > 1:
        # Each worker process loads its own copy; settings travel by environment.
        service.close()
        sock.close()
        os.environ[_SETTINGS_ENV] = settings.model_dump_json()
        uvicorn.run("mlship.serve.server:worker_app", factory=True, workers=settings.workers,
                    **_uvicorn_options(settings))
        return
    config = uvicorn.Config(ServeApp(service), **_uvicorn_options(settings))
    with _graceful_signals():
        uvicorn.Server(config).run(sockets=[sock])


def _bind(settings: ServeSettings) -> socket.socket:
    family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((settings.host, settings.port))
    except OSError as exc:
        sock.close()
        raise UsageError(f"cannot listen on {settings.host}:{settings.port}: {exc.strerror}",
                         hint="Choose another --port or stop what uses it") from None
    sock.set_inheritable(True)
    return sock


@contextlib.contextmanager
def _graceful_signals() -> Iterator[None]:
    """uvicorn re-raises SIGTERM/SIGINT after its graceful shutdown, which
    would kill the process with the signal; a shutdown we asked for is a
    success (exit 0), so the re-raised signal lands on a no-op handler."""
    previous = {sig: signal.signal(sig, lambda *_: None) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def worker_app() -> Any:
    """App factory for worker processes (uvicorn --workers)."""
    from mlship.serve.app import ServeApp
    from mlship.serve.service import ModelService

    return ServeApp(ModelService(ServeSettings.model_validate_json(os.environ[_SETTINGS_ENV])))


def _uvicorn_options(settings: ServeSettings) -> dict[str, Any]:
    return {
        "host": settings.host,
        "port": settings.port,
        "lifespan": "on",
        "log_level": "warning",
        "access_log": False,
        "http": _http_protocol(),
        "loop": _best("uvloop", "asyncio"),
        "timeout_graceful_shutdown": 30,
        "server_header": False,
        "proxy_headers": False,  # no client address is used: spare every request the middleware
    }


# The uvicorn releases mlship.serve.http was tested with (it builds on uvicorn's internals,
# which no release promises to keep): any other serves with uvicorn's own httptools protocol.
ONE_WRITE_UVICORN = ((0, 54),)


def _http_protocol() -> Any:
    """uvicorn's httptools protocol answering in one write (mlship.serve.http) on a tested
    uvicorn, else uvicorn's own; h11 without httptools."""
    if _best("httptools", "h11") == "h11":
        return "h11"
    import uvicorn

    if tuple(int(p) for p in uvicorn.__version__.split(".")[:2] if p.isdigit()) not in ONE_WRITE_UVICORN:
        return "httptools"
    try:  # a build of a tested release without these internals: its own protocol
        from mlship.serve.http import OneWriteProtocol
    except (ImportError, AttributeError):
        return "httptools"
    return OneWriteProtocol


def _best(preferred: str, fallback: str) -> str:
    import importlib.util

    return preferred if importlib.util.find_spec(preferred) else fallback
