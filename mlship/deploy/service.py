"""The deploy use cases: run a recorded version in a slot, list, stop, and remove kept versions.

The runtime is the one mlship.yaml's `deploy.runtime` names (or `--runtime`), opened
with its `deploy.<runtime>` settings and the slots of `rollout.router` (slot ->
upstream address). Images come from the versions store (the engine's own build,
then the pushed references, pinned by digest) unless the request names one.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Callable

from pydantic import BaseModel

from mlship.deploy.base import Placement, Runtime
from mlship.errors import UsageError
from mlship.names import check_name
from mlship.plugins import load
from mlship.versions import DeployRecord, VersionStore

if TYPE_CHECKING:
    from mlship.config import Config

# Runtime settings that are files: relative ones are relative to mlship.yaml.
_PATH_SETTINGS = ("ca", "cert", "key")

#: (model, slot) -> what live traffic the slot carries (naming the rollout and its weights), None when none.
#: mlship.rollout.service.traffic_guard gives one; the deploy package does not read rollout states itself.
TrafficGuard = Callable[[str, str], "str | None"]


class DeployRequest(BaseModel):
    """A version to run in a slot; `image` overrides the versions store's."""

    name: str
    version: str
    slot: str
    image: str | None = None
    runtime: str | None = None
    force: bool = False


class DeployResult(BaseModel):
    """Where the version now runs, and what it replaced."""

    name: str
    version: str
    slot: str
    runtime: str
    where: str
    placement: Placement
    replaced: str | None
    seconds: float


class GarbageReport(BaseModel):
    """What `deploy gc` removed: kept placements, and the images only they used."""

    name: str
    where: str
    removed: list[Placement]
    images: list[str]


class DeployStatus(BaseModel):
    """Every placement of a model: the slots' own and the kept ones."""

    name: str
    runtime: str
    where: str
    placements: list[Placement]


def open_runtime(cfg: "Config", name: str, runtime: str | None = None) -> Runtime:
    """The runtime for model `name`: `runtime` or `deploy.runtime`, with its settings and the router's slots."""
    check_name(name, "model name")
    kind = runtime or cfg.deploy.runtime
    if kind is None:
        raise UsageError("no deploy runtime configured", hint="Set deploy.runtime in mlship.yaml (docker, ...) "
                         "or pass --runtime")
    plugin = load("runtimes", kind, "deploy.runtime")
    settings = cfg.deploy.settings(kind).model_dump(exclude_none=True)
    _resolve_paths(cfg, settings)
    router = cfg.rollout.router.model_dump(exclude_none=True) if cfg.rollout.router is not None else None
    return plugin(name=name, slots=router_slots(cfg), router=router, **settings)


def router_slots(cfg: "Config") -> dict[str, str | None]:
    """Slot -> the address the router sends it traffic to (`rollout.router.upstreams`), or None."""
    router = cfg.rollout.router
    if router is None:
        return {}
    upstreams = getattr(router, "upstreams", None)
    if isinstance(upstreams, dict):
        return dict(upstreams)
    return {slot: None for slot in getattr(router, "variants", None) or []}


def deploy_version(cfg: "Config", request: DeployRequest, traffic: TrafficGuard | None = None,
                   via: str | None = None) -> DeployResult:
    """Run `request.version` in `request.slot`; DeployError (exit 7) with the slot unchanged when it does not serve.

    With `traffic`, a slot carrying live traffic is refused (exit 2) unless `request.force`. Recorded
    in the versions store (`via` says what placed it when not `mlship deploy`).
    """
    check_name(request.version, "version")
    runtime = open_runtime(cfg, request.name, request.runtime)
    if not request.force:
        refuse_live_slot(traffic, request.name, request.slot, f"deploying {request.version} into")
    images = [request.image] if request.image else recorded_images(cfg, request.name, request.version)
    before = _current(runtime, request.slot)
    started = time.perf_counter()
    placement = runtime.deploy(request.slot, request.version, images)
    record_event(cfg, request.name, runtime, "deploy", placement, via)
    replaced = before.version if before and before.version != request.version else None
    return DeployResult(name=request.name, version=request.version, slot=request.slot, runtime=runtime.name,
                        where=runtime.where(), placement=placement, replaced=replaced,
                        seconds=round(time.perf_counter() - started, 2))


