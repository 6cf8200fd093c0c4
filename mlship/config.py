"""mlship.yaml, modelled with pydantic.

Every model forbids unknown keys and describes its fields, so `mlship config
schema` is a complete reference and a typo is an error naming its path.
Precedence: flag > MLSHIP_* environment variable > file > default.
Nested values come from the environment with `__` between levels, for example
MLSHIP_BUILD__IMAGE__BASE=python:3.11-slim or MLSHIP_ROLLOUT__STEPS='[10, 50, 100]'.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal, Mapping

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

from mlship.deploy.settings import DeployConfig
from mlship.drift.settings import DriftSettings
from mlship.errors import ConfigError
from mlship.plugins import plugin_section
from mlship.tuf.settings import SigningSettings
from mlship.yamlload import YamlBombError, load_yaml

CONFIG_FILE = "mlship.yaml"
ENV_PREFIX = "MLSHIP_"


class Strict(BaseModel):
    """Base of every config model: unknown keys are errors, and so are .inf and .nan (an infinite
    rtol, tolerance or latency bound would turn its gate off without a word)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


# -- check ---------------------------------------------------------------------


class CheckConfig(Strict):
    """Defaults for `mlship check`."""

    labels: str | None = Field(None, description="Labels column in the sample, or a file of labels.")
    baseline: str | None = Field(None, description="Previous model version to compare against.")
    tolerance: float | None = Field(None, ge=0, description="Max absolute output difference allowed against the baseline [1e-4; not gated when max_regression is set].")
    min_agreement: float | None = Field(None, ge=0, le=1, description="Min label agreement with the baseline (0..1).")
    min_metric: dict[str, float] = Field(default_factory=dict, description="Quality floor, e.g. {accuracy: 0.9}.")
    max_metric: dict[str, float] = Field(default_factory=dict, description="Quality ceiling for lower-is-better metrics, e.g. {rmse: 3.0}.")
    max_regression: dict[str, float] = Field(default_factory=dict, description="How much worse than the baseline a metric may be on the sample's labels, e.g. {rmse: 0.05, accuracy: 0.01}.")
    max_p99_ms: float | None = Field(None, gt=0, description="Fail when p99 latency at batch 1 exceeds this (ms).")
    batch_size: int = Field(64, ge=2, description="Batch size for the throughput measurement.")
    task: Literal["auto", "classification", "regression"] = Field("auto", description="How to score labels.")

    @field_validator("max_regression", mode="before")
    @classmethod
    def _known_metrics(cls, value: Any) -> Any:
        from mlship.metrics import parse_metric_limits

        return parse_metric_limits(value, "") if isinstance(value, dict) else value


# -- runtime -------------------------------------------------------------------


class RuntimeConfig(Strict):
    """How check, serve, predict and edge run execute the model (onnxruntime)."""

    providers: list[Literal["cpu", "cuda", "tensorrt", "openvino", "coreml"]] = Field(
        default_factory=lambda: ["cpu"], min_length=1,
        description="Execution providers, best first, e.g. [cuda, cpu] or cuda,cpu (any case); under --provider. One that onnxruntime "
        "does not offer here is an error (exit 2) unless provider_fallback is true.")
    provider_fallback: bool = Field(False, description="Drop unavailable providers and run on CPU, saying so "
                                    "(--provider-fallback), instead of failing.")

    @field_validator("providers", mode="before")
    @classmethod
    def _as_the_flag_reads_them(cls, value: Any) -> Any:
        """`cuda,cpu` (MLSHIP_RUNTIME__PROVIDERS=cuda,cpu) and `[CUDA, cpu, cpu]` read as --provider reads
        them: split on commas, any case, each once (onnxruntime warns on a repeated provider)."""
        from mlship.model.providers import provider_names

        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            return value
        return provider_names(value)


# -- build ---------------------------------------------------------------------


class ImageBuildConfig(Strict):
    """Container image settings (`mlship build --image`)."""

    base: str = Field("python:3.11-slim", description="Base image with Python 3.11.")
    python: str = Field("3.11", description="Python version of the base image (wheels are resolved for it).")
    repository: str | None = Field(None, description="Image repository, e.g. registry.local:5000/ml/readmission.")
    tag: str | None = Field(None, description="Image tag; defaults to the model version.")
    template: str | None = Field(None, description="Your own Dockerfile template instead of mlship's.")
    platform: str = Field("linux/amd64", description="Target platform of the image.")
    builder: str = Field("docker", description="docker (through the engine), oci (daemonless, reproducible), "
                         "or a plugin's name from the mlship.builders.v1 entry points.")


