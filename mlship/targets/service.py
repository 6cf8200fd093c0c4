"""Use cases over targets: push an artifact to several targets at once, promote a
channel, pull a version, list the kinds and the configured targets.

`configured` is mlship.yaml's `targets:` (name -> settings); a target spec is a
name from it or a URL."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any, Callable

from pydantic import BaseModel

from mlship.errors import InvalidInputError, MlshipError, ServiceError, UsageError
from mlship.progress import NoProgress, Progress
from mlship.targets.artifacts import PushResult
from mlship.tuf.settings import SigningSettings

# label -> a progress bar (as a context manager) for one target's upload
ProgressFactory = Callable[[str], AbstractContextManager[Progress]]


class PushRequest(BaseModel):
    """An artifact (file or directory) to push under NAME/VERSION to each target."""

    artifact: Path | None
    name: str | None = None  # None: the configured name, else the artifact's file name
    version: str | None = None
    default_name: str | None = None  # `name:` in mlship.yaml
    targets: list[str]
    configured: dict[str, Any] = {}
    dry_run: bool = False
    signing: SigningSettings | None = None  # TUF keys: the pushed files also become signed targets
    store: Path | None = None  # the versions store that records each push (none: not recorded)


class PushReport(BaseModel):
    """One result per target, in the order asked; `files` are (local path, path in the version)."""

    name: str
    version: str
    files: list[tuple[Path, str]]
    results: list[PushResult]
    artifact: str = ""  # sha256:… of the file (a bundle's, as its build record says), or of a directory's listing

    def failure(self) -> MlshipError | None:
        """The error the command ends with when a target failed: a store that failed says 7;
        when every failure was the input's (a damaged index: 3, other content under the
        version: 2), that code instead."""
        failed = [r for r in self.results if r.status == "failed"]
        if not failed:
            return None
        excs = [r.exception for r in failed]
        kind = next((k for k in (InvalidInputError, UsageError) if all(isinstance(e, k) for e in excs)), ServiceError)
        return kind(f"push failed for {len(failed)} of {len(self.results)} targets: {failed[0].error}")


def push_artifacts(request: PushRequest, progress: ProgressFactory = lambda label: nullcontext(NoProgress())
                   ) -> PushReport:
    """Check the name and version, open every target (a bad spec fails before any upload),
    then push to all of them at once; a target's failure is its row, not an exception."""
    from mlship.names import check_name
    from mlship.targets.artifacts import artifact_files, push_artifact
    from mlship.model.load import sha256_file_once
    from mlship.targets.base import open_target, streams, target_class

    if request.artifact is None:
        raise UsageError("no artifact given", hint="Pass a file or directory to push")
    name = request.name if request.name is not None else request.default_name or request.artifact.stem
    if request.version is None:
        raise UsageError("no version given", hint="Pass --artifact-version or set `version:` in mlship.yaml")
    # They become keys in every target: nothing is opened with a bad one.
    from_stem = request.name is None and not request.default_name
    check_name(name, "name (from the artifact's file name; pass --name)" if from_stem else "--name")
    check_name(request.version, "--artifact-version")
    files = artifact_files(request.artifact)
    kinds = [target_class(t, request.configured) for t in request.targets]  # an unknown scheme: before any read
    # The targets that take a shared read get it started now: while this thread opens them (an
    # S3 client: ~0.2 s of one core), another reads and hashes the first blocks.
    shared = SharedUploads(files, sum(map(streams, kinds))) if not request.dry_run else None
    try:
        if shared:
            shared.prefetch()
        opened = [open_target(t, request.configured) for t in request.targets]
        if shared:
            shared.attach(opened)
        if not request.dry_run:  # other content under the version in any target: refused before any upload
            _refuse_conflicts(opened, name, request.version, files, shared.digest if shared else sha256_file_once)
    except BaseException:
        if shared:
            shared.close()
        raise
    total = sum(p.stat().st_size for p, _ in files)
    label = opened[0].describe() if len(opened) == 1 else f"{len(opened)} targets"
    with progress(label) as bar, (shared or nullcontext()):
        bar.start(total * len(opened))

        def push_one(target: Any) -> PushResult:
            try:
                result = push_artifact(target, name, request.version, files, dry_run=request.dry_run,
                                       progress=bar.advance, upload=shared.uploader(target) if shared else None)
            finally:
                if shared:
                    shared.leave(target)  # files it never reached hold the other targets back no more
            return _sign_release(target, name, request.version, files, request.signing, result)

        if len(opened) == 1:
            results = [push_one(opened[0])]
        else:  # hybrid: every target at once (one slow store does not hold the others), rows in the given order
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(max_workers=len(opened)) as pool:
                results = list(pool.map(push_one, opened))
    report = PushReport(name=name, version=request.version, files=files, results=results,
                        artifact=artifact_digest(files))
    if request.store is not None and not request.dry_run:
        _record_pushes(request.store, report)
    return report


