"""The one rule for identifiers that end up in paths, keys, headers and markup.

Model names, versions, channels, device ids and rollout names all follow it,
whether they come from a flag or are read from a target someone else can write
to: letters, digits, '.', '_' and '-', starting with a letter or digit (so
never '.' or '..'), at most 128 characters.
"""

from __future__ import annotations

import re

from mlship.errors import InvalidInputError, MlshipError, UsageError

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


def is_valid_name(value: object) -> bool:
    """True when `value` is a string that follows the identifier rule."""
    return isinstance(value, str) and _NAME.fullmatch(value) is not None


def check_name(value: object, what: str, *, where: str | None = None,
               error: type[MlshipError] | None = None) -> str:
    """Return `value` if it follows the rule, else raise a one-line error.

    `what` names the field ("version", "channel"), `where` the place it was
    read from (a file or URL). Values read from a target are invalid input
    (exit 3); values given on the command line are usage errors (exit 2),
    the default when `where` is None.
    """
    if is_valid_name(value):
        return value  # type: ignore[return-value]
    kind = error or (UsageError if where is None else InvalidInputError)
    place = f" in {where}" if where else ""
    shown = repr(value) if len(repr(value)) <= 80 else repr(value)[:77] + "..."
    raise kind(f"{what} {shown}{place} is not a valid name: use letters, digits, '.', '_' and '-' "
               "(starting with a letter or digit, at most 128 characters)")
