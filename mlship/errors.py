"""One exception root for mlship; each error carries its exit code.

The exit-code table is the contract with CI scripts and Makefiles (see the
README's "Exit codes" section); `exit_code_for` is the one place that maps any
exception to it.
"""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    """Process exit codes, shared by every command."""

    OK = 0
    INTERNAL = 1
    USAGE = 2
    INVALID_INPUT = 3
    CHECK_FAILED = 4
    ROLLOUT_PAUSED = 5
    NOT_ENOUGH_DATA = 5  # drift: nothing could be judged yet (waiting for more data)
    ROLLOUT_ABORTED = 6
    SERVICE = 7
    INTERRUPTED = 130


class MlshipError(Exception):
    """Root of every error mlship raises on purpose.

    `message` says what went wrong and where; `hint` says what to do.
    """

    exit_code: ExitCode = ExitCode.INTERNAL

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def one_line(self) -> str:
        """The single line shown to people: message, then the hint."""
        text = self.message.rstrip(".")
        return f"{text}. {self.hint}" if self.hint else text


class UsageError(MlshipError):
    """Bad flags or arguments."""

    exit_code = ExitCode.USAGE


class ConfigError(UsageError):
    """mlship.yaml or an MLSHIP_* variable is invalid."""


class MissingExtraError(UsageError):
    """An optional dependency is not installed."""


class InvalidInputError(MlshipError):
    """A model, data file, bundle or log is unreadable or malformed."""

    exit_code = ExitCode.INVALID_INPUT


class CheckFailedError(MlshipError):
    """A check ran and found a problem (threshold, drift, gate)."""

    exit_code = ExitCode.CHECK_FAILED


class RolloutPausedError(MlshipError):
    """A rollout waits for a person or for more data."""

    exit_code = ExitCode.ROLLOUT_PAUSED


class NotEnoughDataError(MlshipError):
    """A check had too little data to judge (drift): wait for more, then run it again."""

    exit_code = ExitCode.NOT_ENOUGH_DATA


class RolloutAbortedError(MlshipError):
    """A rollout was aborted or rolled back."""

    exit_code = ExitCode.ROLLOUT_ABORTED


class ServiceError(MlshipError):
    """An external service failed: Docker engine, registry, S3, nginx, SageMaker."""

    exit_code = ExitCode.SERVICE


class RouterRefusedError(ServiceError):
    """A router refused a change and kept its previous state (nginx -t, a rejected API call)."""


def exit_code_for(exc: BaseException) -> ExitCode:
    """Map any exception to the documented exit code."""
    if isinstance(exc, MlshipError):
        return exc.exit_code
    if isinstance(exc, KeyboardInterrupt):
        return ExitCode.INTERRUPTED
    return ExitCode.INTERNAL
