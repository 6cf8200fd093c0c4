"""`mlship build`: a serving image (--image) or an edge bundle (--edge)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, List, Optional

import typer

from mlship.cli._common import config_for, parse_limits, state

if TYPE_CHECKING:
    from mlship.bundles.write import BundleResult
    from mlship.images.service import BuildRequest, BuildResult


def build(
    ctx: typer.Context,
    model: Optional[Path] = typer.Argument(None, help="The ONNX model [default: `model` in mlship.yaml]."),
    image: bool = typer.Option(False, "--image", help="Build a serving container image (--builder docker or oci)."),
    edge: bool = typer.Option(False, "--edge", help="Build an edge bundle (NAME-VERSION.mlbundle)."),
    quantize: Optional[str] = typer.Option(None, "--quantize", help="int8: quantize the bundle's model [build.edge.quantize]."),
    static: bool = typer.Option(False, "--static", help="Static int8 quantization, calibrated on the sample."),
    ort_format: bool = typer.Option(False, "--ort", help="Ship the model in ORT format."),
    max_accuracy_drop: Optional[float] = typer.Option(None, "--max-accuracy-drop", help="Fail past this accuracy drop [0.01]."),
    max_metric_drop: Optional[List[str]] = typer.Option(
        None, "--max-metric-drop",
        help="int8: how much worse than fp32 a metric may be on the sample, e.g. rmse=0.05 or mae=0.02 (repeatable) [build.edge.max_metric_drop]."),
    signing_key: Optional[Path] = typer.Option(None, "--signing-key", help="Ed25519 private key (mlship keys generate)."),
    output_dir: Path = typer.Option(Path("."), "--output-dir", help="Where the bundle goes."),
    tag: Optional[str] = typer.Option(None, "--tag", "-t", help="Image tag [REPOSITORY:VERSION]."),
    base: Optional[str] = typer.Option(None, "--base", help="Base image with Python [build.image.base]."),
    platform: Optional[str] = typer.Option(None, "--platform", help="linux/amd64 or linux/arm64 [build.image.platform]."),
    template: Optional[Path] = typer.Option(None, "--template", help="Your own Dockerfile template."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Build every layer again."),
    builder: Optional[str] = typer.Option(None, "--builder", help="docker (engine) or oci (daemonless, reproducible) [build.image.builder]."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="oci: write an OCI layout DIR, or FILE.tar for docker load."),
    push_to: Optional[str] = typer.Option(None, "--push", help="oci: push to registry://HOST[:PORT]/REPO[:TAG] (or ecr://…)."),
    name: Optional[str] = typer.Option(None, "--name", help="Model name [name in mlship.yaml]."),
    model_version: Optional[str] = typer.Option(None, "--model-version", help="Version [version in mlship.yaml, or the next one]."),
    force: bool = typer.Option(False, "--force", help="Replace a local build of this version made from other inputs (never a pushed one)."),
) -> None:
    """Build an artifact for the model: --image (a serving container image) or --edge (a bundle)."""
    from mlship.errors import UsageError
    from mlship.model.load import default_model_name
    from mlship.versions import VersionStore

    if image == edge:
        raise UsageError("say what to build", hint="Pass --image or --edge")
    cfg = config_for(ctx, {"build.image.base": base, "build.image.platform": platform, "build.image.builder": builder,
                           "build.image.template": str(template) if template else None,
                           "build.edge.quantize": quantize, "build.edge.ort": ort_format or None,
                           "build.edge.max_accuracy_drop": max_accuracy_drop,
                           "build.edge.signing_key": str(signing_key) if signing_key else None})
    cfg.build.edge.max_metric_drop = {**cfg.build.edge.max_metric_drop,
                                      **parse_limits(max_metric_drop, "--max-metric-drop")}
    model_path = model or cfg.resolve(cfg.model)
    if model_path is None:
        raise UsageError("no model given", hint="Pass MODEL.onnx or set `model:` in mlship.yaml")
    store = cfg.resolve(cfg.store)
    model_name = name or cfg.name or default_model_name(model_path)
    version = model_version or cfg.version or VersionStore(store).next_version(model_name)
    if edge:
        return _build_edge(ctx, cfg, model_path, model_name, version, static, output_dir, force)
    from mlship.images.docker import ImageOptions
    from mlship.images.service import BuildRequest

    repository = cfg.build.image.repository or f"mlship/{model_name}"
    options = ImageOptions(model=model_path, name=model_name, version=version, base=cfg.build.image.base,
                           tag=tag or cfg.build.image.tag or f"{repository}:{version}",
                           platform=cfg.build.image.platform, python=cfg.build.image.python,
                           template=cfg.resolve(cfg.build.image.template), no_cache=no_cache,
                           output=output, push=push_to, missing_values=cfg.missing_values,
                           features=cfg.for_model(model_path)[0].features)
    _build_image(ctx, BuildRequest(options=options, builder=cfg.build.image.builder, store=store, force=force))


def _build_image(ctx: typer.Context, request: "BuildRequest") -> None:
    from mlship.cli.progress import RowProgress
    from mlship.images.service import build_image

    console = state(ctx).console
    if request.builder == "docker":  # the engine streams log lines: the last one is the status
        with console.status(f"building {request.options.tag}") as status:
            built = build_image(request, (lambda line: status.update(line[:100])) if status else console.debug)
    else:  # the daemonless builder reports the bytes it pushes
        with RowProgress(console, f"pushing to {request.options.push}", unit="bytes") as bar:
            built = build_image(request, console.debug, bar)
    console.result(built.image.model_dump(mode="json") | {"unchanged": built.unchanged},
                   lambda out: _render_image(out, built))


def _render_image(out: Any, built: "BuildResult") -> None:
    result = built.image
    if built.unchanged:
        out.print(f"unchanged: {result.name} {result.version} is already built from these inputs as {result.tag} "
                  f"({result.image_id[:19]}); recorded in {built.store}", markup=False)
        return
    out.print(f"built {result.tag} ({result.image_id[:19]}, {result.size_bytes / 1e6:.0f} MB, {len(result.layers)} "
              f"layers, {result.builder}) in {result.seconds:.1f} s; recorded as {result.name} {result.version} "
              f"in {built.store}", markup=False)
    if result.output:
        out.print(f"wrote {result.output}", markup=False)
    if result.pushed:
        p = result.pushed
        out.print(f"pushed {p['reference']}@{p['digest']}: uploaded {p['uploaded']} blobs "
                  f"({p['uploaded_bytes'] / 1e6:.1f} MB), {p['present']} already there, {p['mounted']} mounted", markup=False)


def _build_edge(ctx: typer.Context, cfg, model_path: Path, name: str, version: str, static: bool,
                output_dir: Path, force: bool) -> None:
    from mlship.bundles.service import BundleRequest, build_edge_bundle

    request = BundleRequest.from_config(cfg, model_path, name, version, output_dir=output_dir, static=static,
                                        force=force)
    console = state(ctx).console
    with console.status("building the bundle"):
        built = build_edge_bundle(request)
    result = built.bundle
    q = result.manifest.get("quantization")
    if q and not q["applied"] and not built.unchanged:
        console.warn(f"int8 not applied to {model_path}: {q['reason']}")
    console.result(result.model_dump(mode="json") | {"unchanged": built.unchanged},
                   lambda out: _render_bundle(out, result, signed=bool(request.options.signing_key),
                                              unchanged=built.unchanged))


def _render_bundle(out: Any, result: "BundleResult", *, signed: bool, unchanged: bool) -> None:
    verb = "unchanged (already built from these inputs):" if unchanged else "built"
    out.print(f"{verb} {result.path} ({result.size_bytes / 1e3:.0f} kB, {'signed' if signed else 'unsigned'}, "
              f"sha256 {result.sha256[:12]})", markup=False)
    q = result.manifest.get("quantization")
    if q and q.get("applied"):
        line = f"int8 ({q['mode']}): {q['size_fp32']:,} -> {q['size']:,} bytes ({q['size_reduction']:.0%} smaller)"
        if "label_agreement" in q:
            line += f", label agreement {q['label_agreement']:.2%}"
        if "accuracy_fp32" in q:
            line += f", accuracy {q['accuracy_fp32']:.4f} -> {q['accuracy']:.4f}"
        if q.get("task") == "regression":
            against = "on the labels" if q["truth"] == "labels" else "against fp32"
            line += f", {against}: " + ", ".join(f"{k} {q['metrics_fp32'][k]:.4g} -> {v:.4g}"
                                                 for k, v in q["metrics"].items())
        out.print(line, markup=False)
