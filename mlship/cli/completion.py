"""Shell completion of names from mlship.yaml (target names, rollout names).

Runs on every <TAB>: it reads mlship.yaml with yaml alone (no pydantic model,
no plugins) and lists rollout state files, and never fails; a file it cannot
read completes nothing.

What it prints goes into the user's shell: only names that follow the
identifier rule (mlship.names: no spaces, newlines, quotes or shell
metacharacters) are offered, help texts are one line with credentials in
URLs redacted, and a large file or a YAML bomb completes nothing at once.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import typer

MAX_CONFIG_BYTES = 1_000_000  # a <TAB> reads no more than this
MAX_HELP = 120


def _project(ctx: typer.Context) -> tuple[dict[str, Any], Path]:
    """mlship.yaml as a plain mapping (--config, MLSHIP_CONFIG or ./mlship.yaml) and its directory."""
    explicit = ctx.find_root().params.get("config") or os.environ.get("MLSHIP_CONFIG")
    path = Path(explicit).expanduser() if explicit else Path("mlship.yaml")
    try:
        from mlship.yamlload import load_yaml

        if path.stat().st_size > MAX_CONFIG_BYTES:
            return {}, path.parent
        data = load_yaml(path.read_text(encoding="utf-8"), max_nodes=10_000)
    except Exception:  # an unreadable file completes nothing: a <TAB> never prints an error
        return {}, path.parent
    return (data if isinstance(data, dict) else {}), path.parent


def _section(data: dict[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key)
    return value if isinstance(value, dict) else {}


def _help(url: Any) -> str:
    """A target's URL as a one-line help text, credentials and signatures redacted."""
    if not isinstance(url, str):
        return ""
    from mlship.urls import redact

    text = " ".join(redact(url[:1000]).split())
    return "".join(c for c in text if c.isprintable())[:MAX_HELP]


def complete_target(ctx: typer.Context, incomplete: str) -> list[tuple[str, str]]:
    """Target names from `targets:`, with their (redacted) URL as the help text."""
    from mlship.names import is_valid_name

    targets = _section(_project(ctx)[0], "targets")
    return [(name, _help(spec.get("url")) if isinstance(spec, dict) else "")
            for name, spec in targets.items() if is_valid_name(name) and name.startswith(incomplete)]


def complete_rollout(ctx: typer.Context, incomplete: str) -> list[str]:
    """The project's `name:` and the rollouts with a state file in a local `rollout.state` directory."""
    from mlship.names import is_valid_name

    data, base = _project(ctx)
    names = [data["name"]] if isinstance(data.get("name"), str) else []
    state = _section(data, "rollout").get("state") or ".mlship/rollouts"
    if isinstance(state, str) and "://" not in state.removeprefix("file://") and state not in _section(data, "targets"):
        directory = Path(state.removeprefix("file://")).expanduser()
        try:
            names += sorted(p.stem for p in (directory if directory.is_absolute() else base / directory).glob("*.json"))
        except (OSError, ValueError):
            pass
    return [n for n in dict.fromkeys(names) if is_valid_name(n) and n.startswith(incomplete)]
