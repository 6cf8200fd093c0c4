"""The shape of a saved profile (schema mlship.profile/v1), checked before it is used.

A profile is a file users keep, copy and edit; a missing key, a mistyped
value or counts that do not add up must be refused (exit 3, naming the field),
not crash later inside the statistics.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError, model_validator

from mlship.drift.sketch import DISTINCT_K
from mlship.errors import InvalidInputError

MAX_COUNT = 2 ** 53  # counts stay exact as floats (the statistics weigh with them)
MAX_BUCKET = 200_000  # |log(1e308) / log(GAMMA)| is about 177,000: beyond, not a bucket of a float

Count = Annotated[StrictInt, Field(ge=0, le=MAX_COUNT)]
Finite = Annotated[float, Field(strict=True, allow_inf_nan=False)]
Pair = Annotated[list[StrictInt], Field(min_length=2, max_length=2)]


class _Doc(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)


class _Buckets(_Doc):
    pos: list[Pair]
    neg: list[Pair]
    zero: Count

    @model_validator(mode="after")
    def _pairs(self) -> "_Buckets":
        for key, count in (*self.pos, *self.neg):
            if not -MAX_BUCKET <= key <= MAX_BUCKET or not 0 <= count <= MAX_COUNT:
                raise ValueError(f"bucket [{key}, {count}] is out of range")
        return self


class _Numeric(_Doc):
    n: Count
    mean: Finite
    m2: Annotated[Finite, Field(ge=0)]
    min: Finite | None
    max: Finite | None
    exact: list[Finite] | None = None
    buckets: _Buckets | None = None

    @model_validator(mode="after")
    def _consistent(self) -> "_Numeric":
        if (self.exact is None) == (self.buckets is None):
            raise ValueError("needs exactly one of 'exact' and 'buckets'")
        if (self.min is None or self.max is None) != (self.n == 0):
            raise ValueError("'min' and 'max' are null exactly when 'n' is 0")
        if self.exact is not None and len(self.exact) != self.n:
            raise ValueError(f"{len(self.exact)} exact values, but n is {self.n}")
        if self.buckets is not None:
            total = sum(c for _, c in self.buckets.pos) + sum(c for _, c in self.buckets.neg) + self.buckets.zero
            if total != self.n:
                raise ValueError(f"the buckets hold {total} values, but n is {self.n}")
        return self


class _Signals(_Doc):
    integral: bool
    increasing: bool | None
    first: Finite | None
    last: Finite | None
    distinct: Annotated[list[Annotated[StrictInt, Field(ge=0, lt=2 ** 64)]], Field(max_length=DISTINCT_K)] | None
    time_text: bool | None


class _Column(_Doc):
    kind: Literal["numeric", "categorical"] | None = None
    missing: Count
    non_numeric: Count
    numeric: _Numeric
    categories: dict[str, Count]
    other: Count
    codes: dict[str, Count] | None
    psi_edges: list[Finite] | None = None
    signals: _Signals | None = None  # profiles made before identifier and time columns were recognised

    @model_validator(mode="after")
    def _edges(self) -> "_Column":
        if self.psi_edges and any(a >= b for a, b in zip(self.psi_edges, self.psi_edges[1:])):
            raise ValueError("'psi_edges' are not increasing")
        return self


class _Profile(_Doc):
    rows: Count
    columns: dict[str, _Column]


def check_profile(doc: Any, source: str, schema: str) -> None:
    """Raise InvalidInputError (one line, naming the field) unless `doc` is a whole profile."""
    if not isinstance(doc, dict) or doc.get("schema") != schema:
        raise InvalidInputError(f"{source}: not a {schema} profile")
    try:
        _Profile.model_validate(doc)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = "".join(_printable(part) for part in error["loc"]).lstrip(".") or "(top level)"
        message = str(error["msg"]).removeprefix("Value error, ")
        raise InvalidInputError(f"{source}: not a valid {schema} profile: {where}: {message[:1].lower()}{message[1:]}",
                                hint="Make it again with mlship profile DATA -o FILE.json") from None


def _printable(part: Any) -> str:
    """A key from the file, short and on one line."""
    if isinstance(part, int):
        return f"[{part}]"
    text = "".join(c if c.isprintable() else "?" for c in str(part))
    return "." + (text if len(text) <= 60 else text[:57] + "...")
