"""Routers move traffic between two slots. One interface, looked up by `type`
in the entry-point group `mlship.routers.v1` (built-ins register the same way)."""

from __future__ import annotations

from typing import Any

from mlship.errors import UsageError
from mlship.rollout.state import Route


class Router:
    """Set weights and mirroring, read the live state, clear."""

    name: str = ""
    #: strategies this router can carry out
    supports: frozenset[str] = frozenset()

    def slots(self) -> list[str]:
        """The two places versions can run (nginx upstreams, SageMaker production variants)."""
        raise NotImplementedError

    def live(self) -> Route | None:
        """What the router does now; None when mlship has not configured it yet."""
        raise NotImplementedError

    def apply(self, route: Route) -> None:
        """Make `route` live and verify it; ServiceError (exit 7) and the old state kept on failure."""
        raise NotImplementedError

    def clear(self, stable: str) -> None:
        """All traffic to `stable`, no split, no mirror."""
        self.apply(Route(stable=stable))


def two_slots(upstreams: dict[str, str]) -> dict[str, str]:
    """A router's `upstreams:`, which must name exactly two slots."""
    if len(upstreams) != 2:
        raise UsageError(f"rollout.router.upstreams: name exactly two slots (got {len(upstreams)})",
                         hint="For example {blue: 127.0.0.1:8001, green: 127.0.0.1:8002}")
    return dict(upstreams)


def check_slots(route: Route, slots: list[str], where: str) -> None:
    """Refuse a route naming a slot the router does not have."""
    for slot in (route.stable, route.candidate):
        if slot is not None and slot not in slots:
            raise UsageError(f"slot '{slot}' is not in {where} ({', '.join(slots)})")


def router_kinds() -> dict[str, type[Router]]:
    from importlib.metadata import entry_points

    from mlship.rollout.routers.file import FileRouter
    from mlship.rollout.routers.nginx import NginxRouter
    from mlship.rollout.routers.sagemaker import SageMakerRouter

    kinds: dict[str, type[Router]] = {"nginx": NginxRouter, "sagemaker": SageMakerRouter, "file": FileRouter}
    for entry in entry_points(group="mlship.routers.v1"):
        kinds.setdefault(entry.name, entry.load())
    return kinds


def open_router(settings: dict[str, Any] | None, name: str) -> Router:
    if not settings:
        raise UsageError("no router configured", hint="Set rollout.router in mlship.yaml (type: nginx or sagemaker)")
    settings = dict(settings)
    kind = settings.pop("type")
    kinds = router_kinds()
    if kind not in kinds:
        raise UsageError(f"rollout.router: unknown type '{kind}'", hint=f"Use one of {', '.join(sorted(kinds))}")
    return kinds[kind](name=name, **settings)
