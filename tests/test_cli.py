"""Global CLI behaviour: version, help, global flags, env variables, imports."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import typer.main
from typer._click.utils import make_default_short_help

from mlship import __version__
from mlship.cli import COMMANDS, app, hoist_global_flags
from tests.support import MODEL, ROOT, SAMPLE, run, run_process

HEAVY = ("onnxruntime", "scipy", "boto3", "docker", "onnx", "numpy", "pyarrow", "pydantic", "yaml")


def test_version():
    result = run_process("--version")
    assert result.code == 0
    assert result.stdout.strip() == f"mlship {__version__}"


def test_help_lists_commands_and_exit_codes():
    result = run_process("--help")
    assert result.code == 0
    text = " ".join(result.stdout.split())
    for word in ("check", "init", "config", "--json", "--quiet", "--verbose", "Exit codes:", "4 check failed"):
        assert word in text


def test_help_does_not_import_heavy_libraries():
    code = (
        "import sys\n"
        "from mlship.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        f"print([m for m in {HEAVY!r} if m in sys.modules])"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    loaded = json.loads(proc.stdout.strip().splitlines()[-1].replace("'", '"'))
    assert loaded == [], f"mlship --help imported {loaded}"


def test_subcommand_help_does_not_import_heavy_libraries():
    code = (
        "import sys\nfrom mlship.cli import main\n"
        "for cmd in (['check', '--help'], ['config', '--help'], ['init', '--help']):\n    main(cmd)\n"
        "print(sorted(m for m in ('onnxruntime', 'scipy', 'boto3', 'docker') if m in sys.modules))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert proc.stdout.strip().splitlines()[-1] == "[]"


@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_command_help_imports_no_model_libraries(name):
    # `mlship check --help` (and every other command's help) builds options, never loads a model:
    # python -X importtime names what was imported, in a fresh interpreter.
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "mlship", name, "--help"],
                          capture_output=True, text=True, cwd=ROOT, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0 and "--help" in proc.stdout
    imported = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    assert "mlship.cli" in imported  # the import trace is real
    heavy = sorted(m for m in imported if m.split(".")[0] in ("onnx", "onnxruntime", "numpy", "scipy", "pyarrow"))
    assert heavy == [], f"mlship {name} --help imported {heavy}"


def test_json_flag_after_the_command_gives_one_document():
    result = run("check", str(MODEL), "--json")
    assert result.code == 0
    doc = result.json()
    assert doc["model"]["sha256"] and doc["passed"] is True


def test_json_from_environment_variable():
    result = run_process("check", str(MODEL), env={"MLSHIP_JSON": "1"})
    assert result.code == 0
    assert json.loads(result.stdout)["signature"]["inputs"][0]["name"] == "X"


def test_quiet_prints_nothing_on_success_and_the_error_on_failure():
    ok = run("--quiet", "check", str(MODEL))
    assert ok.code == 0 and ok.stdout == "" and ok.stderr == ""
    bad = run("-q", "check", str(MODEL), "--sample", str(SAMPLE), "--labels", "label", "--min-metric", "accuracy=0.999")
    assert bad.code == 4 and bad.stdout == "" and "accuracy" in bad.stderr


def test_quiet_from_environment_variable():
    result = run_process("check", str(MODEL), env={"MLSHIP_QUIET": "true"})
    assert result.code == 0 and result.stdout == ""


def test_json_error_document_when_the_command_fails_early(tmp_path):
    result = run("--json", "check", str(tmp_path / "absent.onnx"))
    assert result.code == 3
    assert result.json() == {"error": {"message": result.json()["error"]["message"], "exit_code": 3}}
    assert "absent.onnx" in result.json()["error"]["message"]


def test_hoisting_keeps_arguments_after_double_dash():
    assert hoist_global_flags(["check", "m.onnx", "--json", "--", "--quiet"]) == [
        "--json", "check", "m.onnx", "--", "--quiet"]


def test_no_prompt_without_a_tty(tmp_path):
    # An existing file and no --force: refuse at once instead of asking.
    (tmp_path / "mlship.yaml").write_text("name: keep\n")
    result = run_process("init", cwd=tmp_path)
    assert result.code == 2
    assert (tmp_path / "mlship.yaml").read_text() == "name: keep\n"


def test_the_global_json_is_hoisted_after_every_command_including_drift():
    assert hoist_global_flags(["-c", "m.yaml", "drift", "-c", "cur", "--json"]) == [
        "--json", "-c", "m.yaml", "drift", "-c", "cur"]
    assert hoist_global_flags(["drift", "--json", "-c", "cur"]) == ["--json", "drift", "-c", "cur"]
    assert hoist_global_flags(["check", "m.onnx", "--json"]) == ["--json", "check", "m.onnx"]


def test_help_lists_every_command_from_the_table_without_importing_one():
    code = (
        "import sys\nfrom mlship.cli import main\nmain(['--help'])\n"
        "print(sorted(m for m in sys.modules if m.startswith('mlship.cli.') and m != 'mlship.cli.lazy'))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert proc.stdout.strip().splitlines()[-1] == "[]"
    listed = [line.split()[0] for line in proc.stdout.split("Commands:")[1].splitlines() if line.startswith("  ")]
    assert listed[:len(COMMANDS)] == list(COMMANDS)


@pytest.mark.parametrize("name", list(COMMANDS))
def test_the_table_says_what_the_command_says(name):
    # The help line comes from the table; it must match the command's own docstring.
    command = typer.main.get_command(app).commands[name]
    for limit in (45, 80, 300):
        assert make_default_short_help(COMMANDS[name].short_help, limit) == command.get_short_help_str(limit)
