"""Base images for the daemonless builder: from a registry, an OCI layout or a `docker save` tarball.

References:
  registry://HOST[:PORT]/REPO[:TAG|@DIGEST], ecr://…, or HOST[:PORT]/REPO[:TAG]
  oci:DIR[:TAG]                an OCI image layout
  docker-archive:FILE.tar      what `docker save` writes
  NAME[:TAG]                   Docker Hub (library/NAME)
"""

from __future__ import annotations

import hashlib
import json
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from mlship.images.layers import Blob
from mlship.registry.client import INDEX_TYPES, Registry, docker_credentials
from mlship.errors import InvalidInputError, ServiceError

OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
# Docker's media types for the same bytes, written the OCI way in our manifests.
OCI_TYPES = {"application/vnd.docker.image.rootfs.diff.tar.gzip": OCI_LAYER + "+gzip",
             "application/vnd.docker.image.rootfs.diff.tar": OCI_LAYER,
             "application/vnd.docker.container.image.v1+json": "application/vnd.oci.image.config.v1+json"}


@dataclass
class BaseImage:
    """A base's config and layers; `fetch` gives a local file for any of its layers."""

    ref: str
    config: dict
    layers: list[Blob]
    fetch: Callable[[Blob], Path]
    registry: Registry | None = None  # where the layers live, for cross-repository mounts
    repository: str | None = None


def blob_cache() -> Path:
    path = Path(os.environ.get("MLSHIP_BLOB_CACHE", Path.home() / ".cache" / "mlship" / "blobs")) / "sha256"
    path.mkdir(parents=True, exist_ok=True)
    return path


def registry_for(host: str, ecr: bool = False) -> Registry:
    """A client for `host` with Docker's credentials, or ECR's through boto3."""
    if ecr:
        from mlship.registry.push import EcrAuth

        auth = EcrAuth(host)
        return Registry(host, credentials=lambda: (auth.get()["username"], auth.get()["password"]))
    lookup = "https://index.docker.io/v1/" if host == "registry-1.docker.io" else host
    return Registry(host, credentials=lambda: docker_credentials(lookup))


def split_reference(ref: str) -> tuple[str, str, str, bool]:
    """host, repository, tag-or-digest, ecr? for a registry reference in any accepted spelling."""
    from mlship.registry.push import RegistryRef

    name, at, digest = ref.partition("@")
    if "://" not in name:
        first = name.split("/")[0]
        if "/" in name and ("." in first or ":" in first or first == "localhost"):
            name = f"registry://{name}"
        else:
            repo = name if "/" in name else f"library/{name}"
            name = f"registry://registry-1.docker.io/{repo}"
    parsed = RegistryRef.parse(name)
    return parsed.host, parsed.repository, digest if at else (parsed.tag or "latest"), parsed.ecr


def open_base(ref: str, platform: str, log: Callable[[str], None] = lambda line: None) -> BaseImage:
    """The base image named by `ref`; exit 7 when it cannot be found."""
    if ref.startswith("oci:"):
        return _from_layout(ref, platform)
    if ref.startswith("docker-archive:"):
        return _from_archive(ref, log)
    host, repository, reference, ecr = split_reference(ref)
    registry = registry_for(host, ecr)
    manifest, media_type = registry.manifest(repository, reference)
    data = json.loads(manifest)
    if media_type in INDEX_TYPES or "manifests" in data:
        chosen = _pick_platform(data["manifests"], platform, ref)
        data = json.loads(registry.manifest(repository, chosen["digest"])[0])
    config = json.loads(registry.blob_bytes(repository, data["config"]["digest"]))

    def fetch(blob: Blob) -> Path:
        dest = blob_cache() / blob.digest.split(":", 1)[1]
        if not dest.is_file():
            log(f"downloading base layer {blob.digest[:19]} ({blob.size / 1e6:.0f} MB)")
            registry.download_blob(repository, blob.digest, dest)
        return dest

    return BaseImage(ref, config, _layers(data, config), fetch, registry, repository)


def _layers(manifest: dict, config: dict, paths: dict[str, Path] | None = None) -> list[Blob]:
    diff_ids = config.get("rootfs", {}).get("diff_ids", [])
    if len(diff_ids) != len(manifest["layers"]):
        raise InvalidInputError("base image: its config lists a different number of layers than its manifest")
    return [Blob(digest=d["digest"], size=int(d["size"]), media_type=OCI_TYPES.get(d["mediaType"], d["mediaType"]),
                 path=(paths or {}).get(d["digest"]), diff_id=diff_id)
            for d, diff_id in zip(manifest["layers"], diff_ids)]


