"""Image builders by name: `docker` (through the engine) and `oci` (daemonless).

Builders are plugins in the entry-point group `mlship.builders.v1`; mlship's
own are declared there the same way a third party declares theirs.
"""

from __future__ import annotations

import abc
from typing import Any, Callable, ClassVar

from mlship.images.docker import ImageOptions, ImageResult
from mlship.errors import UsageError
from mlship.plugins import PluginSettings, load, load_all


class ImageBuilder(abc.ABC):
    """Makes a serving image from ImageOptions.

    A plugin subclasses this (and `ImageBuilder.Settings` when it has settings of its own)
    and is constructed without arguments; it is chosen by `build.image.builder` or --builder.
    """

    #: the name it is registered under (--builder NAME)
    name: ClassVar[str]

    class Settings(PluginSettings):
        pass

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
    """Name -> class of every installed image builder."""
    return load_all("builders")


def image_builder(name: str) -> ImageBuilder:
    """The builder installed as `name`; a usage error naming the installed ones when there is none."""
    return load("builders", name, f"--builder {name}")()
