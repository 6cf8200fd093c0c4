"""Use cases for serving images: build one and record it in the versions store;
push an engine-built one to a registry and record the push."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from pydantic import BaseModel

from mlship.errors import UsageError
from mlship.images.docker import ImageOptions, ImageResult
from mlship.versions import BuildRecord, PushRecord, VersionExistsError, VersionStore


class BuildRequest(BaseModel):
    """An image to build: what goes in it (`options`), which builder, which versions store records it."""

    options: ImageOptions
    builder: str = "docker"
    store: Path
    force: bool = False  # replace a local build of this version made from other inputs (never a pushed one)


class BuildResult(BaseModel):
    """The built image, the versions store it was recorded in, and whether this run changed
    nothing (the engine still holds the image built from the same inputs)."""

    image: ImageResult
    store: Path
    unchanged: bool = False


def build_image(request: BuildRequest, log: Callable[[str], None] = lambda line: None,
                progress: Any = None) -> BuildResult:
    """Build with the chosen builder, then record the build (and the push, when the builder pushed).

    Other inputs under a recorded version are refused before any work; the same inputs
    are a no-op while the engine still holds the image (the daemonless builder is
    reproducible: it builds again, to the same bytes and the same record)."""
    from mlship.images.builders import image_builder
    from mlship.model.load import sha256_file

    store = VersionStore(request.store)
    options = request.options
    inputs = image_inputs(request)
    model_sha256 = sha256_file(options.model) if options.model.is_file() else ""
    known = store.recorded_build(options.name, options.version, "image", inputs, model_sha256, force=request.force)
    if known and request.builder == "docker" and _still_built(known, options):
        return BuildResult(image=ImageResult(**known["result"]), store=store.path, unchanged=True)
    result = image_builder(request.builder).build(options, log, progress)
    store.record(BuildRecord(name=result.name, version=result.version, kind="image", inputs_sha256=inputs,
                             model_sha256=result.model_sha256, artifact=result.image_id, tag=result.tag,
                             size_bytes=result.size_bytes, builder=result.builder, result=result.model_dump(mode="json"),
                             git_commit=result.labels.get("org.opencontainers.image.revision") or None),
                 force=request.force)
    if result.pushed:  # recorded only once the registry accepted the manifest
        store.record(PushRecord(name=result.name, version=result.version, artifact=result.image_id,
                                reference=result.pushed["reference"], digest=result.pushed["digest"]))
    return BuildResult(image=result, store=store.path)


def image_inputs(request: BuildRequest) -> str:
    """The digest of what shapes the image (not its tag, where it is written or pushed)."""
    from mlship.versions import inputs_digest

    options = request.options
    return inputs_digest(options.model_dump(exclude={"name", "version", "tag", "output", "push", "no_cache"}) | {
        "model": options.model, "template": options.template, "builder": request.builder})


def _still_built(known: dict[str, Any], options: ImageOptions) -> bool:
    """The engine still holds the recorded image under the tag asked for."""
    from mlship.images.docker import engine_client

    if not known.get("result") or known.get("tag") != options.tag:
        return False
    try:
        image = engine_client().images.get(known["artifact"])
    except Exception:  # docker.errors.ImageNotFound, or an engine error the build itself will report
        return False
    return options.tag in (image.tags or [])


class PushImageRequest(BaseModel):
    """An image on the engine to push: a recorded NAME[:VERSION] or a local image, and the registry."""

    image: str | None  # None: the latest recorded build of `default_name`
    default_name: str | None = None
    to: str
    store: Path


class PushImageResult(BaseModel):
    """What was pushed: REPOSITORY:TAG@DIGEST, the recorded build it came from, the target asked for."""

    reference: str
    digest: str
    recorded: bool
    name: str | None = None
    version: str | None = None
    image_id: str | None = None
    target: str | None = None


def push_image(request: PushImageRequest, log: Callable[[str], None] = lambda line: None) -> PushImageResult:
    """Push an engine image to a registry (or ECR); a recorded build gets a push record."""
    from mlship.images.docker import engine_client
    from mlship.registry.push import push_image as push_to_registry

    store = VersionStore(request.store)
    target, record, tag = _destination(store, request)
    reference = f"{target.name}:{tag}"
    if record:
        _refuse_other_push(store, record, reference)  # before anything is uploaded
    local = record["artifact"] if record else request.image
    digest = push_to_registry(engine_client(), local, target, tag=tag, log=log)
    if record:
        store.record(PushRecord(name=record["name"], version=record["version"], artifact=record["artifact"],
                                reference=reference, digest=digest))
    return PushImageResult(reference=f"{reference}@{digest}", digest=digest, recorded=bool(record),
                           name=record["name"] if record else None, version=record["version"] if record else None,
                           image_id=local, target=request.to)


def _refuse_other_push(store: VersionStore, record: dict[str, Any], reference: str) -> None:
    """REPOSITORY:TAG was pushed from another build: a pushed version is immutable."""
    from mlship.versions import BUMP_HINT

    other = next((r for r in store.records() if r.get("event") == "push" and r.get("reference") == reference
                  and r.get("artifact") != record["artifact"]), None)
    if other is not None:
        raise VersionExistsError(f"{reference} was pushed from another build ({other['artifact'][:19]}, "
                                 f"{other['created']})", hint=BUMP_HINT)


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
