"""The versions store: an append-only record of every build and push.

`.mlship/versions.jsonl` beside mlship.yaml (or `--store`), one JSON object
per line: builds (`event: build`) and pushes (`event: push`). The file is
rewritten whole through a temporary file and a rename, so a reader never
sees a half-written record, and appends hold a lock (`versions.jsonl.lock`
beside it) across the read and the rename, so concurrent builds lose none.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from mlship.errors import InvalidInputError, ServiceError
from mlship.fsutil import atomic_write, file_lock

STORE = Path(".mlship") / "versions.jsonl"


class BuildRecord(BaseModel):
    event: Literal["build"] = "build"
    name: str
    version: str
    kind: Literal["image", "bundle"]
    model_sha256: str
    artifact: str = Field(description="Image id, or the bundle's sha256.")
    tag: str | None = None
    size_bytes: int | None = None
    git_commit: str | None = None
    builder: str
    created: str = Field(default_factory=lambda: now())


class PushRecord(BaseModel):
    event: Literal["push"] = "push"
    name: str
    version: str
    artifact: str
    reference: str
    digest: str | None = None
    created: str = Field(default_factory=lambda: now())


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

    def append(self, record: BuildRecord | PushRecord) -> None:
        """Add one record; concurrent appends (parallel CI jobs) each keep theirs."""
        lock = self.path.with_name(self.path.name + ".lock")
        busy = lambda p: ServiceError(f"{self.path} is locked by another mlship ({p})",  # noqa: E731
                                      hint="Wait for it to finish, then run the command again")
        with file_lock(lock, busy):  # read and rename under one lock: no append is lost
            old = self.path.read_bytes() if self.path.exists() else b""
            if old and not old.endswith(b"\n"):
                old += b"\n"
            atomic_write(self.path, old + record.model_dump_json().encode() + b"\n")

    def versions(self, name: str | None = None) -> list[dict[str, Any]]:
        """Builds with their pushes folded in, oldest first."""
        builds = [r for r in self.records() if r.get("event") == "build" and (name is None or r["name"] == name)]
        pushes = [r for r in self.records() if r.get("event") == "push"]
        for build in builds:
            build["pushed"] = [{"reference": p["reference"], "digest": p.get("digest"), "created": p["created"]}
                               for p in pushes if p["artifact"] == build["artifact"] and p["name"] == build["name"]]
        return builds

    def find(self, name: str, version: str | None = None, kind: str | None = None) -> dict[str, Any] | None:
        matches = [b for b in self.versions(name) if (version is None or b["version"] == version)
                   and (kind is None or b["kind"] == kind)]
        return matches[-1] if matches else None

    def next_version(self, name: str) -> str:
        """The last version of `name` with its last number raised by one (0.1.0 first)."""
        last = next((b["version"] for b in reversed(self.versions(name))), None)
        if last is None:
            return "0.1.0"
        match = re.fullmatch(r"(.*?)(\d+)", last)
        return f"{match.group(1)}{int(match.group(2)) + 1}" if match else f"{last}.1"
