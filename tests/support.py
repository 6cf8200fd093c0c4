"""Helpers for tests: run the CLI in-process with captured output."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlship.cli import main
from mlship.console import Console

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "breast-cancer"
MODEL = EXAMPLE / "model.onnx"
SAMPLE = EXAMPLE / "sample.csv"


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


def run(*args: str) -> Result:
    """Run `mlship ARGS` in this process with a fresh Console over buffers."""
    out, err = io.StringIO(), io.StringIO()
    code = main(list(args), console=Console(stdout=out, stderr=err, stdin=io.StringIO()))
    return Result(int(code), out.getvalue(), err.getvalue())


def run_process(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> Result:
    """Run `python -m mlship ARGS` as a real process (exit code, no TTY)."""
    full_env = {**os.environ, **(env or {})}
    proc = subprocess.run(
        [sys.executable, "-m", "mlship", *args],
        capture_output=True, text=True, env=full_env, cwd=cwd, stdin=subprocess.DEVNULL, timeout=120,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)
