"""The work behind `mlship build` and `mlship push`, kept out of mlship/cli/build.py so
that `mlship --help` does not compile it."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from mlship.cli._common import state


def build_image(ctx: typer.Context, builder_name: str, options, store) -> None:
    from mlship.images.builders import image_builder
    from mlship.versions import BuildRecord, PushRecord
    from mlship.cli.progress import RowProgress

    builder = image_builder(builder_name)
    console = state(ctx).console
    if builder.name == "docker":
        with console.status(f"building {options.tag}") as status:
            result = builder.build(options, (lambda line: status.update(line[:100])) if status else console.debug, None)
    else:
        with RowProgress(console, f"pushing to {options.push}", unit="bytes") as bar:
            result = builder.build(options, console.debug, bar)
    store.append(BuildRecord(name=options.name, version=options.version, kind="image",
                             model_sha256=result.model_sha256, artifact=result.image_id, tag=result.tag,
                             size_bytes=result.size_bytes, builder=result.builder,
                             git_commit=result.labels.get("org.opencontainers.image.revision") or None))
    if result.pushed:  # recorded only once the registry accepted the manifest
        store.append(PushRecord(name=options.name, version=options.version, artifact=result.image_id,
                                reference=result.pushed["reference"], digest=result.pushed["digest"]))
    console.result(result.model_dump(mode="json"), lambda out: _render_image(out, result, store))


def _render_image(out, result, store) -> None:
    out.print(f"built {result.tag} ({result.image_id[:19]}, {result.size_bytes / 1e6:.0f} MB, {len(result.layers)} "
              f"layers, {result.builder}) in {result.seconds:.1f} s; recorded as {result.name} {result.version} "
              f"in {store.path}", markup=False)
    if result.output:
        out.print(f"wrote {result.output}", markup=False)
    if result.pushed:
        p = result.pushed
        out.print(f"pushed {p['reference']}@{p['digest']}: uploaded {p['uploaded']} blobs "
                  f"({p['uploaded_bytes'] / 1e6:.1f} MB), {p['present']} already there, {p['mounted']} mounted", markup=False)


def build_edge(ctx: typer.Context, cfg, model_path: Path, name: str, version: str, static: bool,
                output_dir: Path, store) -> None:
    from mlship.bundles.write import BundleOptions, build_bundle
    from mlship.versions import BuildRecord
    from mlship.drift.profile import is_profile_file

    reference = cfg.resolve(cfg.monitoring.reference)
    options = BundleOptions(
        model=model_path, name=name, version=version, output_dir=output_dir, quantize=cfg.build.edge.quantize,
        static=static, ort=cfg.build.edge.ort, sample=cfg.resolve(cfg.sample), labels=cfg.check.labels,
        max_accuracy_drop=cfg.build.edge.max_accuracy_drop, signing_key=cfg.resolve(cfg.build.edge.signing_key),
        profile=reference if reference and is_profile_file(reference) else None,
        allow_missing=cfg.missing_values == "allow",
    )
    console = state(ctx).console
    with console.status("building the bundle"):
        result = build_bundle(options)
    store.append(BuildRecord(name=name, version=version, kind="bundle", model_sha256=result.model_sha256,
                             artifact=f"sha256:{result.sha256}", tag=result.path, size_bytes=result.size_bytes,
                             builder="mlship"))
    q = result.manifest.get("quantization")
    if q and not q["applied"]:
        console.warn(f"int8 not applied to {model_path}: {q['reason']}")

    def render(out) -> None:
        signed = "signed" if options.signing_key else "unsigned"
        out.print(f"built {result.path} ({result.size_bytes / 1e3:.0f} kB, {signed}, sha256 {result.sha256[:12]})",
                  markup=False)
        if q and q.get("applied"):
            line = f"int8 ({q['mode']}): {q['size_fp32']:,} -> {q['size']:,} bytes ({q['size_reduction']:.0%} smaller)"
            if "label_agreement" in q:
                line += f", label agreement {q['label_agreement']:.2%}"
            if "accuracy_fp32" in q:
                line += f", accuracy {q['accuracy_fp32']:.4f} -> {q['accuracy']:.4f}"
            out.print(line, markup=False)

    console.result(result.model_dump(mode="json"), render)


def push_image(ctx: typer.Context, cfg, what: Optional[str], to: str) -> None:
    from mlship.images.docker import engine_client
    from mlship.registry.push import RegistryRef, push_image
    from mlship.versions import PushRecord, VersionStore
    from mlship.errors import UsageError

    store = VersionStore(cfg.resolve(cfg.store))
    target = RegistryRef.parse(to)
    name, _, version = (what or cfg.name or "").partition(":")
    record = store.find(name, version or None, kind="image") if name else None
    if record is None and what is None:
        raise UsageError("nothing to push", hint="Name a built version (NAME[:VERSION]) or a local image")
    if record and record.get("builder") == "oci":
        raise UsageError(f"{record['name']} {record['version']} was built with --builder oci, not on the engine",
                         hint="Push it while building: mlship build --image --builder oci --push registry://…")
    local = record["artifact"] if record else what
    tag = target.tag or (record["version"] if record else "latest")
    console = state(ctx).console
    client = engine_client()
    with console.status(f"pushing to {target.name}:{tag}") as status:
        digest = push_image(client, local, target, tag=tag,
                            log=(lambda line: status.update(line[:100])) if status else console.debug)
    reference = f"{target.name}:{tag}@{digest}"
    if record:
        store.append(PushRecord(name=record["name"], version=record["version"], artifact=record["artifact"],
                                reference=f"{target.name}:{tag}", digest=digest))
    console.result({"reference": reference, "digest": digest, "recorded": bool(record)},
                   lambda out: out.print(f"pushed {reference}", markup=False))


def push_artifact(ctx: typer.Context, cfg, what: Optional[str], targets: list[str], name: Optional[str],
                   version: Optional[str], dry_run: bool) -> None:
    from rich.table import Table

    from mlship.cli.progress import RowProgress
    from mlship.console import plain
    from mlship.errors import ServiceError, UsageError
    from mlship.names import check_name
    from mlship.targets.artifacts import artifact_files, push_artifact
    from mlship.targets.base import open_target

    if what is None:
        raise UsageError("no artifact given", hint="Pass a file or directory to push")
    artifact = Path(what)
    given = name
    name = name if name is not None else cfg.name or artifact.stem
    version = version if version is not None else cfg.version
    if version is None:
        raise UsageError("no version given", hint="Pass --artifact-version or set `version:` in mlship.yaml")
    # They become keys in every target: nothing is opened with a bad one.
    from_stem = given is None and not cfg.name
    check_name(name, "name (from the artifact's file name; pass --name)" if from_stem else "--name")
    check_name(version, "--artifact-version")
    files = artifact_files(artifact)
    opened = [open_target(t, cfg.targets) for t in targets]  # a bad target spec fails before any upload
    console = state(ctx).console
    results = []
    total = sum(p.stat().st_size for p, _ in files)
    for target in opened:
        with RowProgress(console, f"{target.describe()}", unit="bytes") as bar:
            bar.start(total)
            results.append(push_artifact(target, name, version, files, dry_run=dry_run, progress=bar.advance))

    def render(out) -> None:
        table = Table(show_edge=False)
        for col in ("target", "status", "files", "MB", "MB/s", "error"):
            table.add_column(col)
        for r in results:
            rate = f"{r.bytes / 1e6 / r.seconds:.1f}" if r.seconds and r.status == "pushed" else ""
            table.add_row(plain(r.target), r.status, str(r.files), f"{r.bytes / 1e6:.1f}", rate, plain(r.error or ""))
        out.print(table)
        if dry_run:
            for p, rel in files:
                out.print(f"  {name}/{version}/{rel}  {p.stat().st_size:,} bytes", markup=False)

    console.result({"name": name, "version": version, "results": [r.model_dump() for r in results]}, render)
    failed = [r for r in results if r.status == "failed"]
    if failed:
        # A store that failed says 7; when every failure was the input's (a damaged index: 3, other
        # content under the version: 2), the command exits with that code instead.
        from mlship.errors import InvalidInputError

        excs = [r.exception for r in failed]
        kind = next((k for k in (InvalidInputError, UsageError) if all(isinstance(e, k) for e in excs)), ServiceError)
        raise kind(f"push failed for {len(failed)} of {len(results)} targets: {failed[0].error}")
