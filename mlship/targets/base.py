"""The target interface and the table of target kinds.

A target stores bytes under keys (`NAME/VERSION/FILE`, `NAME/index.json`,
`NAME/channels/CHANNEL.json`). Writes are atomic: a key either holds the
whole new content or its old one. Shared documents (the index, channels) are
changed with `update`, a read-modify-write that loses no concurrent update:
under a lock file for file targets, with conditional writes (ETags) on S3.
Keys never leave the target's root: `check_key` refuses `..`, `.`, empty and
absolute parts. Kinds are plugins in the entry-point group mlship.targets.v1,
named by URL scheme or `type:`; mlship's own are declared there like any other.
"""

from __future__ import annotations

import abc
from pathlib import Path
from typing import Any, BinaryIO, Callable, ClassVar, Iterator, Optional

from pydantic import Field

from mlship.errors import InvalidInputError, MlshipError, UsageError
from mlship.plugins import PluginSettings, load, load_all

Progress = Callable[[int], None]
# old bytes (None: no such key) -> new bytes, or None to leave the key as it is. It may be
# called more than once (S3 retries on a conflict), so it must depend on its argument only.
Change = Callable[[Optional[bytes]], Optional[bytes]]


class Target(abc.ABC):
    """A place artifacts go.

    A plugin subclasses this and `Target.Settings` (its keys in mlship.yaml's `targets:`),
    and is constructed with those settings as keyword arguments (unset ones left out).
    """

    #: the URL scheme and `type:` it is registered under
    name: ClassVar[str]

    class Settings(PluginSettings):
        url: str = Field(..., description="Where the target is, e.g. scheme://location/prefix.")

    def __init__(self, url: str, **options: Any) -> None:
        self.url = url

    @classmethod
    def refusal(cls, spec: str) -> MlshipError | None:
        """Why artifacts cannot go to `spec`, a target of this kind; None when they can."""
        return None

    @abc.abstractmethod
    def upload(self, key: str, path: Path, progress: Progress) -> str:
        """Store a file under `key` atomically; the sha256 of what was stored."""

    def upload_stream(self, key: str, source: BinaryIO, size: int, progress: Progress, *, sharing: int = 1) -> None:
        """Store the `size` bytes read from `source` under `key` atomically. A push to several
        targets reads each file once and feeds every target that implements this from that one
        read (`source` reads forward only and cannot seek; `sharing` targets are pushing at once);
        a target without it reads the file itself, through `upload`."""
        raise NotImplementedError

    @abc.abstractmethod
    def download(self, key: str, dest: Path, progress: Progress) -> None:
        """Copy `key` into `dest` (a path that does not exist yet)."""

    @abc.abstractmethod
    def read(self, key: str) -> bytes | None:
        """The bytes under `key`, or None when there is none."""

    @abc.abstractmethod
    def write(self, key: str, data: bytes) -> None:
        """Replace `key` atomically."""

    def stream(self, key: str) -> Iterator[bytes] | None:
        """The bytes under `key` in chunks, or None when there is none; a reader that stops early
        (a length bound reached) reads no further. This default, for plugins written before it
        existed, reads the whole object at once: a plugin should override it."""
        data = self.read(key)
        return None if data is None else iter([data])

    def list_keys(self, prefix: str) -> list[str]:
        """Every key under `prefix` (a folder, ending in /), sorted."""
        raise UsageError(f"{self.describe()}: {self.name} targets cannot list keys (under {prefix})",
                         hint="Use a file://, s3://, gs:// or az:// target")

    def update(self, key: str, change: Change) -> bytes | None:
        """Replace `key` with `change(old)` so that no concurrent update is lost; what the key holds after.

        Built-in targets override this (a lock, a conditional write). This default, kept for
        plugins written before it existed, is a plain read then write: not safe when two
        writers race, so a plugin for shared stores should override it.
        """
        old = self.read(key)
        new = change(old)
        if new is None:
            return old
        self.write(key, new)
        return new

    def check_key(self, key: str) -> str:
        """`key` if it stays inside the target's root, else an invalid-input error.

        Keys are built from names, versions and file paths that were validated where they
        came in; this is the last line, so a value that slipped past cannot leave the root.
        """
        parts = key.split("/")
        if (not key or "\\" in key or "\x00" in key
                or any(p in ("", ".", "..") for p in parts)):
            raise InvalidInputError(f"{self.describe()}: refusing key {key!r}: it would leave the target's root")
        return key

    def describe(self) -> str:
        return self.url


def streams(target: Target | type[Target]) -> bool:
    """Whether `target` (or its class) takes uploads from a shared read (it implements `upload_stream`)."""
    kind = target if isinstance(target, type) else type(target)
    return kind.upload_stream is not Target.upload_stream


def target_kinds() -> dict[str, type[Target]]:
    """Scheme -> Target class of every installed target plugin."""
    return load_all("targets")


def target_class(spec: str, configured: dict[str, Any]) -> type[Target]:
    """The kind of target a name in mlship.yaml's `targets:` or a URL opens (nothing opened yet);
    an unknown scheme is a usage error, as in `open_target`."""
    named = configured.get(spec)
    return load("targets", named.type if named is not None else _scheme(spec), spec, _schemes)


def open_target(spec: str, configured: dict[str, Any]) -> Target:
    """A target for artifacts from a name in mlship.yaml's `targets:` or from a URL."""
    named = configured.get(spec)
    plugin = target_class(spec, configured)
    refused = plugin.refusal(spec)
    if refused is not None:
        raise refused
    settings = named if named is not None else _url_settings(plugin, spec)
    return plugin(**settings.model_dump(exclude={"type"}, exclude_none=True))


def _url_settings(plugin: type[Target], spec: str) -> PluginSettings:
    """A bare URL's settings: the URL and the plugin's defaults, checked by its Settings."""
    from pydantic import ValidationError

    try:
        return plugin.Settings(url=spec)
    except ValidationError as exc:
        error = exc.errors()[0]
        raise UsageError(f"{spec}: {'.'.join(map(str, error['loc']))}: {error['msg']}",
                         hint="Name the target in `targets:` in mlship.yaml, with its settings") from None


def _schemes(names: list[str]) -> str:
    return f"Use one of {', '.join(n + '://…' for n in names)}, or a name from `targets:` in mlship.yaml"


def _scheme(spec: str) -> str:
    if spec.startswith("https://") and ".blob.core.windows.net" in spec.split("/")[2]:
        return "az"  # Azure Blob Storage's own URLs name az targets (mlship/targets/azure.py)
    if "://" in spec:
        return spec.split("://", 1)[0]
    if spec.startswith(("/", ".")):
        return "file"
    return spec
