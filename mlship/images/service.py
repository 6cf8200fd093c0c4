"""Use cases for serving images: build one and record it in the versions store;
push an engine-built one to a registry and record the push."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from pydantic import BaseModel

from mlship.errors import UsageError
from mlship.images.docker import ImageOptions, ImageResult
from mlship.versions import BuildRecord, PushRecord, VersionStore


class BuildRequest(BaseModel):
    """An image to build: what goes in it (`options`), which builder, which versions store records it."""

    options: ImageOptions
    builder: str = "docker"
    store: Path


class BuildResult(BaseModel):
    """The built image and the versions store it was recorded in."""

    image: ImageResult
    store: Path


def build_image(request: BuildRequest, log: Callable[[str], None] = lambda line: None,
                progress: Any = None) -> BuildResult:
    """Build with the chosen builder, then record the build (and the push, when the builder pushed)."""
    from mlship.images.builders import image_builder

    builder = image_builder(request.builder)
    result = builder.build(request.options, log, progress)
    store = VersionStore(request.store)
    store.append(BuildRecord(name=result.name, version=result.version, kind="image",
                             model_sha256=result.model_sha256, artifact=result.image_id, tag=result.tag,
                             size_bytes=result.size_bytes, builder=result.builder,
                             git_commit=result.labels.get("org.opencontainers.image.revision") or None))
    if result.pushed:  # recorded only once the registry accepted the manifest
        store.append(PushRecord(name=result.name, version=result.version, artifact=result.image_id,
                                reference=result.pushed["reference"], digest=result.pushed["digest"]))
    return BuildResult(image=result, store=store.path)


class PushImageRequest(BaseModel):
    """An image on the engine to push: a recorded NAME[:VERSION] or a local image, and the registry."""

    image: str | None  # None: the latest recorded build of `default_name`
    default_name: str | None = None
    to: str
    store: Path


class PushImageResult(BaseModel):
    reference: str
    digest: str
    recorded: bool


def push_image(request: PushImageRequest, log: Callable[[str], None] = lambda line: None) -> PushImageResult:
    """Push an engine image to a registry (or ECR); a recorded build gets a push record."""
    from mlship.images.docker import engine_client
    from mlship.registry.push import push_image as push_to_registry

    store = VersionStore(request.store)
    target, record, tag = _destination(store, request)
    local = record["artifact"] if record else request.image
    digest = push_to_registry(engine_client(), local, target, tag=tag, log=log)
    if record:
        store.append(PushRecord(name=record["name"], version=record["version"], artifact=record["artifact"],
                                reference=f"{target.name}:{tag}", digest=digest))
    return PushImageResult(reference=f"{target.name}:{tag}@{digest}", digest=digest, recorded=bool(record))


def push_label(request: PushImageRequest) -> str:
    """Where `push_image` will push, as REPOSITORY:TAG (for a status line before the work starts)."""
    target, _, tag = _destination(VersionStore(request.store), request)
    return f"{target.name}:{tag}"


def _destination(store: VersionStore, request: PushImageRequest) -> tuple[Any, dict[str, Any] | None, str]:
    """The registry, the recorded build (None for a plain local image) and the tag to push."""
    from mlship.registry.push import RegistryRef

    target = RegistryRef.parse(request.to)
    record = _recorded_image(store, request)
    return target, record, target.tag or (record["version"] if record else "latest")


def _recorded_image(store: VersionStore, request: PushImageRequest) -> dict[str, Any] | None:
    """The engine build `request.image` names in the store, None for a plain local image."""
    name, _, version = (request.image or request.default_name or "").partition(":")
    record = store.find(name, version or None, kind="image") if name else None
    if record is None and request.image is None:
        raise UsageError("nothing to push", hint="Name a built version (NAME[:VERSION]) or a local image")
    if record and record.get("builder") == "oci":
        raise UsageError(f"{record['name']} {record['version']} was built with --builder oci, not on the engine",
                         hint="Push it while building: mlship build --image --builder oci --push registry://…")
    return record
