"""The `mlship` command: global options, command groups, exit codes.

Each command group lives in its own small module, named in `COMMANDS` and
imported only when it runs.
`main` is the one place where exceptions become exit codes and messages.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Optional

import typer
from typer.exceptions import TyperException

from mlship import __version__
from mlship.cli.lazy import LazyCommand, LazyGroup
from mlship.console import Console
from mlship.errors import ExitCode, MlshipError, UsageError, exit_code_for

# Options accepted anywhere on the command line (`mlship check m.onnx --json`).
GLOBAL_FLAGS = {"--json", "--quiet", "-q", "--verbose", "-v", "--plain"}


@dataclass
class State:
    """What the global options set, handed to every command via ctx.obj."""

    console: Console = field(default_factory=Console)
    config_path: str | None = None
    # The command leaves nothing for the interpreter's teardown to do (every file closed, every
    # thread done): the process may end without it (see `run`).
    quick_exit: bool = False


# Every command: where it lives and its line in `mlship --help`. A module is
# imported only when its command runs (mlship --help stays fast); the order is
# the order of `mlship --help`.
COMMANDS = {
    "check": LazyCommand("mlship.cli.check", "check",
                          "Check a model: validity, signature, smoke run, latency, baseline, quality floor."),
    "serve": LazyCommand("mlship.cli.serve", "serve",
                          "Serve a model: Open Inference Protocol (/v2), /predict, /metrics."),
    "predict": LazyCommand("mlship.cli.predict", "predict", "Score data files with a model, streaming in chunks."),
    "build": LazyCommand("mlship.cli.build", "build",
                          "Build an artifact for the model: --image (a serving container image) or --edge (a bundle)."),
    "push": LazyCommand("mlship.cli.push", "push",
                          "Push an artifact to one or more targets (cloud, on-prem, both), or an image to a registry."),
    "promote": LazyCommand("mlship.cli.targets", "promote",
                          "Move a channel pointer (NAME/channels/CHANNEL.json) to VERSION, atomically."),
    "pull": LazyCommand("mlship.cli.targets", "pull",
                          "Download a version and verify every sha256 (a mismatch exits 3, leaving nothing)."),
    "drift": LazyCommand("mlship.cli.drift", "drift",
                          "Compare current data or prediction logs with a reference: drift, performance, operations."),
    "profile": LazyCommand("mlship.cli.drift", "profile",
                          "Profile a reference once (or in pieces, then merge the pieces' profiles)."),
    "init": LazyCommand("mlship.cli.init", "init",
                          "Write a commented mlship.yaml from mlship's template, and with --ci a CI pipeline (check "
                          "-> build -> push to staging -> rollout -> drift gate)."),
    "demo": LazyCommand("mlship.cli.demo", "demo",
                          "Run check, build, push, batch scoring, serving, a shadow and canary rollout, and a drift "
                          "report on a synthetic readmission model, with no external services."),
    "targets": LazyCommand("mlship.cli.targets", "app", "Where artifacts go."),
    "versions": LazyCommand("mlship.cli.versions", "app", "Builds and pushes recorded in the versions store."),
    "version": LazyCommand("mlship.cli.versions", "version_app",
                          "Change the version in mlship.yaml (for Makefiles: mlship version bump patch)."),
    "keys": LazyCommand("mlship.cli.keys", "app", "Signing keys for edge bundles."),
    "edge": LazyCommand("mlship.cli.edge", "app",
                          "On the device: sync bundles from a target, roll back, serve offline."),
    "deploy": LazyCommand("mlship.cli.deploy", "app",
                          "Run a version in a rollout slot (docker, or a runtime plugin); status, stop and gc of what "
                          "runs."),
    "rollout": LazyCommand("mlship.cli.rollout", "app",
                          "Staged rollouts (blue-green, canary, shadow) through nginx or SageMaker, one step per "
                          "command."),
    "config": LazyCommand("mlship.cli.config", "app", "Show mlship.yaml's schema and the effective config."),
    "doctor": LazyCommand("mlship.cli.doctor", "doctor",
                          "Check the installation, the configured services and the credentials found (exit 7: one is "
                          "unreachable)."),
}


class _Root(LazyGroup):
    TABLE = COMMANDS


app = typer.Typer(
    name="mlship",
    cls=_Root,
    help="Check, package, push, serve, roll out and monitor ONNX models.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    # Plain help: typer's rich help imports rich.markdown and doubles start-up time.
    rich_markup_mode=None,
    epilog=(
        "--json, --quiet, --verbose and --plain may also follow the command (mlship check m.onnx --json). "
        "Exit codes: 0 ok, 1 internal error, 2 usage or config, 3 invalid input, "
        "4 check failed, 5 rollout paused, 6 rollout aborted, 7 external service failed, 130 interrupted."
    ),
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"mlship {__version__}")
        raise typer.Exit()


@app.callback()
def _global_options(
    ctx: typer.Context,
    json_output: bool = typer.Option(False, "--json", envvar="MLSHIP_JSON", help="Print one JSON document on stdout."),
    quiet: bool = typer.Option(False, "--quiet", "-q", envvar="MLSHIP_QUIET", help="Print errors only."),
    verbose: bool = typer.Option(False, "--verbose", "-v", envvar="MLSHIP_VERBOSE", help="Show debug notes and tracebacks."),
    plain_output: bool = typer.Option(False, "--plain", envvar="MLSHIP_PLAIN",
                                      help="Output for logs, as without a terminal: plain tables, no colour, "
                                           "progress as a line every 10 s."),
    config: Optional[str] = typer.Option(
        None, "--config", "-c", envvar="MLSHIP_CONFIG", help="Path to mlship.yaml (default: ./mlship.yaml)."
    ),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Show the version."),
) -> None:
    """Global options, shared by every command."""
    state: State = ctx.ensure_object(State)
    console = state.console
    console.json_output = console.json_output or json_output
    console.quiet = console.quiet or quiet
    console.verbose = console.verbose or verbose
    console.plain_output = console.plain_output or plain_output
    state.config_path = config


def hoist_global_flags(argv: list[str]) -> list[str]:
    """Move global flags placed after a command to the front, so click sees them."""
    if "--" in argv:
        cut = argv.index("--")
        head, tail = argv[:cut], argv[cut:]
    else:
        head, tail = argv, []
    flags = [a for a in head if a in GLOBAL_FLAGS]
    rest = [a for a in head if a not in GLOBAL_FLAGS]
    return flags + rest + tail


def _refuse_json_value(argv: list[str]) -> None:
    """`--json=FILE` (drift's old report option): --json is a flag everywhere."""
    head = argv[:argv.index("--")] if "--" in argv else argv
    given = next((a for a in head if a.startswith("--json=")), None)
    if given is not None:
        raise UsageError(f"{given}: --json takes no value",
                         hint=f"For drift's report file use --json-out {given.partition('=')[2]}")


def main(argv: list[str] | None = None, console: Console | None = None, state: State | None = None) -> int:
    """Run mlship; returns (and, as a script, exits with) the exit code."""
    args = hoist_global_flags(list(sys.argv[1:] if argv is None else argv))
    state = state or State(console=console or Console())
    try:
        _refuse_json_value(args)
        # Without standalone mode typer returns the code of an Exit it caught
        # (--help, --version, and 130 for Ctrl-C) instead of raising it.
        code = app(args=args, prog_name="mlship", standalone_mode=False, obj=state)
        if code == ExitCode.INTERRUPTED:
            state.console.error("interrupted", exit_code=ExitCode.INTERRUPTED)
        return code if isinstance(code, int) else ExitCode.OK
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        state.console.error("interrupted", exit_code=ExitCode.INTERRUPTED)
        return ExitCode.INTERRUPTED
    except TyperException as exc:
        return _usage_error(exc, state.console)
    except MlshipError as exc:
        if state.console.verbose:
            state.console.traceback()
        state.console.error(exc.one_line(), exit_code=exc.exit_code)
        return exc.exit_code
    except KeyboardInterrupt:
        state.console.error("interrupted", exit_code=ExitCode.INTERRUPTED)
        return ExitCode.INTERRUPTED
    except Exception as exc:  # a bug: say so, traceback with --verbose
        if _refused_options(exc):
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"]) or exc.title
            state.console.error(f"invalid option {where.replace('_', '-')}: {err['msg']}", exit_code=ExitCode.USAGE)
            return ExitCode.USAGE
        code = exit_code_for(exc)
        if state.console.verbose:
            state.console.traceback()
        state.console.error(
            f"internal error: {type(exc).__name__}: {exc}. Run again with --verbose for the traceback "
            "and report it",
            exit_code=code,
        )
        return code


def _refused_options(exc: Exception) -> bool:
    """Options that a core pydantic model refused: a usage error, not a bug.
    (pydantic is looked up, not imported: `mlship --help` must not load it.)"""
    pydantic = sys.modules.get("pydantic")
    return pydantic is not None and isinstance(exc, pydantic.ValidationError)


def _usage_error(exc: TyperException, console: Console) -> int:
    """Typer's own errors (unknown option, missing argument): exit 2, one line."""
    ctx = getattr(exc, "ctx", None)
    where = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
    console.error(f"{exc.format_message()}{where}", exit_code=ExitCode.USAGE)
    return ExitCode.USAGE if exc.exit_code == 2 else exc.exit_code


def run() -> None:
    """Console-script entry point."""
    state = State()
    code = main(state=state)
    if state.quick_exit:
        _quick_exit(code)
    sys.exit(code)


def _quick_exit(code: int) -> None:
    """End the process without the interpreter's teardown, which frees every object one by one:
    after a push, botocore's parsed service and endpoint models make that ~0.1 s of one core
    (bench_push). The exit handlers run and the output is flushed first; with a thread still
    running, or output that cannot be flushed, the usual exit is taken instead."""
    import atexit
    import os
    import threading

    if any(t is not threading.main_thread() and not t.daemon for t in threading.enumerate()):
        return
    try:
        atexit._run_exitfuncs()
        sys.stdout.flush()
        sys.stderr.flush()
    except BaseException:  # noqa: BLE001 - a closed pipe and the like: the usual exit reports it
        return
    os._exit(int(code))