class EdgeBuildConfig(Strict):
    """Edge bundle settings (`mlship build --edge`)."""

    quantize: Literal["int8"] | None = Field(None, description="Quantize weights for small devices.")
    ort: bool = Field(False, description="Also convert to ORT format.")
    max_accuracy_drop: float = Field(0.01, ge=0, le=1, description="Fail the build past this accuracy drop.")
    max_metric_drop: dict[str, float] = Field(default_factory=dict, description="How much worse than fp32 the int8 model may be, per metric, e.g. {rmse: 0.05, mae: 0.02} for a regressor.")

    @field_validator("max_metric_drop", mode="before")
    @classmethod
    def _known_metrics(cls, value: Any) -> Any:
        from mlship.metrics import parse_metric_limits

        return parse_metric_limits(value, "") if isinstance(value, dict) else value
    signing_key: str | None = Field(None, description="Ed25519 private key used to sign the manifest.")


class BuildConfig(Strict):
    """What `mlship build` produces."""

    image: ImageBuildConfig = Field(default_factory=ImageBuildConfig)
    edge: EdgeBuildConfig = Field(default_factory=EdgeBuildConfig)


# -- targets -------------------------------------------------------------------


# A target is `type:` plus that plugin's keys, validated by the plugin's Settings (mlship/plugins.py).
Target = plugin_section("targets")


# -- rollout -------------------------------------------------------------------


# A router is `type:` plus that plugin's keys, validated by the plugin's Settings.
Router = plugin_section("routers")


class PrometheusQuery(Strict):
    """One PromQL query judged by the gate; $candidate, $stable (versions) and $window (e.g. 300s) are filled in."""

    name: str = Field(..., description="Name shown in the gate's table.")
    query: str = Field(..., description='PromQL, e.g. sum(rate(mlship_requests_total{version="$candidate",status=~"5.."}[$window])).')
    max: float | None = Field(None, description="Fail when the value is above this.")
    min: float | None = Field(None, description="Fail when the value is below this.")


class PrometheusConfig(Strict):
    """Extra gate metrics from a Prometheus server (HTTP API /api/v1/query)."""

    url: str = Field(..., description="Base URL, e.g. http://prometheus:9090.")
    queries: list[PrometheusQuery] = Field(default_factory=list)
    timeout_s: float = Field(10, gt=0, description="Per query.")


class AnalysisConfig(Strict):
    """The gate between rollout steps."""

    max_error_rate: float | None = Field(0.01, ge=0, le=1, description="Max share of failed requests.")
    max_p99_latency_ms: float | None = Field(None, gt=0, description="Max p99 latency of the candidate (ms).")
    max_prediction_drift: float | None = Field(None, ge=0, description="Max drift of candidate vs stable outputs.")
    min_requests: int = Field(100, ge=0, description="Wait for this many candidate requests before judging.")
    max_disagreement: float | None = Field(None, ge=0, le=1, description="Shadow: max share of requests answered differently.")
    rtol: float = Field(1e-5, ge=0, description="Shadow: regressors' outputs agree when |candidate - stable| <= atol + rtol * |stable| (numpy.isclose).")
    atol: float = Field(1e-6, ge=0, description="Shadow: the absolute part of that tolerance.")
    prometheus: PrometheusConfig | None = Field(None, description="Extra metrics from Prometheus queries.")

    @model_validator(mode="before")
    @classmethod
    def _tolerance_is_atol(cls, values: Any) -> Any:
        """`tolerance`, the older name of `atol`, is still read."""
        if isinstance(values, dict) and "tolerance" in values:
            values = dict(values)
            if "atol" in values:
                raise ValueError("tolerance is the older name of atol: give only atol")
            values["atol"] = values.pop("tolerance")
        return values


class RolloutConfig(Strict):
    """How a new version reaches users."""

    router: Router | None = None
    strategy: Literal["bluegreen", "canary", "shadow"] = "canary"
    steps: list[int] = Field(default_factory=lambda: [5, 25, 50, 100], description="Candidate traffic % per step.")
    pause: str | None = Field(None, description="Wait between steps, e.g. 10m.")
    analysis: AnalysisConfig = Field(default_factory=AnalysisConfig)
    logs: list[str] = Field(default_factory=list, description="Prediction logs of both versions (directories, globs).")
    state: str | None = Field(None, description="Where rollout states live: a directory [.mlship/rollouts], s3://…, gs://…, az://…, or a target name.")

    @field_validator("steps")
    @classmethod
    def _steps(cls, steps: list[int]) -> list[int]:
        if not steps or any(not 0 < s <= 100 for s in steps) or steps != sorted(set(steps)):
            raise ValueError("must be increasing percentages in (0, 100]")
        return steps