def _pick_platform(manifests: list[dict], platform: str, ref: str) -> dict:
    os_name, arch, *variant = platform.split("/")
    for entry in manifests:
        p = entry.get("platform", {})
        if p.get("os") == os_name and p.get("architecture") == arch and (not variant or p.get("variant") in
                                                                          (None, variant[0])):
            return entry
    raise ServiceError(f"base image {ref} has no {platform} image", hint="Pick another base or --platform")


def _from_layout(ref: str, platform: str) -> BaseImage:
    spec = ref[len("oci:"):]
    directory, tag = Path(spec), None
    if not directory.is_dir() and ":" in spec:
        head, _, tag = spec.rpartition(":")
        directory = Path(head)
    index_path = directory / "index.json"
    if not index_path.is_file():
        raise ServiceError(f"base image {ref}: {directory} is not an OCI image layout (no index.json)",
                           hint="Pass oci:DIR[:TAG] of a layout, e.g. one written by skopeo copy or --output DIR")

    def blob_path(digest: str) -> Path:
        return directory / "blobs" / digest.replace(":", "/")

    entries = json.loads(index_path.read_text()).get("manifests", [])
    if tag is not None:
        entries = [m for m in entries if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag]
    if not entries:
        raise ServiceError(f"base image {ref}: no image{' tagged ' + tag if tag else ''} in {directory}")
    entry = entries[0]
    manifest = json.loads(blob_path(entry["digest"]).read_bytes())
    if entry.get("mediaType") in INDEX_TYPES or "manifests" in manifest:
        manifest = json.loads(blob_path(_pick_platform(manifest["manifests"], platform, ref)["digest"]).read_bytes())
    config = json.loads(blob_path(manifest["config"]["digest"]).read_bytes())
    paths = {d["digest"]: blob_path(d["digest"]) for d in manifest["layers"]}
    return BaseImage(ref, config, _layers(manifest, config, paths), lambda blob: blob.path)


def _from_archive(ref: str, log: Callable[[str], None]) -> BaseImage:
    path = Path(ref[len("docker-archive:"):])
    if not path.is_file():
        raise ServiceError(f"base image {ref}: no such file {path}", hint="Write one with: docker save IMAGE -o FILE.tar")
    try:
        with tarfile.open(path) as tar:
            manifest = json.load(tar.extractfile("manifest.json"))[0]
            config = json.load(tar.extractfile(manifest["Config"]))
            log(f"reading {len(manifest['Layers'])} layers from {path}")
            layers = [_cache_member(tar, name) for name in manifest["Layers"]]
    except (tarfile.TarError, KeyError, ValueError, TypeError, OSError) as exc:
        raise InvalidInputError(f"base image {ref}: not a docker save tarball ({exc})") from None
    diff_ids = config.get("rootfs", {}).get("diff_ids", [])
    if len(diff_ids) != len(layers):
        raise InvalidInputError(f"base image {ref}: config and manifest.json disagree on the layers")
    blobs = [Blob(digest=digest, size=size, media_type=media_type, path=cached, diff_id=diff_id)
             for (digest, size, media_type, cached), diff_id in zip(layers, diff_ids)]
    return BaseImage(ref, config, blobs, lambda blob: blob.path)


def _cache_member(tar: tarfile.TarFile, name: str) -> tuple[str, int, str, Path]:
    """Copy one layer out of the tarball into the blob cache; digest, size, media type, path."""
    source = tar.extractfile(name)
    if source is None:
        raise KeyError(name)
    sha, size = hashlib.sha256(), 0
    partial = blob_cache() / f".{os.getpid()}-{Path(name).parent.name or 'layer'}.partial"
    with open(partial, "wb") as fh:
        head = b""
        for block in iter(lambda: source.read(1 << 20), b""):
            head = head or block[:2]
            sha.update(block)
            size += len(block)
            fh.write(block)
    digest = f"sha256:{sha.hexdigest()}"
    dest = blob_cache() / sha.hexdigest()
    os.replace(partial, dest)
    return digest, size, OCI_LAYER + ("+gzip" if head == b"\x1f\x8b" else ""), dest

