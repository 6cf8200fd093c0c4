"""The target interface and the table of target kinds.

A target stores bytes under keys (`NAME/VERSION/FILE`, `NAME/index.json`,
`NAME/channels/CHANNEL.json`). Writes are atomic: a key either holds the
whole new content or its old one. Shared documents (the index, channels) are
changed with `update`, a read-modify-write that loses no concurrent update:
under a lock file for file targets, with conditional writes (ETags) on S3.
Keys never leave the target's root: `check_key` refuses `..`, `.`, empty and
absolute parts. Kinds register by URL scheme, the built-in ones through the
same entry-point group a plugin would use (mlship.targets.v1).
"""

from __future__ import annotations

import abc
from pathlib import Path
from typing import Any, Callable, ClassVar, Optional

from mlship.errors import InvalidInputError, UsageError

Progress = Callable[[int], None]
# old bytes (None: no such key) -> new bytes, or None to leave the key as it is. It may be
# called more than once (S3 retries on a conflict), so it must depend on its argument only.
Change = Callable[[Optional[bytes]], Optional[bytes]]


class Target(abc.ABC):
    """A place artifacts go."""

    scheme: ClassVar[str]

    def __init__(self, url: str, **options: Any) -> None:
        self.url = url

    @abc.abstractmethod
    def upload(self, key: str, path: Path, progress: Progress) -> str:
        """Store a file under `key` atomically; the sha256 of what was stored."""

    @abc.abstractmethod
    def download(self, key: str, dest: Path, progress: Progress) -> None:
        """Copy `key` into `dest` (a path that does not exist yet)."""

    @abc.abstractmethod
    def read(self, key: str) -> bytes | None:
        """The bytes under `key`, or None when there is none."""

    @abc.abstractmethod
    def write(self, key: str, data: bytes) -> None:
        """Replace `key` atomically."""

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


def target_kinds() -> dict[str, type[Target]]:
    """Scheme -> Target class: the built-ins, then plugins from entry points."""
    from importlib.metadata import entry_points

    from mlship.targets.file import FileTarget
    from mlship.targets.s3 import S3Target

    kinds: dict[str, type[Target]] = {"s3": S3Target, "file": FileTarget}
    for entry in entry_points(group="mlship.targets.v1"):
        kinds.setdefault(entry.name, entry.load())
    return kinds


def open_target(spec: str, configured: dict[str, Any]) -> Target:
    """A target from a name in mlship.yaml's `targets:` or from a URL."""
    if spec in configured:
        settings = configured[spec].model_dump()
        kind, url = settings.pop("type"), settings.pop("url")
    else:
        kind, url, settings = _scheme(spec), spec, {}
    kinds = target_kinds()
    if kind == "registry":
        raise UsageError(f"{spec}: registry targets take images", hint="Use mlship push --image --to registry://…")
    if kind not in kinds:
        raise UsageError(f"{spec}: unknown target scheme '{kind}'",
                         hint=f"Use one of {', '.join(sorted(kinds))}://…, or a name from `targets:` in mlship.yaml")
    return kinds[kind](url, **{k: v for k, v in settings.items() if v is not None})


def _scheme(spec: str) -> str:
    if "://" in spec:
        return spec.split("://", 1)[0]
    if spec.startswith(("/", ".")):
        return "file"
    return spec
