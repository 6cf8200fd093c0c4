"""Routers move traffic between two slots. One interface; the kinds are plugins
in the entry-point group `mlship.routers.v1`, looked up by `type` (mlship's own
are declared there like any other)."""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any, ClassVar

from mlship.errors import UsageError
from mlship.plugins import PluginSettings, load
from mlship.rollout.state import Route


@dataclass(frozen=True)
class SlotMetrics:
    """What the router's own metrics say about the requests a slot got in a window (SageMaker's
    CloudWatch metrics): the gate counts them beside the prediction logs."""

    source: str
    requests: int
    errors: int
    p99_latency_ms: float | None = None


class Router(abc.ABC):
    """Set weights and mirroring, read the live state, clear.

    A plugin subclasses this and `Router.Settings` (its keys under `rollout.router`), and is
    constructed with `name=` (the rollout's model) and those settings as keyword arguments.
    """

    #: the `type:` it is registered under
    name: ClassVar[str]
    #: strategies this router can carry out
    supports: ClassVar[frozenset[str]] = frozenset()

    class Settings(PluginSettings):
        pass

    @abc.abstractmethod
    def slots(self) -> list[str]:
        """The two places versions can run (nginx upstreams, SageMaker production variants)."""

    @abc.abstractmethod
    def live(self) -> Route | None:
        """What the router does now; None when mlship has not configured it yet."""

    @abc.abstractmethod
    def apply(self, route: Route) -> None:
        """Make `route` live and verify it; ServiceError (exit 7) and the old state kept on failure."""

    def unanswered(self, slot: str, since: float, until: float) -> int | None:
        """Requests routed to `slot` in [since, until) (epoch seconds) that it did not answer (a 502 or
        504 from the router itself); None when the router cannot tell."""
        return None

    def observed(self, slot: str, since: float, until: float) -> SlotMetrics | None:
        """The requests, errors and latency the router's own metrics saw for `slot` in [since, until)
        (epoch seconds); None when it has none (or they are not configured)."""
        return None

    def serves(self, slot: str) -> tuple[str, list[str]] | None:
        """Where `slot` is (for messages) and the versions of the model it serves; None when it
        cannot tell (nothing answers). By default: `/v2/models/NAME` at the slot's upstream address."""
        from mlship.deploy.probe import served_versions

        address = (getattr(self, "upstreams", None) or {}).get(slot)
        model = getattr(self, "model", None)
        if not address or not model:
            return None
        served = served_versions(address, model)
        return (address, served) if served is not None else None

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


def open_router(settings: dict[str, Any] | None, name: str) -> Router:
    """The router `rollout.router` describes (its `type` and that plugin's settings), for model `name`."""
    if not settings:
        raise UsageError("no router configured", hint="Set rollout.router in mlship.yaml (type: nginx or sagemaker)")
    settings = dict(settings)
    plugin = load("routers", settings.pop("type"), "rollout.router")
    return plugin(name=name, **settings)
