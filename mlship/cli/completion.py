"""Shell completion of names from mlship.yaml (target names, rollout names).

Runs on every <TAB>: it reads mlship.yaml with yaml alone (no pydantic model,
no plugins) and lists rollout state files, and never fails; a file it cannot
read completes nothing.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import typer


def _project(ctx: typer.Context) -> tuple[dict[str, Any], Path]:
    """mlship.yaml as a plain mapping (--config, MLSHIP_CONFIG or ./mlship.yaml) and its directory."""
    explicit = ctx.find_root().params.get("config") or os.environ.get("MLSHIP_CONFIG")
    path = Path(explicit).expanduser() if explicit else Path("mlship.yaml")
    try:
        import yaml

        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except Exception:  # an unreadable file completes nothing: a <TAB> never prints an error
        return {}, path.parent
    return (data if isinstance(data, dict) else {}), path.parent


def _section(data: dict[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key)
    return value if isinstance(value, dict) else {}


def complete_target(ctx: typer.Context, incomplete: str) -> list[tuple[str, str]]:
    """Target names from `targets:`, with their URL as the help text."""
    targets = _section(_project(ctx)[0], "targets")
    return [(str(name), str(spec.get("url", "")) if isinstance(spec, dict) else "")
            for name, spec in targets.items() if str(name).startswith(incomplete)]


def complete_rollout(ctx: typer.Context, incomplete: str) -> list[str]:
    """The project's `name:` and the rollouts with a state file in a local `rollout.state` directory."""
    data, base = _project(ctx)
    names = [str(data["name"])] if data.get("name") else []
    state = _section(data, "rollout").get("state") or ".mlship/rollouts"
    if isinstance(state, str) and "://" not in state.removeprefix("file://") and state not in _section(data, "targets"):
        directory = Path(state.removeprefix("file://")).expanduser()
        try:
            names += sorted(p.stem for p in (directory if directory.is_absolute() else base / directory).glob("*.json"))
        except OSError:
            pass
    return [n for n in dict.fromkeys(names) if n.startswith(incomplete)]
