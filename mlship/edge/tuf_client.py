"""The device's TUF client: python-tuf's ngclient.Updater reading NAME/tuf/ through a Target.

Trusted metadata lives in DIR/tuf/ (beside DIR/versions/, so nothing a bundle
unpacks can write it). Once DIR/tuf/root.json exists every sync goes through
TUF: leaving out --root does not fall back to unsigned channels. Whatever TUF
refuses (expired, rollback, bad signature, length, hash) is exit 3, naming the
attack, before anything on the device changes.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from mlship.errors import InvalidInputError, MlshipError, ServiceError, UsageError
from mlship.names import check_name

if TYPE_CHECKING:
    from mlship.targets.base import Target

SCHEME = "mlship-target:///"  # URLs the Updater builds; the fetcher maps them back to target keys


def trusted_dir(directory: Path) -> Path:
    return directory / "tuf"


def provisioned(directory: Path) -> bool:
    return (trusted_dir(directory) / "root.json").exists()


def init_root(directory: Path, root_file: Path) -> int:
    """Install ROOT (a self-signed TUF root) as the device's trust anchor; its version."""
    from mlship.tuf.metadata import parse, verify

    try:
        raw = root_file.read_bytes()
    except OSError as exc:
        raise UsageError(f"--root {root_file}: {exc.strerror or exc}") from None
    root = parse(raw, str(root_file))
    verify(root, "root", root, str(root_file))
    folder = trusted_dir(directory)
    if provisioned(directory):
        raise UsageError(f"{folder} already holds a trusted root", hint="A device's root changes only by rotation")
    (folder / "root_history").mkdir(parents=True, exist_ok=True)
    _write(folder / "root_history" / f"{root.signed.version}.root.json", raw)
    os.symlink(f"root_history/{root.signed.version}.root.json", folder / ".root.json.new")
    os.replace(folder / ".root.json.new", folder / "root.json")
    return root.signed.version


def _write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _fetcher(target: "Target") -> Any:
    from tuf.api.exceptions import DownloadHTTPError
    from tuf.ngclient import FetcherInterface

    class TargetFetcher(FetcherInterface):
        """Streams the Updater's URLs from the target; a missing key is a 404, as TUF expects."""

        def _fetch(self, url: str) -> Iterator[bytes]:
            # Streamed: the Updater stops at the signed length (or its bound for metadata) and the
            # rest is never read, however large or endless the object is.
            key = target.check_key(url.removeprefix(SCHEME))
            chunks = target.stream(key)
            if chunks is None:
                raise DownloadHTTPError(f"{key} not found", 404)
            return chunks

    return TargetFetcher()


class Release:
    """The channel's version and its bundle, as signed TUF targets say; `download` fetches the bundle, verified."""

    def __init__(self, target: "Target", name: str, channel: str, directory: Path) -> None:
        from tuf.ngclient import Updater

        self.where = f"{target.describe().rstrip('/')}/{name}/tuf"
        self.name = name
        self.bundle_base = f"{SCHEME}{name}/"
        self.updater = Updater(str(trusted_dir(directory)), f"{SCHEME}{name}/tuf/",
                               target_base_url=f"{SCHEME}{name}/tuf/targets/", fetcher=_fetcher(target),
                               bootstrap=None)
        with refusals(self.where):
            info = self.updater.get_targetinfo(f"channels/{channel}.json")
            if info is None:
                raise UsageError(f"{target.describe()}: {name} has no signed channel {channel}")
            self.version, self.bundle = _custom(info, self.where)
            # Kept beside the trusted metadata: an unchanged channel costs no download (only timestamp.json).
            cached = trusted_dir(directory) / "channels" / f"{check_name(channel, 'channel')}.json"
            cached.parent.mkdir(exist_ok=True)
            pointer = Path(self.updater.find_cached_target(info, str(cached))
                           or self.updater.download_target(info, str(cached)))
            signed_version = json.loads(pointer.read_bytes()).get("version")
            if signed_version != self.version:
                raise InvalidInputError(f"{self.where}: the channel pointer says {signed_version!r}, its target "
                                        f"says {self.version}")
            self.info = self.updater.get_targetinfo(self.bundle)
            if self.info is None:
                raise InvalidInputError(f"{self.where}: {self.bundle} is not a signed target")

    def download(self, dest: Path) -> int:
        """The bundle into `dest`, its length and sha256 checked against the signed targets; its size."""
        with refusals(self.where):
            # Bundles are immutable versions stored once under NAME/VERSION/, not under hash-prefixed names.
            self.updater.config.prefix_targets_with_hash = False
            self.updater.download_target(self.info, str(dest), target_base_url=self.bundle_base)
        return dest.stat().st_size


def _custom(info: Any, where: str) -> tuple[str, str]:
    custom = info.custom.get("mlship") if isinstance(info.custom, dict) else None
    version = custom.get("version") if isinstance(custom, dict) else None
    bundle = custom.get("bundle") if isinstance(custom, dict) else None
    version = check_name(version if isinstance(version, str) else "", "version", where=where)
    if not isinstance(bundle, str) or not bundle.startswith(f"{version}/") or not bundle.endswith(".mlbundle"):
        raise InvalidInputError(f"{where}: {info.path} names no .mlbundle of {version}",
                                hint="Push an edge bundle as that version, then promote it")
    return version, bundle


class refusals:
    """Turns what python-tuf refuses into exit 3 naming the attack it stopped."""

    def __init__(self, where: str) -> None:
        self.where = where

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: Any, exc: Any, tb: Any) -> bool:
        if exc is None or isinstance(exc, MlshipError):
            return False
        from tuf.api import exceptions as tufx

        named = [(tufx.ExpiredMetadataError, "expired metadata (a freeze, or run mlship edge refresh)"),
                 (tufx.BadVersionNumberError, "rollback to an older version"),
                 (tufx.UnsignedMetadataError, "bad signature (not signed by the threshold of trusted keys)"),
                 (tufx.LengthOrHashMismatchError, "length or hash mismatch (tampered)"),
                 (tufx.DownloadLengthMismatchError, "length over the signed bound"),
                 (tufx.RepositoryError, "invalid metadata")]
        for cls, attack in named:
            if isinstance(exc, cls):
                raise InvalidInputError(f"{self.where}: TUF refused the update: {attack}: "
                                        f"{' '.join(str(exc).split())[:200]}") from None
        if isinstance(exc, tufx.DownloadHTTPError):
            raise InvalidInputError(f"{self.where}: {exc}", hint="Publish with `signing:` configured") from None
        if isinstance(exc, tufx.DownloadError):
            cause = exc.__cause__
            raise (cause if isinstance(cause, MlshipError) else ServiceError(f"{self.where}: {exc}")) from None
        return False
