"""`mlship serve`: answer predictions over HTTP."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from mlship.cli._common import (FEATURES_OPTION, PROVIDER_FALLBACK_OPTION, PROVIDER_OPTION, config_for, declared_features,
                                provider_request, state)


def serve(
    ctx: typer.Context,
    model: Optional[Path] = typer.Argument(None, help="MODEL.onnx, or a DIR with mlship.yaml or model.onnx."),
    host: str = typer.Option("127.0.0.1", "--host", envvar="MLSHIP_SERVE_HOST", help="Address to bind."),
    port: int = typer.Option(8080, "--port", "-p", envvar="MLSHIP_SERVE_PORT", help="Port to bind."),
    workers: int = typer.Option(1, "--workers", help="Server processes (each loads the model)."),
    variant: str = typer.Option("stable", "--variant", help="Traffic variant: stable, canary, shadow, blue, green…"),
    name: Optional[str] = typer.Option(None, "--name", help="Model name in URLs, logs and metrics."),
    model_version: Optional[str] = typer.Option(None, "--model-version", help="Model version to report."),
    log_dir: Optional[Path] = typer.Option(None, "--log-dir", help="Write prediction logs (JSON Lines) here."),
    log_sample_rate: float = typer.Option(1.0, "--log-sample-rate", help="Share of requests to log (0..1)."),
    log_max_mb: float = typer.Option(64.0, "--log-max-mb", help="Rotate a log file at this size."),
    log_max_age: float = typer.Option(3600.0, "--log-max-age", help="Rotate a log file after this many seconds."),
    log_queue_size: int = typer.Option(10_000, "--log-queue-size", help="Log records waiting to be written; more are dropped and counted."),
    max_batch: int = typer.Option(64, "--max-batch", help="Most rows in one micro-batch."),
    max_wait_ms: float = typer.Option(0.0, "--max-wait-ms", help="Hold a batch open this long for more requests."),
    cache_size: int = typer.Option(0, "--cache-size", help="LRU cache of this many answers (0: off)."),
    max_body_bytes: int = typer.Option(10 * 1024 * 1024, "--max-body-bytes", help="Largest request body accepted."),
    threads: Optional[int] = typer.Option(None, "--threads", help="onnxruntime intra-op threads per worker (default 1)."),
    allow_missing: Optional[bool] = typer.Option(
        None, "--allow-missing/--refuse-missing",
        help="Pass missing values (null, NaN) to float inputs as NaN, or answer 400 [missing_values in mlship.yaml: refuse]."),
    features: Optional[List[str]] = FEATURES_OPTION,
    provider: Optional[List[str]] = PROVIDER_OPTION,
    provider_fallback: Optional[bool] = PROVIDER_FALLBACK_OPTION,
) -> None:
    """Serve a model: Open Inference Protocol (/v2), /predict, /metrics.

    Stops on SIGTERM/SIGINT after finishing in-flight requests and flushing the log.
    """
    from mlship.errors import UsageError
    from mlship.serve.server import serve as run_server
    from mlship.serve.settings import ServeSettings
    from mlship.serve.source import resolve_source

    cfg = config_for(ctx)
    source = resolve_source(model, cfg, name=name, version=model_version)
    if source.unpacked is not None:  # removed however serve ends: shutdown, a bad option, a taken port
        import shutil

        ctx.call_on_close(lambda: shutil.rmtree(source.unpacked, ignore_errors=True))
    allow = source.allow_missing if allow_missing is None else allow_missing
    try:
        settings = ServeSettings(
            model_path=source.path, name=source.name, version=source.version, variant=variant, host=host,
            port=port, workers=workers, threads=threads, max_batch=max_batch, max_wait_ms=max_wait_ms,
            cache_size=cache_size, max_body_bytes=max_body_bytes, log_dir=log_dir,
            log_sample_rate=log_sample_rate, log_max_bytes=int(log_max_mb * 1024 * 1024), log_max_age_s=log_max_age,
            log_queue_size=log_queue_size, allow_missing=allow,
            features=declared_features(features) or source.features,
            providers=provider_request(cfg, provider, provider_fallback),
        )
    except ValueError as exc:
        raise UsageError(f"invalid serve option: {exc.errors()[0]['loc'][0]}: {exc.errors()[0]['msg']}") from None
    console = state(ctx).console
    url = f"http://{'[' + host + ']' if ':' in host else host}:{port}"

    def announce(service) -> None:
        providers = service.runner.providers
        if providers.fallback_note():
            console.warn(providers.fallback_note())
        console.result(
            {"url": url, "model": service.name, "version": service.version, "variant": service.variant,
             "infer": f"{url}/v2/models/{service.name}/infer", "log_dir": str(log_dir) if log_dir else None,
             "providers": providers.model_dump()},
            lambda out: out.print(f"serving {service.name} {service.version} ({service.variant}) at {url} on "
                                  f"{providers.chosen}: POST /v2/models/{service.name}/infer, POST /predict, "
                                  "GET /metrics", markup=False),
        )

    run_server(settings, on_ready=announce)
