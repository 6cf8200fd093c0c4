"""What `mlship serve` was pointed at: a model file, a project directory or an edge bundle."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mlship.config import CONFIG_FILE, Config, load_config
from mlship.errors import InvalidInputError
from mlship.model.features import DeclaredFeatures


@dataclass(frozen=True)
class ModelSource:
    path: Path
    name: str
    version: str
    allow_missing: bool = False  # `missing_values: allow` in the config that named the model
    unpacked: Path | None = None  # a bundle's temporary unpacked copy, which the caller removes when done
    features: DeclaredFeatures | None = None  # `features:` of the config, when it names this model


def resolve_source(target: Path | None, config: Config, *, name: str | None, version: str | None) -> ModelSource:
    """MODEL.onnx, NAME-VERSION.mlbundle, DIR with mlship.yaml or model.onnx,
    or `model:` from the config.

    Name and version: flags, then the bundle manifest or the config, then the
    file name and "1".
    """
    if target is not None and target.is_dir():
        if (target / CONFIG_FILE).is_file():
            config = load_config(target / CONFIG_FILE)
            target = config.resolve(config.model)
        elif (target / "model.onnx").is_file():
            target = target / "model.onnx"
        else:
            raise InvalidInputError(f"{target}: no {CONFIG_FILE} or model.onnx in this directory")
    elif target is None:
        target = config.resolve(config.model)
    if target is None:
        raise InvalidInputError("no model given", hint="Pass MODEL.onnx or DIR, or set `model:` in mlship.yaml")
    if target.suffix == ".mlbundle":
        from mlship.bundles.read import unpack_bundle

        bundle = unpack_bundle(target)
        return ModelSource(path=bundle.model_path, name=name or bundle.manifest.name,
                           version=version or bundle.manifest.version,
                           allow_missing=config.missing_values == "allow", unpacked=bundle.directory,
                           features=bundle.manifest.declared_features())
    from mlship.model.load import default_model_name

    default_name = default_model_name(target)
    return ModelSource(
        path=target,
        name=name or config.name or _slug(default_name),
        version=version or config.version or "1",
        allow_missing=config.missing_values == "allow",
        features=config.for_model(target)[0].declared_features(),
    )


def _slug(text: str) -> str:
    import re

    return re.sub(r"[^a-zA-Z0-9._-]+", "-", text).strip("-") or "model"
