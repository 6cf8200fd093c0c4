"""Opening a rollout as mlship.yaml describes it (its state store, router and
gate settings), for `mlship rollout` and for the demo, which drive the verbs in
`engine.py` on what this returns."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Callable

from mlship.errors import UsageError
from mlship.names import check_name

if TYPE_CHECKING:
    from mlship.config import Config
    from mlship.rollout.state import RolloutState, StateStore
    from mlship.rollout.transaction import Rollout

# Router settings that are paths: relative ones are relative to mlship.yaml.
_PATH_SETTINGS = ("config", "main_config", "prefix", "template", "path", "access_log")


def open_rollout(cfg: "Config", name: str, logs: list[str] | None = None,
                 notify: Callable[[str], None] | None = None) -> "Rollout":
    """The rollout NAME: state in `rollout.state` (a path, URL or a named target), the
    configured router (opened on first use), the analysis gate over `logs` (or `rollout.logs`).
    `notify` is told when a verb has to wait for another one's lock."""
    from mlship.deploy.slots import RolloutSlots
    from mlship.rollout.engine import Rollout
    from mlship.rollout.routers import open_router
    check_name(name, "rollout name")
    ro = cfg.rollout
    store = state_store(cfg)
    router_settings = ro.router.model_dump() if ro.router else None
    if router_settings:
        for key in _PATH_SETTINGS:
            if router_settings.get(key):
                router_settings[key] = str(cfg.resolve(router_settings[key]))
    log_specs = [str(cfg.resolve(p)) for p in (logs or ro.logs)]
    return Rollout(name=name, store=store, router_factory=lambda: open_router(router_settings, name),
                   analysis=ro.analysis, logs=log_specs, default_steps=[float(s) for s in ro.steps],
                   default_pause_s=parse_duration(ro.pause) if ro.pause else 0.0, default_strategy=ro.strategy,
                   notify=notify, slots=RolloutSlots(cfg, name))


def state_store(cfg: "Config") -> "StateStore":
    """Where rollout states live: `rollout.state` (a path, URL or a named target), else .mlship/rollouts."""
    from mlship.rollout.state import open_store

    spec, settings = cfg.rollout.state, None
    if spec and spec in cfg.targets:  # a named target: its URL and its settings (endpoint, region, profile, SSE)
        settings = cfg.targets[spec].model_dump(exclude={"type", "url"})
        spec = cfg.targets[spec].url
    return open_store(spec, cfg.base_dir, settings)


def traffic_guard(cfg: "Config") -> Callable[[str, str], str | None]:
    """For `mlship deploy` and `deploy stop`: (model, slot) -> the live traffic the rollout of that name
    sends to the slot (naming the rollout and its weights), None when it sends none."""
    return lambda name, slot: slot_traffic(state_store(cfg).load(name), slot)


def slot_traffic(state: "RolloutState | None", slot: str) -> str | None:
    """What the rollout's recorded route sends to `slot`: users' requests (while it runs, and on the
    stable slot after it ended) or mirrored copies; None when nothing."""
    if state is None:
        return None
    route = state.route
    share = route.shares().get(slot, 0.0)
    mirrored = route.mirror and route.candidate == slot
    if not share and not mirrored:
        return None
    what = f"{share:g}% of users' requests" if share else "a mirror of every request"
    doing = f"{state.strategy} of {state.candidate.version}" if state.candidate else "no candidate"
    phase = "aborted" if state.aborted else state.phase
    return f"rollout {state.name} ({doing}, {phase}) routes {route.describe()}; {slot} gets {what}"


def parse_duration(text: str) -> float:
    """30s, 10m, 1h, 1h30m, or plain seconds."""
    text = text.strip()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise UsageError(f"duration {text!r}: expected e.g. 30s, 10m, 1h30m")
    scale = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
    return sum(float(n) * scale[u] for n, u in parts)
