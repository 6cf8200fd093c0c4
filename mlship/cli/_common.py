"""Small helpers shared by command modules."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import typer

from mlship.errors import UsageError

if TYPE_CHECKING:
    from mlship.config import Config


def state(ctx: typer.Context) -> Any:
    """The State object the global callback filled in."""
    return ctx.find_root().obj


def config_for(ctx: typer.Context, overrides: dict[str, Any] | None = None) -> "Config":
    """The effective config: file < MLSHIP_* env < these flag overrides."""
    from mlship.config import load_config

    return load_config(state(ctx).config_path, overrides=overrides)


def parse_pairs(values: list[str] | None, flag: str) -> dict[str, float]:
    """["accuracy=0.9", "f1=0.8"] -> {"accuracy": 0.9, "f1": 0.8}."""
    pairs = {}
    for item in values or []:
        name, sep, raw = item.partition("=")
        try:
            if not sep or not name:
                raise ValueError
            key, value = name.strip().lower(), float(raw)
        except ValueError:
            raise UsageError(f"{flag} {item!r}: expected NAME=NUMBER, e.g. accuracy=0.9") from None
        if key in pairs and pairs[key] != value:  # a second value would silently loosen or tighten a gate
            raise UsageError(f"{flag} {key} is given twice ({pairs[key]:g} and {value:g})", hint="Give it once")
        pairs[key] = value
    return pairs


def parse_limits(values: list[str] | None, flag: str) -> dict[str, float]:
    """["rmse=0.05"] -> {"rmse": 0.05}: known metric names and finite deltas >= 0 (exit 2 naming the bad one)."""
    from mlship.metrics import parse_metric_limits

    try:
        return parse_metric_limits(parse_pairs(values, flag), flag)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


# --features, the same in check, predict and serve.
FEATURES_OPTION: Any = typer.Option(
    None, "--features", help="Columns of the model's 2-D input, a,b,c; or INPUT=a,b per input (repeatable) "
    "[features in mlship.yaml, then the model's metadata].")


def declared_features(values: list[str] | None) -> Any:
    """--features values as mlship.model.features.DeclaredFeatures (None when not given)."""
    if not values:
        return None
    from mlship.model.features import DeclaredFeatures, parse_features_flag

    return DeclaredFeatures(columns=parse_features_flag(values), source="--features")


# --provider and --provider-fallback, the same in check, serve, predict and edge run.
PROVIDER_OPTION: Any = typer.Option(
    None, "--provider", help="Execution providers, best first: cpu, cuda, tensorrt, openvino, coreml (comma list "
    "or repeated) [runtime.providers in mlship.yaml: cpu].")
PROVIDER_FALLBACK_OPTION: Any = typer.Option(
    None, "--provider-fallback/--no-provider-fallback",
    help="Run on CPU, saying so, when a provider is not available here, instead of exit 2 "
    "[runtime.provider_fallback in mlship.yaml: off].")


def provider_request(cfg: "Config", values: list[str] | None, fallback: bool | None) -> Any:
    """--provider/--provider-fallback over mlship.yaml's `runtime:` as mlship.model.providers.ProviderRequest."""
    from mlship.model.providers import ProviderRequest, parse_providers

    given = parse_providers(values)
    configured = "providers" in cfg.runtime.model_fields_set
    source = ("--provider" if given else "MLSHIP_RUNTIME__PROVIDERS" if "MLSHIP_RUNTIME__PROVIDERS" in os.environ
              else f"runtime.providers in {cfg.source}" if configured else "default")
    return ProviderRequest(providers=given or list(cfg.runtime.providers), source=source,
                           fallback=cfg.runtime.provider_fallback if fallback is None else fallback)