# -- deploy --------------------------------------------------------------------

# `runtime:` and one section per runtime, validated by that runtime's Settings (mlship/deploy/settings.py).

# -- monitoring ----------------------------------------------------------------


# One model for the section, the drift command's flags and the analysis (mlship/drift/settings.py).
MonitoringConfig = DriftSettings


# -- top level -----------------------------------------------------------------


class Config(Strict):
    """mlship.yaml: one model and how it ships."""

    name: str | None = Field(None, description="Model name, used in images, targets and logs.")
    version: str | None = Field(None, description="Model version, e.g. 1.4.0.")
    model: str | None = Field(None, description="Path to the ONNX model, relative to mlship.yaml.")
    sample: str | None = Field(None, description="Sample data (CSV, Parquet, JSON Lines, NPY) for checks.")
    features: list[str] | dict[str, list[str]] | None = Field(
        None, description="Data columns of the model's 2-D inputs, for a model without `mlship.feature_names` "
        "(a converter's `X [N, k]`): a list for a single input, or `input: [columns]` for several. Over the "
        "model's metadata, under --features; `mlship init --sample` writes it from the sample's header.")
    store: str = Field(".mlship/versions.jsonl", description="The versions store, relative to mlship.yaml.")
    missing_values: Literal["refuse", "allow"] = Field(
        "refuse", description="Missing inputs (empty cell, null, NaN) in serve, predict and check: refuse names the "
        "field and row (HTTP 400, exit 3); allow passes them to float inputs as NaN, for models that handle "
        "them (tree ensembles). Integer, bool and string inputs refuse them either way.")
    check: CheckConfig = Field(default_factory=CheckConfig)
    runtime: RuntimeConfig = Field(default_factory=RuntimeConfig)
    build: BuildConfig = Field(default_factory=BuildConfig)
    targets: dict[str, Target] = Field(default_factory=dict, description="Named places artifacts go.")
    rollout: RolloutConfig = Field(default_factory=RolloutConfig)
    deploy: DeployConfig = Field(default_factory=DeployConfig)
    monitoring: MonitoringConfig = Field(default_factory=MonitoringConfig)
    signing: SigningSettings = Field(default_factory=SigningSettings)

    _base_dir: Path = PrivateAttr(default_factory=Path.cwd)
    _source: str = PrivateAttr(default="defaults")

    @property
    def base_dir(self) -> Path:
        """Directory that relative paths in the config are relative to."""
        return self._base_dir

    @property
    def source(self) -> str:
        """Where the config came from (a file path, or 'defaults')."""
        return self._source

    def tuf_signing(self) -> SigningSettings | None:
        """`signing:` with key paths made absolute, or None when no TUF key is configured."""
        return self.signing.resolved(self._base_dir) if self.signing.enabled else None

    def resolve(self, path: str | None) -> Path | None:
        """A path from the config, made absolute against the config's directory."""
        if path is None:
            return None
        p = Path(path).expanduser()
        return p if p.is_absolute() else self._base_dir / p

    def declared_features(self) -> Any:
        """`features:` as mlship.model.features.DeclaredFeatures (None when unset)."""
        from mlship.model.features import DeclaredFeatures

        return DeclaredFeatures(columns=self.features, source=f"{self._source}: features") if self.features else None

    def for_model(self, model: Path | None) -> tuple["Config", list[str]]:
        """This config for running `model` (None: the configured one).

        The settings in MODEL_SETTINGS describe the project's `model:`; for
        another model they are dropped from the returned copy, and their
        names returned, so a caller can say what it did not use and why."""
        if model is None or self.model is None or _same_file(model, self.resolve(self.model)):
            return self, []
        dropped = [key for key in MODEL_SETTINGS if _get_path(self, key)]
        if not dropped:
            return self, []
        copy = self.model_copy(deep=True)
        for key in dropped:
            section, _, field = key.rpartition(".")
            owner = getattr(copy, section) if section else copy
            setattr(owner, field, type(owner).model_fields[field].get_default(call_default_factory=True))
        return copy, dropped


# Settings that belong to the project's `model:`; another model named on the command line runs without them.
MODEL_SETTINGS = ("sample", "features", "check.labels", "check.baseline", "check.min_metric", "check.max_metric",
                  "check.max_regression")


def _get_path(config: BaseModel, dotted: str) -> Any:
    value: Any = config
    for part in dotted.split("."):
        value = getattr(value, part)
    return value


def _same_file(a: Path, b: Path | None) -> bool:
    if b is None:
        return False
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and a.samefile(b))
    except OSError:
        return False


