"""Image builders by name: `docker` (through the engine) and `oci` (daemonless).

Built-ins register through the entry-point group `mlship.builders.v1`, the
same way a plugin does; a builder is a class with a `name` and `build`.
"""

from __future__ import annotations

import abc
from typing import Any, Callable, ClassVar

from mlship.images.docker import ImageOptions, ImageResult
from mlship.errors import UsageError


class ImageBuilder(abc.ABC):
    """Makes a serving image from ImageOptions."""

    name: ClassVar[str]

    @abc.abstractmethod
    def build(self, options: ImageOptions, log: Callable[[str], None], progress: Any) -> ImageResult:
        """Build (and, where supported, write `options.output` and push to `options.push`)."""


class DockerBuilder(ImageBuilder):
    name = "docker"

    def build(self, options: ImageOptions, log: Callable[[str], None], progress: Any) -> ImageResult:
        from mlship.images.docker import build_image

        if options.output is not None or options.push is not None:
            raise UsageError("--output and --push need --builder oci",
                             hint="With the engine, push afterwards: mlship push --image NAME --to registry://…")
        return build_image(options, log)


class OciBuilder(ImageBuilder):
    name = "oci"

    def build(self, options: ImageOptions, log: Callable[[str], None], progress: Any) -> ImageResult:
        from mlship.images.oci import build_oci_image

        if options.output is None and options.push is None:
            raise UsageError("--builder oci needs somewhere to put the image",
                             hint="Pass --output DIR (OCI layout), --output FILE.tar (docker load) or --push registry://…")
        return build_oci_image(options, log, progress)


def image_builders() -> dict[str, type[ImageBuilder]]:
    """Name -> builder class: the built-ins, then plugins from entry points."""
    from importlib.metadata import entry_points

    builders: dict[str, type[ImageBuilder]] = {"docker": DockerBuilder, "oci": OciBuilder}
    for entry in entry_points(group="mlship.builders.v1"):
        builders.setdefault(entry.name, entry.load())
    return builders


def image_builder(name: str) -> ImageBuilder:
    builders = image_builders()
    if name not in builders:
        raise UsageError(f"--builder {name}: unknown image builder", hint=f"Use one of {', '.join(sorted(builders))}")
    return builders[name]()
