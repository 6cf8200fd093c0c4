"""The exit-code table: one place maps exceptions to codes (mlship.errors)."""

from __future__ import annotations

import pytest

from mlship import errors
from mlship.deploy.base import DeployError
from mlship.errors import ExitCode, exit_code_for
from mlship.versions import VersionExistsError
from tests.support import MODEL, run

TABLE = [
    (errors.MlshipError("x"), 1),
    (RuntimeError("bug"), 1),
    (errors.UsageError("x"), 2),
    (errors.ConfigError("x"), 2),
    (VersionExistsError("x"), 2),  # other content under a built version: never 7 (CI retries 7)
    (errors.MissingExtraError("x"), 2),
    (errors.InvalidInputError("x"), 3),
    (errors.CheckFailedError("x"), 4),
    (errors.RolloutPausedError("x"), 5),
    (errors.RolloutAbortedError("x"), 6),
    (errors.ServiceError("x"), 7),
    (DeployError("x", logs=["a log line"]), 7),
    (KeyboardInterrupt(), 130),
]


@pytest.mark.parametrize("exc,code", TABLE, ids=[type(e).__name__ for e, _ in TABLE])
def test_exit_code_for_each_error(exc, code):
    assert exit_code_for(exc) == code


@pytest.mark.parametrize("exc,code", TABLE, ids=[type(e).__name__ for e, _ in TABLE])
def test_main_exits_with_the_code_of_what_a_command_raised(monkeypatch, exc, code):
    import mlship.check

    def boom(*_a, **_k):
        raise exc

    monkeypatch.setattr(mlship.check, "run_check", boom)
    result = run("check", str(MODEL))
    assert result.code == code
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("error:")
    assert len(result.stderr.strip().splitlines()) == 1


def test_internal_error_names_itself_and_asks_for_verbose(monkeypatch):
    import mlship.check

    monkeypatch.setattr(mlship.check, "run_check", lambda *a, **k: 1 / 0)
    result = run("check", str(MODEL))
    assert result.code == ExitCode.INTERNAL
    assert "ZeroDivisionError" in result.stderr and "--verbose" in result.stderr
    verbose = run("--verbose", "check", str(MODEL))
    assert "Traceback" in verbose.stderr and "ZeroDivisionError" in verbose.stderr


def test_hint_follows_the_message():
    err = errors.InvalidInputError("model file not found: m.onnx.", hint="Check the path")
    assert err.one_line() == "model file not found: m.onnx. Check the path"


def test_click_usage_errors_exit_2():
    assert run("check", "--no-such-flag").code == 2
    assert run("no-such-command").code == 2
