"""The use case behind `mlship build --edge`: write a bundle and record it in the versions store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel

from mlship.bundles.write import BundleOptions, BundleResult


class BundleRequest(BaseModel):
    """A bundle to build, and where the build is recorded. `reference` is the monitoring
    reference: when it is a saved profile, the bundle carries it for drift on the device."""

    options: BundleOptions
    reference: Path | None = None
    store: Path

    @classmethod
    def from_config(cls, cfg: Any, model: Path, name: str, version: str, *, output_dir: Path,
                    static: bool = False) -> "BundleRequest":
        """The bundle mlship.yaml (`build.edge`, `sample`, `check.labels`, `monitoring.reference`) asks for."""
        edge = cfg.build.edge
        options = BundleOptions(
            model=model, name=name, version=version, output_dir=output_dir, quantize=edge.quantize, static=static,
            ort=edge.ort, sample=cfg.resolve(cfg.sample), labels=cfg.check.labels,
            max_accuracy_drop=edge.max_accuracy_drop, signing_key=cfg.resolve(edge.signing_key),
            allow_missing=cfg.missing_values == "allow",
        )
        return cls(options=options, reference=cfg.resolve(cfg.monitoring.reference), store=cfg.resolve(cfg.store))


class BundleBuild(BaseModel):
    """The written bundle and the versions store it was recorded in."""

    bundle: BundleResult
    store: Path


def build_edge_bundle(request: BundleRequest) -> BundleBuild:
    """Write NAME-VERSION.mlbundle (quantized, signed as asked), then record the build."""
    from mlship.bundles.write import build_bundle
    from mlship.drift.profile import is_profile_file
    from mlship.versions import BuildRecord, VersionStore

    options = request.options
    if request.reference and is_profile_file(request.reference):
        options = options.model_copy(update={"profile": request.reference})
    result = build_bundle(options)
    store = VersionStore(request.store)
    store.append(BuildRecord(name=options.name, version=options.version, kind="bundle",
                             model_sha256=result.model_sha256, artifact=f"sha256:{result.sha256}", tag=result.path,
                             size_bytes=result.size_bytes, builder="mlship"))
    return BundleBuild(bundle=result, store=store.path)
