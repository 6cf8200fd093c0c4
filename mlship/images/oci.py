"""`mlship build --image --builder oci`: the serving image without a Docker engine.

The base image's layers are kept as they are; three layers are appended
(dependencies, model, config), then the image config and an OCI manifest are
written. The same inputs give the same manifest digest (see layers.py for the
rules). Output: an OCI image layout, a tarball that `docker load` (and
`skopeo … oci-archive:`) accepts, and/or a push through the distribution API.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from mlship.images.deps import PythonInfo, dependencies_layer
from mlship.images.docker import ImageOptions, ImageResult, image_labels, serving_config
from mlship.images.layers import Blob, Entry, source_date_epoch, write_layer
from mlship.images.oci_base import BaseImage, open_base
from mlship.errors import ServiceError, UsageError
from mlship.progress import NoProgress

MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"
CONFIG_TYPE = "application/vnd.oci.image.config.v1+json"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# The same runtime settings as templates/Dockerfile.
ENTRYPOINT = ["/opt/mlship/bin/mlship", "serve", "/opt/model"]
ENV = {"PATH": "/opt/mlship/bin:{PATH}", "PYTHONUNBUFFERED": "1", "MLSHIP_SERVE_HOST": "0.0.0.0",
       "MLSHIP_SERVE_PORT": "8080"}
HEALTHCHECK = {
    "Test": ["CMD", "/opt/mlship/bin/python", "-c", "import os, urllib.request; urllib.request.urlopen("
             "'http://127.0.0.1:%s/v2/health/ready' % os.environ.get('MLSHIP_SERVE_PORT', '8080'), timeout=2)"],
    "Interval": 10_000_000_000, "Timeout": 3_000_000_000, "StartPeriod": 15_000_000_000, "Retries": 3}
SECONDS = 1_000_000_000


@dataclass
class OciImage:
    """A finished image: its layers, config blob and manifest (bytes and digest)."""

    base: BaseImage
    layers: list[Blob]
    config: Blob
    manifest: bytes
    digest: str

    def blobs(self) -> list[Blob]:
        return [*self.layers, self.config]

    def local(self, blob: Blob) -> Path:
        return blob.path or self.base.fetch(blob)


@dataclass
class PushStats:
    reference: str
    digest: str
    present: int = 0
    mounted: int = 0
    uploaded: int = 0
    uploaded_bytes: int = 0
    uploaded_digests: list[str] = field(default_factory=list)


def build_oci_image(options: ImageOptions, log: Callable[[str], None] = lambda line: None,
                    progress: Any = None) -> ImageResult:
    """Check the model, append the three layers to the base, then write --output and/or --push."""
    from mlship.model.load import load_model
    from mlship.model.validate import run_checker

    started = time.perf_counter()
    if options.template is not None:
        raise UsageError("--template is a Dockerfile: it needs --builder docker")
    model = load_model(options.model)
    run_checker(model)
    base = open_base(options.base, options.platform, log)
    deps = dependencies_layer(platform=options.platform, python=python_of(base.config, options.python), log=log)
    created = _created()
    labels = image_labels(options, model.sha256, created=created)
    with tempfile.TemporaryDirectory(prefix="mlship-oci-") as tmp:
        work = Path(tmp)
        layers = [deps, write_layer([Entry("opt/model/model.onnx", data=model.single_file())],
                                    work / "model.tar.gz"),
                  write_layer([Entry("opt/model/mlship.yaml", data=serving_config(options).encode())],
                              work / "config.tar.gz")]
        image = assemble(base, layers, labels, options.platform, created, work)
        if options.output is not None:
            log(f"writing {options.output}")
            write_output(image, options.output, options.tag)
        pushed = (push_oci(image, options.push, tag=options.version, log=log, progress=progress or NoProgress())
                  if options.push else None)
    return ImageResult(name=options.name, version=options.version, tag=options.tag, image_id=image.digest,
                       model_sha256=model.sha256, size_bytes=sum(b.size for b in image.blobs()),
                       layers=[b.diff_id for b in image.layers], seconds=round(time.perf_counter() - started, 2),
                       labels=labels, builder="oci", digest=image.digest,
                       output=str(options.output) if options.output else None,
                       pushed=pushed.__dict__ if pushed else None)


def python_of(config: dict, version: str) -> PythonInfo:
    """The base's Python: official python images say PYTHON_VERSION and live in /usr/local/bin."""
    env = dict(e.split("=", 1) for e in (config.get("config") or {}).get("Env") or [] if "=" in e)
    if "PYTHON_VERSION" in env:
        return PythonInfo("/usr/local/bin", env["PYTHON_VERSION"])
    return PythonInfo("/usr/bin", version)