class SharedUploads:
    """A push to several targets reads each file once: the targets that take a stream
    (`Target.upload_stream`) share one read per file (blocks read and hashed once, see
    targets/hashing.py), a lone one too; the others read the file themselves, through `upload`."""

    PREFETCH = 160 << 20  # read and hashed before the targets are open: at most 10 blocks of 16 MB

    def __init__(self, files: list[tuple[Path, str]], streaming: int) -> None:
        from mlship.targets.hashing import SharedRead

        self.slots: dict[int, int] = {}
        self.reads = {path: SharedRead(path, streaming) for path, _ in files} if streaming else {}

    def prefetch(self) -> None:
        """Read and hash the first blocks of the files in a thread of its own, until PREFETCH
        bytes are in memory or a target starts reading (targets/hashing.py: SharedRead.prefetch)."""
        if not self.reads:
            return
        import threading

        def run() -> None:
            budget = self.PREFETCH
            try:
                for read in self.reads.values():
                    budget -= read.prefetch(budget)
                    if budget <= 0 or read.started:
                        return
            except Exception:  # noqa: BLE001 - kept in the SharedRead: the target that reads there gets it
                return

        threading.Thread(target=run, name="mlship-prefetch", daemon=True).start()

    def digest(self, path: Path) -> str:
        """A file's sha256 for the check whether a target already holds the version: what the
        prefetch hashed, then the rest (SharedRead.whole_digest); hashed once per process."""
        from mlship.model.load import sha256_file_once

        read = self.reads.get(path)
        if read is None or read.started:
            return sha256_file_once(path)
        return sha256_file_once(path, lambda p: read.whole_digest())

    def attach(self, opened: list[Any]) -> None:
        """The opened targets that stream get their slots, in order."""
        from mlship.targets.base import streams

        self.slots = {id(t): i for i, t in enumerate(t for t in opened if streams(t))} if self.reads else {}

    def __enter__(self) -> "SharedUploads":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Nobody reads any more (the uploads ended, or the push stopped before them): memory and
        files are let go."""
        for read in self.reads.values():
            read.close()

    def uploader(self, target: Any) -> Callable[[str, Path, Callable[[int], None]], str] | None:
        """`upload(key, path, progress) -> sha256` for `target`; None: its own `upload`."""
        slot = self.slots.get(id(target))
        if slot is None:
            return None

        def upload(key: str, path: Path, progress: Callable[[int], None]) -> str:
            from mlship.model.load import remember_sha256

            read = self.reads[path]
            reader = read.reader(slot)
            try:
                target.upload_stream(key, reader, read.size, progress, sharing=len(self.slots))
                complete = reader.position == read.size
            finally:
                reader.close()
            digest = read.hexdigest()
            if not complete or digest is None:
                raise ServiceError(f"{target.describe()}: upload of {key} stopped after {reader.position} of "
                                   f"{read.size} bytes")
            return remember_sha256(path, digest)

        return upload

    def leave(self, target: Any) -> None:
        slot = self.slots.get(id(target))
        if slot is not None:
            for read in self.reads.values():
                read.leave(slot)


def _refuse_conflicts(opened: list[Any], name: str, version: str, files: list[tuple[Path, str]],
                      digest: Callable[[Path], str]) -> None:
    """A dry run against every target first: one holding other content under NAME VERSION
    stops the push before any target gets a byte (exit 2, the version is immutable)."""
    from mlship.targets.artifacts import push_artifact
    from mlship.versions import BUMP_HINT, VersionExistsError

    for target in opened:
        checked = push_artifact(target, name, version, files, dry_run=True, digest=digest)
        if checked.status == "failed" and isinstance(checked.exception, UsageError):
            raise VersionExistsError(checked.exception.message, hint=BUMP_HINT)


def artifact_digest(files: list[tuple[Path, str]]) -> str:
    """The content digest of an artifact's files (local path, path in the version)."""
    from mlship.model.load import sha256_file_once

    return content_digest([(rel, sha256_file_once(p)) for p, rel in files])


