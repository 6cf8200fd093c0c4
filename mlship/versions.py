"""The versions store: a record of every build, push and deploy.

`.mlship/versions.jsonl` beside mlship.yaml (or `--store`), one JSON object
per line: builds (`event: build`), pushes (`event: push`) and what runs where
(`event: deploy`, `stop`, `gc`: who, when, on which engine or endpoint, in
which slot, which image digest). The file is
rewritten whole through a temporary file and a rename, so a reader never
sees a half-written record, and writes hold a lock (`versions.jsonl.lock`
beside it) across the read and the rename, so concurrent builds lose none.

Versions are immutable: a build records the digest of its inputs
(`inputs_sha256`: the model and the settings that shape the artifact). The
same inputs under a recorded version are the same build (one record, no
duplicate); other inputs are refused before any work (`VersionExistsError`,
exit 2), unless `--force` replaces a build that was never pushed.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from mlship.actor import current_user
from mlship.errors import InvalidInputError, ServiceError, UsageError
from mlship.fsutil import atomic_write, file_lock

STORE = Path(".mlship") / "versions.jsonl"


BUMP_HINT = "Bump the version (mlship version bump patch, or --model-version)"


class VersionExistsError(UsageError):
    """Other content under a version that is already built or pushed (exit 2: nothing
    outside failed, so CI must not read it as 7, a service to retry)."""


class BuildRecord(BaseModel):
    event: Literal["build"] = "build"
    name: str
    version: str
    kind: Literal["image", "bundle"]
    model_sha256: str
    artifact: str = Field(description="Image id, or the bundle's sha256.")
    inputs_sha256: str | None = Field(None, description="Digest of the model and the settings that shape the artifact.")
    tag: str | None = None
    size_bytes: int | None = None
    git_commit: str | None = None
    builder: str
    result: dict[str, Any] | None = Field(None, description="The build's result document, returned by a no-op rebuild.")
    created: str = Field(default_factory=lambda: now())


class PushRecord(BaseModel):
    event: Literal["push"] = "push"
    name: str
    version: str
    artifact: str
    reference: str
    digest: str | None = None
    created: str = Field(default_factory=lambda: now())


class DeployRecord(BaseModel):
    """One change of what runs where: a version placed in a slot (deploy, or undo bringing it back),
    a slot stopped, a kept placement removed (gc)."""

    event: Literal["deploy", "stop", "gc"]
    name: str
    version: str
    slot: str
    runtime: str = Field(description="The deploy runtime (docker, sagemaker, ...).")
    where: str = Field(description="The engine's address or the SageMaker endpoint.")
    id: str = Field(description="The runtime's handle: a container name, a SageMaker model name.")
    image: str | None = None
    digest: str | None = Field(None, description="The image's digest (registry manifest, or the engine's image id).")
    via: str | None = Field(None, description="What placed it when not `mlship deploy`: rollout start, rollout undo.")
    user: str = Field(default_factory=lambda: current_user())
    created: str = Field(default_factory=lambda: now())


DEPLOY_EVENTS = ("deploy", "stop", "gc")


def now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class VersionStore:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def records(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        out = []
        for line_no, line in enumerate(self.path.read_bytes().splitlines(), start=1):
            if line.strip():
                try:
                    record = json.loads(line)
                except (ValueError, RecursionError):  # bad JSON, bad UTF-8, absurd nesting
                    record = None
                if not isinstance(record, dict):
                    raise InvalidInputError(f"{self.path}:{line_no}: not a JSON record")
                out.append(record)
        return out

    def append(self, record: BuildRecord | PushRecord | DeployRecord) -> None:
        """Add one record; concurrent appends (parallel CI jobs) each keep theirs."""
        with self._locked():  # read and rename under one lock: no append is lost
            old = self.path.read_bytes() if self.path.exists() else b""
            if old and not old.endswith(b"\n"):
                old += b"\n"
            atomic_write(self.path, old + record.model_dump_json().encode() + b"\n")

    def record(self, record: BuildRecord | PushRecord, *, force: bool = False) -> dict[str, Any]:
        """Store `record` once: an identical one already there is returned instead (an identical
        rebuild or re-push adds nothing). A build replaces the earlier build of its name, version and
        kind with the same inputs (or any, with `force`); checked again under the lock, so a build
        racing another with other inputs is refused rather than lost."""
        new = record.model_dump(mode="json")
        with self._locked():
            old = self.records()
            same = next((r for r in old if _identity(r) == _identity(new)), None)
            if same is not None:
                return same
            kept = [r for r in old if not _same_slot(r, new)]
            if len(kept) != len(old) and not force:
                _refuse_other_inputs([r for r in old if _same_slot(r, new)][-1], new)
            lines = [json.dumps(r, separators=(",", ":")).encode() for r in kept]
            atomic_write(self.path, b"".join(line + b"\n" for line in [*lines, record.model_dump_json().encode()]))
        return new

    def _locked(self) -> Any:
        lock = self.path.with_name(self.path.name + ".lock")
        busy = lambda p: ServiceError(f"{self.path} is locked by another mlship ({p})",  # noqa: E731
                                      hint="Wait for it to finish, then run the command again")
        return file_lock(lock, busy)

    def recorded_build(self, name: str, version: str, kind: str, inputs: str, model_sha256: str, *,
                       force: bool = False) -> dict[str, Any] | None:
        """The recorded build of NAME VERSION from these inputs (a rebuild is a no-op), None when
        there is none; other inputs are refused (before any work), unless `force` and the version
        was never pushed."""
        known = self.find(name, version, kind)
        if known is None or _same_inputs(known, {"inputs_sha256": inputs, "model_sha256": model_sha256}):
            return known
        if force and not known["pushed"]:
            return None
        if known["pushed"]:
            where = ", ".join(p["reference"] for p in known["pushed"])
            raise VersionExistsError(f"{name} {version} was pushed ({where}) and is immutable; these inputs differ",
                                     hint=BUMP_HINT)
        _refuse_other_inputs(known, {"inputs_sha256": inputs, "model_sha256": model_sha256})
        return None

    def versions(self, name: str | None = None) -> list[dict[str, Any]]:
        """Builds with their pushes folded in, then pushed artifacts no build here made, oldest first."""
        records = self.records()
        builds = [r for r in records if r.get("event") == "build" and (name is None or r["name"] == name)]
        pushes = [r for r in records if r.get("event") == "push" and (name is None or r["name"] == name)]
        for build in builds:
            build["pushed"] = [_pushed(p) for p in pushes if (p["artifact"], p["name"]) == (build["artifact"], build["name"])]
        built = {(b["artifact"], b["name"]) for b in builds}
        return builds + _pushed_only([p for p in pushes if (p["artifact"], p["name"]) not in built])

    def find(self, name: str, version: str | None = None, kind: str | None = None) -> dict[str, Any] | None:
        matches = [b for b in self.versions(name) if (version is None or b["version"] == version)
                   and (kind is None or b["kind"] == kind)]
        return matches[-1] if matches else None

    def deploys(self, name: str, version: str | None = None) -> list[dict[str, Any]]:
        """The deploy, stop and gc events of `name` (of one version), oldest first."""
        return [r for r in self.records() if r.get("event") in DEPLOY_EVENTS and r.get("name") == name
                and (version is None or r.get("version") == version)]

    def show(self, name: str, version: str | None = None) -> dict[str, Any] | None:
        """NAME[:VERSION] (the latest build when no version) with its pushes, where it runs (`runs`)
        and its deploy events (`deploys`); None when neither a build nor a deploy of it is recorded."""
        record = self.find(name, version)
        version = record["version"] if record is not None else version
        events = self.deploys(name, version) if version else []
        if record is None and not events:
            return None
        record = record or {"name": name, "version": version, "kind": None, "pushed": []}
        return {**record, "runs": self.running(name, version), "deploys": events}

    def running(self, name: str, version: str | None = None) -> list[dict[str, Any]]:
        """Where `name` (one version of it) runs, as the events tell: per runtime, place and slot, the
        last version deployed there, `running`, or `stopped` when a stop came after it."""
        slots: dict[tuple[str, ...], dict[str, Any]] = {}
        for r in self.deploys(name):
            key = tuple(str(r.get(k, "")) for k in ("runtime", "where", "slot"))  # a damaged record stays hashable
            if r["event"] == "deploy":
                slots[key] = {"slot": r.get("slot"), "version": r.get("version"), "runtime": r.get("runtime"),
                              "where": r.get("where"), "id": r.get("id"), "digest": r.get("digest"),
                              "state": "running", "since": r.get("created"), "user": r.get("user")}
            elif r["event"] == "stop" and key in slots and slots[key]["version"] == r.get("version"):
                slots[key].update(state="stopped", since=r.get("created"), user=r.get("user"))
        return [s for s in slots.values() if version is None or s["version"] == version]

    def next_version(self, name: str) -> str:
        """The last version of `name` with its last number raised by one (0.1.0 first)."""
        last = next((b["version"] for b in reversed(self.versions(name))), None)
        if last is None:
            return "0.1.0"
        match = re.fullmatch(r"(.*?)(\d+)", last)
        return f"{match.group(1)}{int(match.group(2)) + 1}" if match else f"{last}.1"


def _identity(record: dict[str, Any]) -> tuple:
    """What makes two records the same event (not when they were written, nor timings)."""
    if record.get("event") == "build":
        return ("build", record.get("name"), record.get("version"), record.get("kind"), record.get("artifact"),
                record.get("inputs_sha256"), record.get("tag"))
    return ("push", record.get("name"), record.get("version"), record.get("artifact"), record.get("reference"),
            record.get("digest"))


def _same_slot(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """`old` is an earlier build of the version `new` builds."""
    keys = ("event", "name", "version", "kind")
    return new.get("event") == "build" and all(old.get(k) == new.get(k) for k in keys)


def _same_inputs(known: dict[str, Any], new: dict[str, Any]) -> bool:
    """Built from the same inputs (a record from before inputs were recorded: the same model)."""
    if known.get("inputs_sha256") is None:
        return known.get("model_sha256") == new.get("model_sha256")
    return known["inputs_sha256"] == new.get("inputs_sha256")


def _refuse_other_inputs(known: dict[str, Any], new: dict[str, Any]) -> None:
    if _same_inputs(known, new):
        return  # the same inputs rebuilt (a bundle whose file was removed): the new bytes replace the record
    raise VersionExistsError(
        f"{known['name']} {known['version']} ({known['kind']}) is already built from other inputs "
        f"(recorded {known['created']})",
        hint=f"{BUMP_HINT}, or pass --force to replace this local build")


def _pushed(push: dict[str, Any]) -> dict[str, Any]:
    return {"reference": push["reference"], "digest": push.get("digest"), "created": push["created"]}


def _pushed_only(pushes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows for artifacts pushed without a build recorded here (a directory, a bundle from elsewhere)."""
    rows: dict[tuple[str, str, str], dict[str, Any]] = {}
    for p in pushes:
        row = rows.setdefault((p["name"], p["version"], p["artifact"]), {
            "event": "push", "name": p["name"], "version": p["version"], "kind": "artifact", "model_sha256": "",
            "artifact": p["artifact"], "created": p["created"], "pushed": []})
        row["pushed"].append(_pushed(p))
    return list(rows.values())