def recorded_images(cfg: "Config", name: str, version: str) -> list[str]:
    """The images of NAME:VERSION in the versions store: the engine's build, then its pushes by digest (newest first)."""
    store = VersionStore(cfg.resolve(cfg.store))
    record = store.find(name, version, kind="image")
    if record is None:
        raise UsageError(f"no image build of {name}:{version} in {store.path}",
                         hint="Build it (mlship build --image) or pass --image REF")
    pushed = [_pinned(p["reference"], p.get("digest")) for p in reversed(record["pushed"])]
    return [record["artifact"], *pushed]


def _pinned(reference: str, digest: str | None) -> str:
    """HOST/REPO:TAG -> HOST/REPO@DIGEST: what was pushed, whatever the tag points at now."""
    if not digest:
        return reference
    repository = reference.split("@")[0]
    if ":" in repository.rsplit("/", 1)[-1]:  # a tag, not a registry's port
        repository = repository.rsplit(":", 1)[0]
    return f"{repository}@{digest}"


def deploy_status(cfg: "Config", name: str, runtime: str | None = None) -> DeployStatus:
    """Every placement of `name`, newest first."""
    rt = open_runtime(cfg, name, runtime)
    return DeployStatus(name=name, runtime=rt.name, where=rt.where(), placements=rt.placements())


def stop_slot(cfg: "Config", name: str, slot: str, runtime: str | None = None, *, force: bool = False,
              traffic: TrafficGuard | None = None) -> Placement | None:
    """Stop what runs in `slot` (kept for a later start); None when the slot is empty.

    With `traffic`, a slot carrying live traffic is refused (exit 2) unless `force`."""
    rt = open_runtime(cfg, name, runtime)
    if not force:
        refuse_live_slot(traffic, name, slot, "stopping")
    placement = rt.stop(slot)
    if placement is not None:
        record_event(cfg, name, rt, "stop", placement)
    return placement


def restore_version(cfg: "Config", name: str, slot: str, version: str, via: str) -> Placement:
    """Bring the kept `version` back into `slot` (rollout undo), recorded as a deploy."""
    rt = open_runtime(cfg, name)
    placement = rt.restore(slot, version)
    record_event(cfg, name, rt, "deploy", placement, via)
    return placement


def collect_garbage(cfg: "Config", name: str, keep: int, runtime: str | None = None) -> GarbageReport:
    """Remove kept (replaced) placements of `name` but the `keep` newest, then the images that only
    the removed ones used."""
    if keep < 0:
        raise UsageError(f"--keep {keep}: must be 0 or more")
    rt = open_runtime(cfg, name, runtime)
    kept = [p for p in rt.placements() if not p.current and p.state != "running"]
    removed = kept[keep:]
    for placement in removed:
        rt.remove(placement)
        record_event(cfg, name, rt, "gc", placement)
    images = rt.prune(removed) if removed else []
    return GarbageReport(name=name, where=rt.where(), removed=removed, images=images)


def refuse_live_slot(traffic: TrafficGuard | None, name: str, slot: str, doing: str) -> None:
    """UsageError (exit 2) when `traffic` says `slot` carries live traffic."""
    live = traffic(name, slot) if traffic is not None else None
    if live:
        raise UsageError(f"{doing} slot {slot} of {name}, which carries live traffic: {live}",
                         hint="Use the slot without traffic (rollout start deploys the candidate there), "
                              "or pass --force")


def record_event(cfg: "Config", name: str, runtime: Runtime, event: str, placement: Placement, via: str | None = None) -> None:
    """One deploy, stop or gc event in the versions store: who, when, where, which slot, which digest."""
    store = VersionStore(cfg.resolve(cfg.store))
    store.append(DeployRecord(event=event, name=name, version=placement.version, slot=placement.slot,
                              runtime=runtime.name, where=runtime.where(), id=placement.id, image=placement.image,
                              digest=placement.digest, via=via))


def _current(runtime: Runtime, slot: str) -> Placement | None:
    return next((p for p in runtime.placements() if p.current and p.slot == slot), None)


def _resolve_paths(cfg: "Config", settings: dict[str, Any]) -> None:
    for value in settings.values():
        if isinstance(value, dict):
            for key in _PATH_SETTINGS:
                if isinstance(value.get(key), str):
                    value[key] = str(cfg.resolve(value[key]))