# Global options that share the MLSHIP_ prefix but are not config fields.
_NOT_CONFIG = {"JSON", "QUIET", "VERBOSE", "PLAIN", "CONFIG", "REQUIRE_SERVICES", "NO_COLOR"}


def find_config(explicit: str | Path | None, cwd: Path | None = None) -> Path | None:
    """The config file to use: the explicit one (must exist), or ./mlship.yaml."""
    if explicit is not None:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}", hint="Check --config or MLSHIP_CONFIG")
        return path
    candidate = (cwd or Path.cwd()) / CONFIG_FILE
    return candidate if candidate.is_file() else None


def load_config(
    path: str | Path | None = None,
    *,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Config:
    """Load the effective config: file, then MLSHIP_* variables, then flags.

    `overrides` holds flag values by dotted path ("check.tolerance"); None
    values are skipped so unset flags do not mask the file.
    """
    file = find_config(path, cwd)
    data = _read_yaml(file) if file else {}
    sources: dict[tuple, str] = {}
    for key, value in _env_values(os.environ if environ is None else environ).items():
        _set_path(data, key, value[0])
        sources[key] = value[1]
    for dotted, value in (overrides or {}).items():
        if value is not None:
            key = tuple(dotted.split("."))
            _set_path(data, key, value)
            sources[key] = "--" + key[-1].replace("_", "-")
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        raise _config_error(exc, file, sources) from None
    config._base_dir = (file.parent if file else (cwd or Path.cwd())).resolve()
    config._source = str(file) if file else "defaults"
    return config


def _read_yaml(file: Path) -> dict[str, Any]:
    try:
        data = load_yaml(file.read_text(encoding="utf-8"))
    except YamlBombError as exc:
        raise ConfigError(f"{file}: invalid YAML: {exc}", hint="Write the values out instead of nesting aliases") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"{file}:{mark.line + 1}:{mark.column + 1}" if mark else str(file)
        raise ConfigError(f"{where}: invalid YAML: {exc.problem}", hint="Fix the syntax") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        # One line: the reader's errors (a NUL byte, say) span several.
        raise ConfigError(f"{file}: cannot read config: {' '.join(str(exc).split())}") from None
    except RecursionError:
        raise ConfigError(f"{file}: invalid YAML: nested too deeply", hint="Fix the syntax") from None
    except ValueError as exc:  # a scalar the parser accepts but cannot build: a 30 February, a huge integer
        raise ConfigError(f"{file}: invalid YAML value: {exc}", hint="Quote it to make it a string") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{file}: the top level must be a mapping of keys, not {type(data).__name__}")
    return data


def _env_values(environ: Mapping[str, str]) -> dict[tuple, tuple[Any, str]]:
    """MLSHIP_A__B=value -> {("a", "b"): (parsed value, "MLSHIP_A__B")}."""
    fields = set(Config.model_fields)
    values: dict[tuple, tuple[Any, str]] = {}
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX) or name[len(ENV_PREFIX):] in _NOT_CONFIG:
            continue
        key = tuple(part.lower() for part in name[len(ENV_PREFIX):].split("__"))
        if key[0] in fields:
            values[key] = (_parse_scalar(raw), name)
    return values


def _parse_scalar(raw: str) -> Any:
    """Environment values are YAML scalars or flow collections ("0.5", "[5, 50]")."""
    try:
        return load_yaml(raw)
    except (yaml.YAMLError, ValueError, RecursionError):  # not YAML, or a value YAML cannot build: the text
        return raw


def _set_path(data: dict[str, Any], key: tuple, value: Any) -> None:
    node = data
    for part in key[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    node[key[-1]] = value


def _config_error(exc: ValidationError, file: Path | None, sources: dict[tuple, str]) -> ConfigError:
    """One line naming the first bad field, where it came from, and why."""
    err = exc.errors()[0]
    loc = tuple(str(p) for p in err["loc"])
    dotted = ".".join(loc) or "(top level)"
    origin = next((src for key, src in sources.items() if loc[: len(key)] == key), None)
    where = origin or (str(file) if file else "config")
    message = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        message = "unknown key"
    elif "input" in err and err["type"] not in ("missing",) and not isinstance(err["input"], dict):
        shown = repr(err["input"])
        message += f" (got {shown if len(shown) <= 80 else shown[:77] + '...'})"
    more = f" (and {len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
    return ConfigError(
        f"{where}: {dotted}: {message}{more}",
        hint="See `mlship config schema` for the allowed keys and types",
    )


def config_schema() -> dict[str, Any]:
    """The JSON Schema of mlship.yaml."""
    schema = Config.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "mlship.yaml"
    return schema