def content_digest(files: list[tuple[str, str]]) -> str:
    """sha256:… of a version's (path, sha256) files: a single top-level file's own sha256 (so a
    bundle's equals its build record's artifact), else the sha256 of the sorted listing."""
    import hashlib

    if len(files) == 1 and "/" not in files[0][0]:
        return f"sha256:{files[0][1]}"
    listing = "".join(f"{path}\0{sha}\n" for path, sha in sorted(files))
    return "sha256:" + hashlib.sha256(listing.encode()).hexdigest()


def _record_pushes(store: Path, report: PushReport) -> None:
    """Every target that now holds the version (pushed, or already there) gets one push record."""
    from mlship.versions import PushRecord, VersionStore

    versions = VersionStore(store)
    for r in report.results:
        if r.status in ("pushed", "skipped"):
            versions.record(PushRecord(name=report.name, version=report.version, artifact=report.artifact,
                                       reference=f"{r.target.rstrip('/')}/{report.name}/{report.version}",
                                       digest=report.artifact))


def _sign_release(target: Any, name: str, version: str, files: list[tuple[Path, str]],
                  signing: SigningSettings | None, result: PushResult) -> PushResult:
    """With TUF keys, a pushed (or already there) version's files become signed targets; a failure is the row's."""
    if signing is None or result.status not in ("pushed", "skipped"):
        return result
    from mlship.tuf.releases import publish_version

    try:
        publish_version(target, name, version, files, signing)
    except MlshipError as exc:
        failed = PushResult(target=target.describe(), status="failed", files=result.files,
                            error=f"pushed, but not signed: {exc.one_line()}")
        failed._exc = exc
        return failed
    return result


def promote_channel(name: str, version: str, channel: str, to: str, configured: dict[str, Any],
                    signing: SigningSettings | None = None) -> dict[str, Any]:
    """Point CHANNEL at VERSION in the target `to`; the new pointer document.
    With TUF keys, the version must be signed and the pointer becomes a signed target."""
    from mlship.names import check_name
    from mlship.targets.artifacts import promote
    from mlship.targets.base import open_target

    check_name(name, "name")  # before the target is opened: they become keys in it
    check_name(version, "version")
    check_name(channel, "--channel")
    target = open_target(to, configured)
    if signing is None:
        return promote(target, name, version, channel)
    from mlship.tuf.releases import check_signed, publish_channel

    check_signed(target, name, version)  # before the plain pointer moves
    pointer = promote(target, name, version, channel)
    published = publish_channel(target, name, channel, channel_bytes(pointer), version, signing)
    return {**pointer, "tuf": published.model_dump(exclude={"target", "name"})}


def channel_bytes(pointer: dict[str, Any]) -> bytes:
    from mlship.targets.documents import Channel, dump

    return dump(Channel.model_validate(pointer))


class PullResult(BaseModel):
    """What a pull resolved (the version behind a channel, the content's digest, the target)
    and where it went; `unchanged` when OUTPUT already held exactly that version."""

    ref: str
    name: str
    version: str
    channel: str | None = None
    target: str
    output: Path
    digest: str
    files: int
    unchanged: bool = False