def inputs_digest(values: dict[str, Any]) -> str:
    """sha256 over a build's inputs: each value as JSON, a file as its content's sha256."""
    import hashlib

    from mlship.model.load import sha256_file

    def canonical(value: Any) -> Any:
        if isinstance(value, Path):
            return f"sha256:{sha256_file(value)}" if value.is_file() else str(value)
        return value

    doc = json.dumps({k: canonical(v) for k, v in sorted(values.items())}, sort_keys=True, default=str)
    return "sha256:" + hashlib.sha256(doc.encode()).hexdigest()


_VERSION_LINE = re.compile(r"""^version:[ \t]*(["']?)(?P<value>[^"'\s#]*)\1""", re.M)
_SEMVER = re.compile(r"(\d+)\.(\d+)\.(\d+)")
PARTS = ("major", "minor", "patch")


def bump_version(config: Path, part: str) -> tuple[str, str]:
    """Raise `version:` in mlship.yaml by one `part` (major, minor, patch), changing only that
    value (comments, quotes and order stay); (old, new)."""
    from mlship.errors import ConfigError

    if part not in PARTS:
        raise UsageError(f"cannot bump {part!r}", hint="Say major, minor or patch")
    if not config.is_file():
        raise ConfigError(f"config file not found: {config}", hint="Run mlship init, or pass -c PATH")
    text = config.read_text(encoding="utf-8")
    found = _VERSION_LINE.search(text)
    if found is None:
        raise ConfigError(f"{config}: no top-level `version:` to bump", hint="Add `version: 0.1.0` to it")
    old = found.group("value")
    numbers = _SEMVER.fullmatch(old)
    if numbers is None:
        raise ConfigError(f"{config}: version {old!r} is not MAJOR.MINOR.PATCH", hint="Set it by hand, e.g. 1.0.0")
    major, minor, patch = (int(n) for n in numbers.groups())
    new = {"major": f"{major + 1}.0.0", "minor": f"{major}.{minor + 1}.0", "patch": f"{major}.{minor}.{patch + 1}"}[part]
    atomic_write(config, (text[:found.start("value")] + new + text[found.end("value"):]).encode("utf-8"))
    return old, new
