"""`mlship build --image`: a serving image built through the Docker engine."""

from __future__ import annotations

import json
import subprocess
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from string import Template
from typing import Any, Callable, Literal

from pydantic import BaseModel

from mlship.images import wheels
from mlship.errors import MlshipError, ServiceError, UsageError
from mlship.extras import require
from mlship.templates import template_text


class ImageOptions(BaseModel):
    model: Path
    name: str
    version: str
    base: str
    tag: str
    platform: str = "linux/amd64"
    python: str = "3.11"
    template: Path | None = None
    no_cache: bool = False
    source: str | None = None
    output: Path | None = None
    push: str | None = None
    missing_values: Literal["refuse", "allow"] = "refuse"  # baked into the image's mlship.yaml
    features: list[str] | dict[str, list[str]] | None = None  # the project's `features:`, baked in too


class ImageResult(BaseModel):
    name: str
    version: str
    tag: str
    image_id: str
    model_sha256: str
    size_bytes: int
    layers: list[str]
    seconds: float
    labels: dict[str, str]
    builder: str = "docker"
    digest: str | None = None
    output: str | None = None
    pushed: dict[str, Any] | None = None


def build_image(options: ImageOptions, log: Callable[[str], None] = lambda line: None) -> ImageResult:
    """Check the model, prepare the context, build through the engine."""
    from mlship.model.load import load_model
    from mlship.model.validate import run_checker

    started = time.perf_counter()
    model = load_model(options.model)  # an invalid model fails before any build starts
    run_checker(model)
    client = engine_client()
    _require_base(client, options.base)
    labels = image_labels(options, model.sha256)
    with tempfile.TemporaryDirectory(prefix="mlship-image-") as tmp:
        context = Path(tmp)
        log("resolving dependencies as wheels")
        pins = wheels.download_wheels(context / "wheels", platform=options.platform, python=options.python)
        own = wheels.mlship_wheel(context / "wheels")
        (context / "model").mkdir()
        (context / "model" / "model.onnx").write_bytes(model.single_file())  # external data inline
        (context / "config").mkdir()
        (context / "config" / "mlship.yaml").write_text(serving_config(options))
        (context / "Dockerfile").write_text(render_dockerfile(options, pins, own.name, labels))
        image_id = _build(client, context, options, log)
    image = client.images.get(image_id)
    return ImageResult(name=options.name, version=options.version, tag=options.tag, image_id=image_id,
                       model_sha256=model.sha256, size_bytes=int(image.attrs.get("Size", 0)),
                       layers=list(image.attrs.get("RootFS", {}).get("Layers", [])),
                       seconds=round(time.perf_counter() - started, 2), labels=labels)


def render_dockerfile(options: ImageOptions, pins: list[str], mlship_wheel: str, labels: dict[str, str]) -> str:
    text = options.template.read_text() if options.template else template_text("Dockerfile")
    label_text = " \\\n      ".join(f"{k}={json.dumps(v)}" for k, v in labels.items())
    try:
        return Template(text).substitute(base=options.base, requirements=" ".join(pins), mlship_wheel=mlship_wheel,
                                         labels=label_text)
    except (KeyError, ValueError) as exc:
        raise UsageError(f"Dockerfile template {options.template or 'templates/Dockerfile'}: bad placeholder {exc}",
                         hint="Use $base, $requirements, $mlship_wheel, $labels; write $$ for a literal $") from None


def serving_config(options: ImageOptions) -> str:
    """The mlship.yaml baked in next to the model."""
    text = f"name: {json.dumps(options.name)}\nversion: {json.dumps(options.version)}\nmodel: model.onnx\n"
    # Only what a project declares is written, so images of every other project keep their bytes.
    text += "missing_values: allow\n" if options.missing_values == "allow" else ""
    return text + (f"features: {json.dumps(options.features)}\n" if options.features else "")


def image_labels(options: ImageOptions, sha256: str, created: str | None = None) -> dict[str, str]:
    """OCI and mlship labels; `created` defaults to now."""
    return {
        "org.opencontainers.image.title": options.name,
        "org.opencontainers.image.version": options.version,
        "org.opencontainers.image.created": created or datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "org.opencontainers.image.revision": _git_revision(options.model.parent) or "",
        "org.opencontainers.image.source": options.source or "",
        "io.mlship.model.name": options.name,
        "io.mlship.model.version": options.version,
        "io.mlship.model.sha256": sha256,
    }


def _git_revision(directory: Path) -> str | None:
    try:
        proc = subprocess.run(["git", "-C", str(directory), "rev-parse", "HEAD"], capture_output=True, text=True)
    except OSError:
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


def engine_client() -> Any:
    """A Docker SDK client from DOCKER_HOST and Docker's config; exit 7 when no engine answers."""
    docker = require("docker")
    try:
        client = docker.from_env(timeout=120)
        client.ping()
        return client
    except Exception as exc:  # docker.errors.DockerException and connection errors
        raise ServiceError(f"no Docker engine answers ({_short(exc)})",
                           hint="Start one (systemctl start docker, or dockerd) or set DOCKER_HOST") from None


def _require_base(client: Any, base: str) -> None:
    docker = require("docker")
    try:
        client.images.get(base)
        return
    except docker.errors.ImageNotFound:
        pass
    try:
        client.images.pull(base)
    except Exception as exc:
        raise ServiceError(f"base image {base} is not on the engine and cannot be pulled ({_short(exc)})",
                           hint="Pull or import it first, or pass --base") from None


def _build(client: Any, context: Path, options: ImageOptions, log: Callable[[str], None]) -> str:
    image_id = None
    try:
        for chunk in client.api.build(path=str(context), tag=options.tag, rm=True, forcerm=True, decode=True,
                                      nocache=options.no_cache, platform=options.platform, network_mode="none"):
            if "stream" in chunk and chunk["stream"].strip():
                log(chunk["stream"].rstrip())
            if "aux" in chunk and "ID" in chunk["aux"]:
                image_id = chunk["aux"]["ID"]
            if "error" in chunk:
                raise ServiceError(f"image build failed: {chunk['error'].strip()}")
    except MlshipError:
        raise
    except Exception as exc:
        raise ServiceError(f"image build failed: {_short(exc)}") from None
    if image_id is None:
        raise ServiceError("image build finished without an image id")
    return image_id


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__