def pull_version(ref: str, source: str, output: Path | None, configured: dict[str, Any], *,
                 force: bool = False) -> PullResult:
    """Download NAME, NAME:VERSION or NAME@CHANNEL from `source`, verified. An OUTPUT that
    already holds the same files is left as it is (a rerun is a no-op); one with other
    content is refused, or with `force` replaced once the new download is verified."""
    from mlship.targets.artifacts import resolve
    from mlship.targets.base import open_target
    from mlship.targets.documents import parse_ref

    _, _, channel = parse_ref(ref)  # a bad name, version or channel is refused before the target is opened
    target = open_target(source, configured)
    name, entry = resolve(target, ref)
    dest = output or Path(f"{name}-{entry['version']}")
    result = PullResult(ref=ref, name=name, version=entry["version"], channel=channel, target=target.describe(),
                        output=dest, files=len(entry["files"]),
                        digest=content_digest([(f["path"], f["sha256"]) for f in entry["files"]]))
    if dest.exists() and _holds(dest, entry["files"]):
        return result.model_copy(update={"unchanged": True})
    if dest.exists() and not force:
        raise UsageError(f"{dest} exists with other content than {name} {entry['version']}",
                         hint="Pass --force to replace it, or -o another directory")
    _download(target, f"{name}:{entry['version']}", dest)  # the version resolved, even if the channel moves now
    return result


def _holds(dest: Path, files: list[dict[str, Any]]) -> bool:
    """DEST is a directory with exactly these files (paths and sha256), nothing more."""
    from mlship.model.load import sha256_file

    if not dest.is_dir() or dest.is_symlink():
        return False
    there = sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file() or p.is_symlink())
    if there != sorted(f["path"] for f in files):
        return False
    return all(not (dest / f["path"]).is_symlink() and sha256_file(dest / f["path"]) == f["sha256"] for f in files)


def _download(target: Any, ref: str, dest: Path) -> None:
    """Pull into DEST; an existing DEST is replaced only after the new copy is verified."""
    import shutil
    import uuid

    from mlship.targets.artifacts import pull

    if not dest.exists():
        pull(target, ref, dest)
        return
    fresh = dest.with_name(f".{dest.name}.new-{uuid.uuid4().hex[:8]}")
    pull(target, ref, fresh)  # verified, or nothing
    old = dest.with_name(f".{dest.name}.old-{uuid.uuid4().hex[:8]}")
    dest.rename(old)
    fresh.rename(dest)
    shutil.rmtree(old) if old.is_dir() and not old.is_symlink() else old.unlink()


class TargetList(BaseModel):
    schemes: list[str]
    targets: dict[str, dict[str, str]]


def list_targets(configured: dict[str, Any]) -> TargetList:
    """The target schemes installed (registry:// among them, for images) and the configured targets."""
    from mlship.targets.base import target_kinds

    return TargetList(schemes=sorted(target_kinds()), targets={n: {"type": t.type, "url": t.url} for n, t in configured.items()})


def rotate_keys(name: str, to: str, configured: dict[str, Any], signing: SigningSettings | None, role: str,
                new_refs: list[str], threshold: int | None = None) -> Any:
    # Here, not in mlship.tuf: opening a target from mlship.yaml belongs to the targets'
    # use cases (mlship.tuf never imports mlship.targets). Returns tuf.rotate.Rotated.
    """The `mlship keys rotate` use case: `signing` is mlship.yaml's resolved `signing:` (None when unset)."""
    from mlship.names import check_name
    from mlship.targets.base import open_target
    from mlship.tuf.rotate import rotate
    from mlship.tuf.settings import ROLES

    check_name(name, "name")
    if role not in ROLES:
        raise UsageError(f"--role {role}: not one of {', '.join(ROLES)}")
    if signing is None:
        raise UsageError("no TUF keys configured: keys rotate signs with signing.keys.root",
                         hint="Set signing.keys in mlship.yaml (see mlship keys generate)")
    return rotate(open_target(to, configured), name, signing, role, new_refs, threshold)
