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
    force: bool = False  # replace a local build of this version made from other inputs (never a pushed one)

    @classmethod
    def from_config(cls, cfg: Any, model: Path, name: str, version: str, *, output_dir: Path,
                    static: bool = False, force: bool = False) -> "BundleRequest":
        """The bundle mlship.yaml (`build.edge`, `sample`, `check.labels`, `monitoring.reference`) asks for."""
        edge = cfg.build.edge
        options = BundleOptions(
            model=model, name=name, version=version, output_dir=output_dir, quantize=edge.quantize, static=static,
            ort=edge.ort, sample=cfg.resolve(cfg.sample), labels=cfg.check.labels,
            max_accuracy_drop=edge.max_accuracy_drop, max_metric_drop=edge.max_metric_drop, signing_key=cfg.resolve(edge.signing_key),
            allow_missing=cfg.missing_values == "allow", features=cfg.declared_features(),
        )
        return cls(options=options, reference=cfg.resolve(cfg.monitoring.reference), store=cfg.resolve(cfg.store),
                   force=force)


class BundleBuild(BaseModel):
    """The written bundle, the versions store it was recorded in, and whether this run
    changed nothing (the same inputs were already built into the same file)."""

    bundle: BundleResult
    store: Path
    unchanged: bool = False


def build_edge_bundle(request: BundleRequest) -> BundleBuild:
    """Write NAME-VERSION.mlbundle (quantized, signed as asked), then record the build.

    Versions are immutable: other inputs under a recorded version are refused before any
    work, the same inputs with the bundle still in place change nothing, and an existing
    file with other bytes is never overwritten (unless `force`)."""
    from mlship.drift.profile import is_profile_file
    from mlship.model.load import sha256_file
    from mlship.names import check_name
    from mlship.versions import BuildRecord, VersionStore

    options = request.options
    check_name(options.name, "name")  # they name the output file: checked before any directory is made
    check_name(options.version, "version")
    _check_gate_inputs(options)
    if request.reference and is_profile_file(request.reference):
        options = options.model_copy(update={"profile": request.reference})
    store = VersionStore(request.store)
    model_sha256 = sha256_file(options.model) if options.model.is_file() else ""
    inputs = bundle_inputs(options)
    known = store.recorded_build(options.name, options.version, "bundle", inputs, model_sha256, force=request.force)
    out = options.output_dir / f"{options.name}-{options.version}.mlbundle"
    if known and known.get("result") and out.is_file() and f"sha256:{sha256_file(out)}" == known["artifact"]:
        recorded = BundleResult(**known["result"])
        _regate(options, recorded)
        return BundleBuild(bundle=recorded, store=store.path, unchanged=True)
    result = _write_beside(options, out, force=request.force)
    store.record(BuildRecord(name=options.name, version=options.version, kind="bundle",
                             model_sha256=result.model_sha256, artifact=f"sha256:{result.sha256}", tag=result.path,
                             inputs_sha256=inputs, size_bytes=result.size_bytes, builder="mlship",
                             result=result.model_dump(mode="json")), force=request.force)
    return BundleBuild(bundle=result, store=store.path)


def _check_gate_inputs(options: BundleOptions) -> None:
    """A --max-metric-drop that could never be judged is a usage error, not a silent pass."""
    from mlship.errors import UsageError

    if not options.max_metric_drop:
        return
    if not options.quantize:
        raise UsageError("--max-metric-drop (build.edge.max_metric_drop) compares int8 with fp32, and this build "
                         "does not quantize", hint="Add --quantize int8, or drop the bound")
    if not options.sample:
        raise UsageError("--max-metric-drop (build.edge.max_metric_drop) judges int8 on the sample, and none is set",
                         hint="Set `sample:` in mlship.yaml")


def _regate(options: BundleOptions, recorded: BundleResult) -> None:
    """An unchanged bundle is judged again with this run's bounds: they are no input of the bytes,
    so a stricter --max-metric-drop than the first build's must still fail (exit 4)."""
    from mlship.bundles.write import gate_quantization

    quantization = recorded.manifest.get("quantization") or {}
    if quantization.get("applied") and "metric_drop" in quantization:
        gate_quantization(options, quantization)


def bundle_inputs(options: BundleOptions) -> str:
    """The digest of what shapes the bundle's bytes (not where it is written, nor the accuracy
    gate's bound and labels, which pass or stop a build but never change it)."""
    from mlship.versions import inputs_digest

    gate = {"max_accuracy_drop", "max_metric_drop", "labels"}
    exclude: dict[str, Any] = {k: True for k in ("output_dir", "name", "version", *gate)}
    exclude["features"] = {"source"}  # where the names were declared is no input
    return inputs_digest(options.model_dump(exclude=exclude) | {
        "model": options.model, "sample": options.sample, "signing_key": options.signing_key,
        "profile": options.profile})


def _write_beside(options: BundleOptions, out: Path, *, force: bool) -> BundleResult:
    """Build into a hidden directory beside `out`, then put it in place, unless `out` holds
    other bytes (a bundle built elsewhere, or before the versions store knew it)."""
    import shutil
    import tempfile

    from mlship.bundles.write import build_bundle
    from mlship.model.load import sha256_file
    from mlship.versions import BUMP_HINT, VersionExistsError

    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".mlship-bundle-", dir=out.parent))
    try:
        result = build_bundle(options.model_copy(update={"output_dir": staging}))
        if out.exists() and not force and sha256_file(out) != result.sha256:
            raise VersionExistsError(f"{out} exists with other content; not overwritten",
                                     hint=f"{BUMP_HINT}, remove it, or pass --force")
        Path(result.path).replace(out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return result.model_copy(update={"path": str(out)})
