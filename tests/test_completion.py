"""Shell completion: the scripts for bash, zsh and fish, and names from mlship.yaml,
through the real shells and the real `mlship` command."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import ROOT

SHELLS = ("bash", "zsh", "fish")
BIN = Path(sys.executable).parent
PROJECT = """\
name: readmission
targets:
  cloud: {type: s3, url: s3://models/readmission}
  onprem: {type: file, url: file:///srv/models}
"""


def _env(home: Path, **extra: str) -> dict[str, str]:
    """The tests' interpreter's `mlship` first on PATH, this tree importable, a scratch HOME."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("_MLSHIP_COMPLETE")}
    env.update(PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}", HOME=str(home),
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])), **extra)
    return env


def _in_shell(shell: str, script: str, cwd: Path, home: Path) -> subprocess.CompletedProcess:
    binary = shutil.which(shell)
    assert binary, f"{shell} is not installed (tests/run installs it)"
    # `; true` keeps the shell as mlship's parent process: typer detects the shell from it.
    return subprocess.run([binary, "-c", f"{script}; true"], capture_output=True, text=True, cwd=cwd,
                          env=_env(home), stdin=subprocess.DEVNULL, timeout=120)


@pytest.fixture
def project(tmp_path):
    (tmp_path / "mlship.yaml").write_text(PROJECT)
    (tmp_path / ".mlship" / "rollouts").mkdir(parents=True)
    (tmp_path / ".mlship" / "rollouts" / "fraud.json").write_text("{}")
    (tmp_path / ".mlship" / "rollouts" / "fraud.lock").write_text("")
    (tmp_path / "home").mkdir()
    return tmp_path


MARKERS = {
    "bash": ["complete -o default -F _mlship_completion mlship", "_MLSHIP_COMPLETE=complete_bash"],
    "zsh": ["#compdef mlship", "_MLSHIP_COMPLETE=complete_zsh"],
    "fish": ["complete --command mlship", "_MLSHIP_COMPLETE=complete_fish"],
}


@pytest.mark.parametrize("shell", SHELLS)
def test_show_completion_prints_the_script_for_the_shell_it_runs_in(shell, project):
    proc = _in_shell(shell, "mlship --show-completion", project, project / "home")
    assert proc.returncode == 0, proc.stderr
    for marker in MARKERS[shell]:
        assert marker in proc.stdout
    others = [m for s in SHELLS if s != shell for m in MARKERS[s]]
    assert not any(marker in proc.stdout for marker in others)


@pytest.mark.parametrize("shell,installed", [("bash", ".bash_completions/mlship.sh"), ("zsh", ".zfunc/_mlship"),
                                             ("fish", ".config/fish/completions/mlship.fish")])
def test_install_completion_writes_the_script_where_the_shell_reads_it(shell, installed, project):
    home = project / "home"
    proc = _in_shell(shell, "mlship --install-completion", project, home)
    assert proc.returncode == 0, proc.stderr
    assert MARKERS[shell][1] in (home / installed).read_text()
    if shell == "bash":
        assert ".bash_completions/mlship.sh" in (home / ".bashrc").read_text()


def _bash_complete(project: Path, words: str) -> list[str]:
    """Source the installed script in a real bash and run its completion function on WORDS."""
    script = subprocess.run(["bash", "-c", "mlship --show-completion; true"], capture_output=True, text=True,
                            env=_env(project / "home"), cwd=project, check=True).stdout
    (project / "mlship.bash").write_text(script)
    line = (f"source {project / 'mlship.bash'}; COMP_WORDS=({words}); COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1)); "
            "_mlship_completion mlship; printf '%s\\n' \"${COMPREPLY[@]}\"")
    proc = _in_shell("bash", line, project, project / "home")
    assert proc.returncode == 0, proc.stderr
    return [w for w in proc.stdout.splitlines() if w]


def test_bash_completes_target_names_from_mlship_yaml(project):
    assert _bash_complete(project, "mlship push --to ''") == ["cloud", "onprem"]
    assert _bash_complete(project, "mlship pull NAME@stable --from o") == ["onprem"]
    assert _bash_complete(project, "mlship edge sync --from c") == ["cloud"]
    (project / "other.yaml").write_text("targets:\n  lab: {type: file, url: file:///lab}\n")
    assert _bash_complete(project, "mlship -c other.yaml promote m 1 --to ''") == ["lab"]


def test_bash_completes_rollout_names_and_commands(project):
    assert _bash_complete(project, "mlship rollout status ''") == ["readmission", "fraud"]
    assert _bash_complete(project, "mlship ro") == ["rollout"]
    assert _bash_complete(project, "mlship v") == ["versions", "version"]


def test_fish_completes_target_names_with_their_urls(project):
    line = "mlship --show-completion | source; complete -C 'mlship push --to '"
    proc = _in_shell("fish", line, project, project / "home")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["cloud\ts3://models/readmission", "onprem\tfile:///srv/models"]


def test_zsh_gets_target_names_from_the_real_command(project):
    # What the zsh script runs on <TAB> (zsh's completion widgets need a terminal).
    proc = subprocess.run(["mlship"], capture_output=True, text=True, cwd=project, timeout=120,
                          env=_env(project / "home", _MLSHIP_COMPLETE="complete_zsh",
                                   _TYPER_COMPLETE_ARGS="mlship push --to "))
    assert proc.returncode == 0
    assert '"cloud":"s3\\\\://models/readmission"' in proc.stdout and '"onprem"' in proc.stdout


def test_a_broken_mlship_yaml_completes_nothing_and_prints_no_error(project):
    (project / "mlship.yaml").write_text("targets: [\n")
    assert _bash_complete(project, "mlship push --to ''") == []


def test_completion_imports_no_model_libraries_nor_the_config_model(project):
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "mlship"], capture_output=True, text=True,
                          cwd=project, timeout=120,
                          env=_env(project / "home", _MLSHIP_COMPLETE="complete_bash",
                                   COMP_WORDS="mlship push --to ", COMP_CWORD="3"))
    assert proc.stdout.split() == ["cloud", "onprem"]
    imported = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    assert "mlship.cli.completion" in imported
    heavy = sorted(m for m in imported if m.split(".")[0] in ("onnx", "onnxruntime", "numpy", "boto3", "docker")
                   or m in ("mlship.config", "mlship.plugins"))
    assert heavy == []
