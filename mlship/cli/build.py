"""`mlship build`, `mlship push` and `mlship versions`."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from mlship.cli._common import config_for, state

versions_app = typer.Typer(help="Builds and pushes recorded in the versions store.", no_args_is_help=True)


def build(
    ctx: typer.Context,
    model: Optional[Path] = typer.Argument(None, help="The ONNX model [default: `model` in mlship.yaml]."),
    image: bool = typer.Option(False, "--image", help="Build a serving container image (--builder docker or oci)."),
    edge: bool = typer.Option(False, "--edge", help="Build an edge bundle (NAME-VERSION.mlbundle)."),
    quantize: Optional[str] = typer.Option(None, "--quantize", help="int8: quantize the bundle's model [build.edge.quantize]."),
    static: bool = typer.Option(False, "--static", help="Static int8 quantization, calibrated on the sample."),
    ort_format: bool = typer.Option(False, "--ort", help="Ship the model in ORT format."),
    max_accuracy_drop: Optional[float] = typer.Option(None, "--max-accuracy-drop", help="Fail past this accuracy drop [0.01]."),
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
) -> None:
    """Build an artifact for the model: --image (a serving container image) or --edge (a bundle)."""
    from mlship.images.docker import ImageOptions
    from mlship.versions import VersionStore
    from mlship.errors import UsageError
    from mlship.model.load import default_model_name

    if image == edge:
        raise UsageError("say what to build", hint="Pass --image or --edge")
    cfg = config_for(ctx, {"build.image.base": base, "build.image.platform": platform, "build.image.builder": builder,
                           "build.image.template": str(template) if template else None,
                           "build.edge.quantize": quantize, "build.edge.ort": ort_format or None,
                           "build.edge.max_accuracy_drop": max_accuracy_drop,
                           "build.edge.signing_key": str(signing_key) if signing_key else None})
    model_path = model or cfg.resolve(cfg.model)
    if model_path is None:
        raise UsageError("no model given", hint="Pass MODEL.onnx or set `model:` in mlship.yaml")
    store = VersionStore(cfg.resolve(cfg.store))
    model_name = name or cfg.name or default_model_name(model_path)
    version = model_version or cfg.version or store.next_version(model_name)
    if edge:
        from mlship.cli.build_view import build_edge

        return build_edge(ctx, cfg, model_path, model_name, version, static, output_dir, store)
    repository = cfg.build.image.repository or f"mlship/{model_name}"
    options = ImageOptions(model=model_path, name=model_name, version=version, base=cfg.build.image.base,
                           tag=tag or cfg.build.image.tag or f"{repository}:{version}",
                           platform=cfg.build.image.platform, python=cfg.build.image.python,
                           template=cfg.resolve(cfg.build.image.template), no_cache=no_cache,
                           output=output, push=push_to, missing_values=cfg.missing_values)
    from mlship.cli.build_view import build_image

    build_image(ctx, cfg.build.image.builder, options, store)


keys_app = typer.Typer(help="Signing keys for edge bundles.", no_args_is_help=True)


@keys_app.command("generate")
def keys_generate(
    ctx: typer.Context,
    directory: Path = typer.Option(Path("."), "--dir", help="Where to write NAME.key and NAME.pub."),
    name: str = typer.Option("mlship", "--name", help="File name of the pair."),
) -> None:
    """Make an Ed25519 key pair: NAME.key (keep it secret) and NAME.pub (for devices)."""
    from mlship.bundles.signing import generate_keys

    private, public = generate_keys(directory, name)
    state(ctx).console.result({"private_key": str(private), "public_key": str(public)},
                              lambda out: out.print(f"wrote {private} (secret, mode 0600) and {public}", markup=False))


def push(
    ctx: typer.Context,
    what: Optional[str] = typer.Argument(None, help="An artifact file or directory; with --image, NAME[:VERSION] or a local image."),
    to: Optional[List[str]] = typer.Option(None, "--to", help="Target: a name from `targets:`, s3://…, file://…; registry://… with --image (repeatable)."),
    to_all: bool = typer.Option(False, "--to-all", help="Every target in mlship.yaml (hybrid)."),
    image: bool = typer.Option(False, "--image", help="Push a container image to a registry or ECR."),
    name: Optional[str] = typer.Option(None, "--name", help="Artifact name [name in mlship.yaml]."),
    version: Optional[str] = typer.Option(None, "--artifact-version", help="Artifact version [version in mlship.yaml]."),
    dry_run: bool = typer.Option(False, "--dry-run", help="List what would be uploaded, upload nothing."),
) -> None:
    """Push an artifact to one or more targets (cloud, on-prem, both), or an image to a registry.

    Exit 7 when any target fails; the table says which succeeded.
    """
    from mlship.cli.build_view import push_artifact, push_image
    from mlship.errors import UsageError

    cfg = config_for(ctx)
    targets = list(to or []) + (list(cfg.targets) if to_all else [])
    if not targets:
        raise UsageError("no target given", hint="Pass --to TARGET (repeatable) or --to-all")
    if image:
        if len(targets) != 1:
            raise UsageError("--image pushes to one registry at a time")
        return push_image(ctx, cfg, what, targets[0])
    push_artifact(ctx, cfg, what, targets, name, version, dry_run)


def promote(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Artifact name."),
    version: str = typer.Argument(..., help="A pushed version."),
    channel: str = typer.Option(..., "--channel", help="Channel to point at it, e.g. stable, canary."),
    to: str = typer.Option(..., "--to", help="Target: a name from `targets:`, s3://…, file://…"),
) -> None:
    """Move a channel pointer (NAME/channels/CHANNEL.json) to VERSION, atomically."""
    from mlship.names import check_name
    from mlship.targets.artifacts import promote as promote_version
    from mlship.targets.base import open_target

    check_name(name, "name")  # before anything is opened: they become keys in the target
    check_name(version, "version")
    check_name(channel, "--channel")
    cfg = config_for(ctx)
    pointer = promote_version(open_target(to, cfg.targets), name, version, channel)
    state(ctx).console.result(pointer, lambda out: out.print(f"{name}@{channel} -> {version} in {to}", markup=False))


def pull(
    ctx: typer.Context,
    ref: str = typer.Argument(..., help="NAME, NAME:VERSION or NAME@CHANNEL."),
    source: str = typer.Option(..., "--from", help="Target: a name from `targets:`, s3://…, file://…"),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Directory to create [NAME-VERSION]."),
) -> None:
    """Download a version and verify every sha256 (a mismatch exits 3, leaving nothing)."""
    from mlship.targets.artifacts import pull as pull_version
    from mlship.targets.base import open_target
    from mlship.targets.documents import parse_ref

    parse_ref(ref)  # a bad name, version or channel is refused before the target is opened
    cfg = config_for(ctx)
    dest = pull_version(open_target(source, cfg.targets), ref, output)
    state(ctx).console.result({"output": str(dest)}, lambda out: out.print(f"pulled {ref} into {dest}", markup=False))


targets_app = typer.Typer(help="Where artifacts go.", no_args_is_help=True)


@targets_app.command("list")
def targets_list(ctx: typer.Context) -> None:
    """The kinds of target (by scheme) and the targets named in mlship.yaml."""
    from mlship.targets.base import target_kinds

    cfg = config_for(ctx)
    kinds = sorted(set(target_kinds()) | {"registry"})
    named = {n: {"type": t.type, "url": t.url} for n, t in cfg.targets.items()}

    def render(out) -> None:
        out.print("schemes: " + ", ".join(f"{k}://" for k in kinds))
        for n, t in named.items():
            out.print(f"  {n}: {t['type']} {t['url']}", markup=False)

    state(ctx).console.result({"schemes": kinds, "targets": named}, render)


@versions_app.command("list")
def versions_list(ctx: typer.Context, name: Optional[str] = typer.Argument(None, help="Only this model.")) -> None:
    """Every recorded build, oldest first."""
    from rich.table import Table

    from mlship.versions import VersionStore
    from mlship.console import plain

    cfg = config_for(ctx)
    rows = VersionStore(cfg.resolve(cfg.store)).versions(name)

    def render(out) -> None:
        table = Table(show_edge=False)
        for col in ("name", "version", "kind", "artifact", "model sha256", "created", "pushed"):
            table.add_column(col)
        for r in rows:
            table.add_row(*(plain(v) for v in (r["name"], r["version"], r["kind"], r["artifact"][:19],
                                                r["model_sha256"][:12], r["created"],
                                                ", ".join(p["reference"] for p in r["pushed"]))))
        out.print(table)

    state(ctx).console.result({"versions": rows}, render)


@versions_app.command("show")
def versions_show(ctx: typer.Context, ref: str = typer.Argument(..., help="NAME[:VERSION] (latest when no version).")) -> None:
    """One build with its pushes."""
    import json

    from mlship.versions import VersionStore
    from mlship.errors import UsageError

    cfg = config_for(ctx)
    name, _, version = ref.partition(":")
    record = VersionStore(cfg.resolve(cfg.store)).find(name, version or None)
    if record is None:
        raise UsageError(f"no recorded build of {ref}", hint="See `mlship versions list`")
    state(ctx).console.result(record, lambda out: out.print(json.dumps(record, indent=2), markup=False))
