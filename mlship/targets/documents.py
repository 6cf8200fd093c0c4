"""The documents a target keeps about artifacts: NAME/index.json and NAME/channels/CHANNEL.json.

Anyone who can write to the target can write these, so every read is untrusted
input: the JSON is parsed strictly (types as mlship writes them), versions
follow the identifier rule of mlship/names.py, file paths stay inside their
version, and any problem is one invalid-input error (exit 3) naming the target
and the key. Nothing is written from a document that failed to parse.
"""

from __future__ import annotations

import json
from typing import Any, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from mlship.errors import InvalidInputError
from mlship.names import check_name, is_valid_name

HISTORY = 20  # promotions a channel remembers


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _version(value: str) -> str:
    if not is_valid_name(value):
        raise ValueError(f"{_show(value)} is not a valid name (letters, digits, '.', '_', '-')")
    return value


def check_relative_path(value: str) -> str:
    """`value` if it is a relative POSIX path that stays inside its directory, else ValueError."""
    parts = value.split("/")
    if (not value or len(value) > 4096 or any(ord(c) < 0x20 or c == "\\" for c in value)
            or any(p in ("", ".", "..") for p in parts)):
        raise ValueError(f"{_show(value)} is not a relative path inside the version")
    return value


class _Doc(BaseModel):
    # Strict: exactly the JSON types mlship writes; unknown fields are kept (newer writers).
    model_config = ConfigDict(extra="allow", strict=True)


class FileEntry(_Doc):
    path: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size: int = Field(ge=0)

    @field_validator("path")
    @classmethod
    def _inside(cls, value: str) -> str:
        return check_relative_path(value)


class VersionEntry(_Doc):
    version: str
    files: list[FileEntry] = Field(min_length=1)
    size: Optional[int] = None
    created: Optional[str] = None

    @field_validator("version")
    @classmethod
    def _name_rule(cls, value: str) -> str:
        return _version(value)

    @model_validator(mode="after")
    def _distinct_paths(self) -> "VersionEntry":
        # Two entries for one path, or a file where another needs a directory, cannot both be pulled.
        paths = {f.path for f in self.files}
        if len(paths) != len(self.files) or any(p.rsplit("/", 1)[0] in paths for p in paths if "/" in p):
            raise ValueError(f"version {self.version} lists a file path twice or as a directory of another")
        return self


class Index(_Doc):
    name: Optional[str] = None
    versions: list[VersionEntry]

    def find(self, version: str) -> VersionEntry | None:
        return next((v for v in self.versions if v.version == version), None)


class Promotion(_Doc):
    version: str
    updated: Optional[str] = None
    revision: Optional[int] = None

    @field_validator("version")
    @classmethod
    def _name_rule(cls, value: str) -> str:
        return _version(value)


class Channel(_Doc):
    name: Optional[str] = None
    channel: Optional[str] = None
    version: str
    updated: Optional[str] = None
    revision: int = Field(0, ge=0)
    previous: Optional[str] = None
    history: list[Promotion] = []

    @field_validator("version")
    @classmethod
    def _name_rule(cls, value: str) -> str:
        return _version(value)

    @field_validator("previous")
    @classmethod
    def _previous(cls, value: Optional[str]) -> Optional[str]:
        return None if value is None else _version(value)


def parse(model: type[_Doc], raw: bytes, where: str) -> Any:
    """`raw` as `model`, or an invalid-input error naming `where` (the target and key)."""
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        err = exc.errors(include_url=False, include_input=False)[0]
        if err["type"] == "json_invalid":
            detail = str(err.get("ctx", {}).get("error", "")).splitlines()[0:1]
            raise InvalidInputError(f"{where} is not valid JSON" + (f" ({detail[0][:120]})" if detail else ""),
                                    hint="Repair or remove it in the target") from None
        loc = ".".join(str(p) for p in err["loc"]) or "the document"
        msg = err["msg"].removeprefix("Value error, ").splitlines()[0][:200]
        raise InvalidInputError(f"{where}: {loc}: {msg}", hint="Repair or remove it in the target") from None


def dump(doc: _Doc) -> bytes:
    return json.dumps(doc.model_dump(mode="json"), indent=1).encode()


def parse_ref(ref: str) -> tuple[str, str | None, str | None]:
    """NAME, NAME:VERSION (NAME: is the latest) or NAME@CHANNEL -> (name, version, channel).

    Every part follows the identifier rule; a bad one is a usage error (exit 2)."""
    if "@" in ref:
        name, channel = ref.split("@", 1)
        return check_name(name, "name"), None, check_name(channel, "channel")
    name, _, version = ref.partition(":")
    check_name(name, "name")
    return name, (check_name(version, "version") if version else None), None
