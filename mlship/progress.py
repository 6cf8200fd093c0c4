"""The progress interface cores report to (the CLI passes rich bars), and its do-nothing default."""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    """What the CLI hands in to show progress."""

    def start(self, total: int | None) -> None: ...

    def advance(self, n: int) -> None: ...


class NoProgress:
    def start(self, total: int | None) -> None:
        pass

    def advance(self, n: int) -> None:
        pass