def _created() -> str:
    return datetime.fromtimestamp(source_date_epoch(), timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def assemble(base: BaseImage, layers: list[Blob], labels: dict[str, str], platform: str, created: str,
             work: Path) -> OciImage:
    """Write the image config and manifest for base + layers."""
    config = image_config(base.config, layers, labels, platform, created)
    config_blob = _write_blob(work, canonical(config), CONFIG_TYPE)
    all_layers = [*base.layers, *layers]
    manifest = canonical({"schemaVersion": 2, "mediaType": MANIFEST_TYPE, "config": config_blob.descriptor(),
                          "layers": [b.descriptor() for b in all_layers]})
    return OciImage(base, all_layers, config_blob, manifest, _digest(manifest))


def image_config(base: dict, layers: list[Blob], labels: dict[str, str], platform: str, created: str) -> dict:
    os_name, arch, *variant = platform.split("/")
    inner = dict(base.get("config") or {})
    env = [e for e in inner.get("Env") or [] if e.split("=", 1)[0] not in ENV]
    path = next((e.split("=", 1)[1] for e in inner.get("Env") or [] if e.startswith("PATH=")), DEFAULT_PATH)
    inner.update(Env=env + [f"{k}={v.format(PATH=path)}" for k, v in ENV.items()], Entrypoint=ENTRYPOINT,
                 Cmd=None, User="10001:10001", ExposedPorts={**(inner.get("ExposedPorts") or {}), "8080/tcp": {}},
                 Labels={**(inner.get("Labels") or {}), **labels}, Healthcheck=HEALTHCHECK)
    inner = {k: v for k, v in inner.items() if v is not None}
    history = list(base.get("history") or []) + [
        {"created": created, "created_by": f"mlship build --image --builder oci: {what}", "comment": "mlship"}
        for what in ("dependencies (/opt/mlship)", "model (/opt/model/model.onnx)", "config (/opt/model/mlship.yaml)")]
    config = {"created": created, "architecture": arch, "os": os_name, "config": inner,
              "rootfs": {"type": "layers",
                         "diff_ids": list(base.get("rootfs", {}).get("diff_ids", [])) + [b.diff_id for b in layers]},
              "history": history}
    if variant:
        config["variant"] = variant[0]
    return config


def canonical(data: dict) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _digest(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


def _write_blob(work: Path, data: bytes, media_type: str) -> Blob:
    digest = _digest(data)
    path = work / digest.split(":")[1]
    path.write_bytes(data)
    return Blob(digest=digest, size=len(data), media_type=media_type, path=path)


# ------------------------------------------------------------------ outputs


def write_output(image: OciImage, dest: Path, tag: str) -> None:
    """An OCI layout directory, or (for NAME.tar) a tarball for `docker load`, renamed into place when complete."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(f".{dest.name}.{os.getpid()}.partial")
    try:
        if dest.suffix == ".tar":
            _write_archive(image, partial, tag)
        else:
            _write_layout(image, partial, tag)
        _replace(partial, dest)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True) if partial.is_dir() else partial.unlink(missing_ok=True)
        raise


def _layout_files(image: OciImage, tag: str) -> dict[str, bytes | Path]:
    """Relative path -> bytes or a local file, for an OCI layout that is also a docker-archive."""
    descriptor = {"mediaType": MANIFEST_TYPE, "digest": image.digest, "size": len(image.manifest),
                  "annotations": {"io.containerd.image.name": tag, "org.opencontainers.image.ref.name": tag}}
    files: dict[str, bytes | Path] = {
        "oci-layout": b'{"imageLayoutVersion":"1.0.0"}',
        "index.json": canonical({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                                 "manifests": [descriptor]}),
        f"blobs/sha256/{image.digest.split(':')[1]}": image.manifest,
        "manifest.json": json.dumps([{"Config": _blob_name(image.config), "RepoTags": [tag],
                                      "Layers": [_blob_name(b) for b in image.layers]}]).encode()}
    for blob in image.blobs():
        files[_blob_name(blob)] = image.local(blob)
    return files


def _blob_name(blob: Blob) -> str:
    return f"blobs/sha256/{blob.digest.split(':')[1]}"


def _write_layout(image: OciImage, directory: Path, tag: str) -> None:
    for name, content in _layout_files(image, tag).items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
            continue
        try:
            os.link(content, path)
        except OSError:
            shutil.copyfile(content, path)


def _write_archive(image: OciImage, path: Path, tag: str) -> None:
    mtime = source_date_epoch()
    with open(path, "wb") as fh:
        with tarfile.open(fileobj=fh, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for name, content in sorted(_layout_files(image, tag).items()):
                info = tarfile.TarInfo(name)
                info.mtime, info.mode, info.uname, info.gname = mtime, 0o644, "", ""
                if isinstance(content, bytes):
                    info.size = len(content)
                    tar.addfile(info, io.BytesIO(content))
                else:
                    info.size = content.stat().st_size
                    with open(content, "rb") as blob:
                        tar.addfile(info, blob)
        fh.flush()
        os.fsync(fh.fileno())


def _replace(partial: Path, dest: Path) -> None:
    if dest.is_dir() and partial.is_dir():
        old = dest.with_name(f".{dest.name}.{os.getpid()}.old")
        os.replace(dest, old)
        os.replace(partial, dest)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(partial, dest)


# ------------------------------------------------------------------ push


def push_oci(image: OciImage, url: str, *, tag: str | None = None, attempts: int = 4, backoff_s: float = 1.0,
             log: Callable[[str], None] = lambda line: None, progress: Any = NoProgress()) -> PushStats:
    """Push every missing blob (mounting from the base's repository when the registry is the same), then
    PUT the manifest last. Lost connections and 5xx answers are retried; blobs already sent are kept."""
    from mlship.images.oci_base import registry_for
    from mlship.registry.push import RegistryRef
    from mlship.registry.client import RegistryUnavailable

    target = RegistryRef.parse(url)
    tag = target.tag or tag or "latest"
    registry = registry_for(target.host, target.ecr)
    last = ""
    for attempt in range(attempts):
        try:
            return _push_once(image, registry, target.repository, tag, log, progress)
        except RegistryUnavailable as exc:
            last = exc.message
            if attempt + 1 < attempts:
                log(f"push failed ({last}); retrying in {backoff_s * 2 ** attempt:.0f} s")
                time.sleep(backoff_s * 2 ** attempt)
    raise ServiceError(f"push to {target.name}:{tag} failed after {attempts} attempts: {last}",
                       hint="Check that the registry is reachable; nothing was tagged there")


def _push_once(image: OciImage, registry: Any, repository: str, tag: str, log: Callable[[str], None],
               progress: Any) -> PushStats:
    stats = PushStats(reference=f"{registry.host}/{repository}:{tag}", digest=image.digest)
    missing = []
    for blob in image.blobs():
        if registry.has_blob(repository, blob.digest):
            stats.present += 1
        else:
            missing.append(blob)
    progress.start(sum(b.size for b in missing))
    base = image.base
    for blob in missing:
        location = None
        if base.registry is not None and base.registry.host == registry.host and blob in base.layers:
            location = registry.mount_blob(repository, blob.digest, base.repository)
            if location is None:
                stats.mounted += 1
                progress.advance(blob.size)
                continue
        log(f"uploading {blob.digest[:19]} ({blob.size / 1e6:.1f} MB)")
        registry.upload_blob(repository, blob.digest, image.local(blob), blob.size, progress.advance, location)
        stats.uploaded += 1
        stats.uploaded_bytes += blob.size
        stats.uploaded_digests.append(blob.digest)
    digest = registry.put_manifest(repository, tag, image.manifest, MANIFEST_TYPE)
    if digest != image.digest:
        raise ServiceError(f"registry {registry.host} stored the manifest as {digest}, expected {image.digest}")
    return stats
