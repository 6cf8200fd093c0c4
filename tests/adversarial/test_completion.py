"""Shell completion (mlship/cli/completion.py) and every command's mlship.yaml reader fed a
hostile, huge or exploding mlship.yaml.

Found: target names with a newline, spaces or shell text (`x\\nplain,$(touch F)`,
`c;rm -rf ~`, backquotes) were offered as completions, a newline adding fake entries to
bash's protocol; zsh's and fish's help texts showed the credentials in a target's URL
and its terminal escapes; nine nested aliases (a "billion laughs" YAML bomb) hung every
<TAB> and every command reading mlship.yaml until killed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support import ROOT, run

HOSTILE = """\
targets:
  ok: {type: s3, url: "s3://AKIAIOSFODNN7EXAMPLE:wJalrXUtnFEMIK7MDENG@bucket/x"}
  ok2: {type: file, url: "https://user:hunter2@host/p?X-Amz-Signature=abc123&X-Amz-Credential=AKIAX"}
  ok3: {type: file, url: "line1\\nline2\\u001b]0;pwned\\u0007\\u001b[31m"}
  ok4: {type: file, url: [not, a, string]}
  "x\\nplain,$(touch /tmp/pwned)": {type: file, url: "file:///x"}
  "c;rm -rf ~": {type: file, url: "file:///x"}
  "d`id`": {type: file, url: "file:///x"}
  "a b": {type: file, url: "file:///x"}
  "../up": {type: file, url: "file:///x"}
  7: {type: file, url: "file:///x"}
"""

BOMB = "".join(f"{a}: &{a} [{', '.join([f'*{b}'] * 9) if b else ', '.join(['lol'] * 9)}]\n"
               for a, b in zip("abcdefghi", ["", *"abcdefgh"]))


def _complete(project: Path, shell: str, words: str) -> subprocess.CompletedProcess:
    """What the shell's completion script runs on <TAB> (the real `mlship` process)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("_MLSHIP_COMPLETE")}
    env.update(_MLSHIP_COMPLETE=f"complete_{shell}", COMP_WORDS=words, COMP_CWORD=str(len(words.split())),
               _TYPER_COMPLETE_ARGS=words,
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])))
    return subprocess.run([sys.executable, "-m", "mlship"], capture_output=True, text=True, cwd=project, env=env,
                          stdin=subprocess.DEVNULL, timeout=60)


def test_bash_completes_only_names_that_are_safe_in_a_shell(tmp_path):
    (tmp_path / "mlship.yaml").write_text(HOSTILE)
    proc = _complete(tmp_path, "bash", "mlship push --to ")
    assert proc.returncode == 0 and proc.stderr == ""
    assert proc.stdout.split("\n") == ["ok", "ok2", "ok3", "ok4", ""]


def test_zsh_help_texts_are_one_line_without_credentials_or_escapes(tmp_path):
    (tmp_path / "mlship.yaml").write_text(HOSTILE)
    proc = _complete(tmp_path, "zsh", "mlship push --to ")
    assert proc.returncode == 0
    out = proc.stdout
    for secret in ("wJalrXUtnFEMIK7MDENG", "hunter2", "abc123", "AKIAX"):
        assert secret not in out
    assert "\x1b" not in out and "\x07" not in out
    entries = out.strip().split("\n")  # one entry a line: a line break in a name or help added entries
    assert len(entries) == 4 and entries[2] == '"ok3":"line1 line2]0;pwned[31m"' and entries[3].startswith('"ok4"')
    assert "rm -rf" not in out and "$(touch" not in out and "`id`" not in out


def test_rollout_names_from_files_and_name_are_filtered(tmp_path):
    (tmp_path / "mlship.yaml").write_text("name: 'a$(id)'\n")
    state = tmp_path / ".mlship" / "rollouts"
    state.mkdir(parents=True)
    for stem in ("good", "has space", "semi;colon", "-dash"):
        (state / f"{stem}.json").write_text("{}")
    proc = _complete(tmp_path, "bash", "mlship rollout status ")
    assert proc.returncode == 0 and proc.stdout.split() == ["good"]


@pytest.mark.parametrize("text", [BOMB + "name: *i\ntargets: {t: {url: *i}}\n",
                                  "targets: &t {a: {url: x}, b: *t}\n",  # an alias inside itself
                                  "targets:\n" + "".join(f"  t{i}: {{url: x}}\n" for i in range(60_000))])
def test_a_bomb_or_a_huge_file_completes_nothing_at_once(tmp_path, text):
    (tmp_path / "mlship.yaml").write_text(text)
    started = time.monotonic()
    proc = _complete(tmp_path, "bash", "mlship push --to ")
    assert proc.returncode == 0 and proc.stdout.strip() == "" and proc.stderr == ""
    assert time.monotonic() - started < 50  # it hung until killed; the subprocess timeout is 60 s


def test_an_unreadable_mlship_yaml_completes_nothing(tmp_path):
    if os.geteuid() == 0:
        (tmp_path / "mlship.yaml").mkdir()  # root reads any file: a directory is unreadable as a file
    else:
        (tmp_path / "mlship.yaml").write_text("targets: {a: {url: x}}\n")
        (tmp_path / "mlship.yaml").chmod(0)
    proc = _complete(tmp_path, "bash", "mlship push --to ")
    assert proc.returncode == 0 and proc.stdout.strip() == "" and proc.stderr == ""


@pytest.mark.parametrize("text,words", [(BOMB + "name: *i\n", ["YAML bomb"]),
                                        ("targets: &t {a: {url: x}, b: *t}\n", ["alias refers to a node that contains it"])])
def test_commands_refuse_a_yaml_bomb_at_once(tmp_path, monkeypatch, text, words):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mlship.yaml").write_text(text)
    result = run("config", "show")
    assert result.code == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "mlship.yaml: invalid YAML" in lines[0] and all(w in lines[0] for w in words)


def test_an_environment_bomb_is_read_as_text(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLSHIP_NAME", "{" + BOMB.strip().replace("\n", ", ") + ", z: *i}")
    result = run("--json", "config", "show")
    assert result.code == 0, result.stderr  # it hung; now the value is the variable's text, as any non-YAML is
    assert os.environ["MLSHIP_NAME"] in result.stdout


def test_a_long_bad_value_is_cut_in_the_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mlship.yaml").write_text("name: [" + ", ".join(["x" * 20] * 5000) + "]\n")
    result = run("config", "show")
    assert result.code == 2 and len(result.stderr) < 400 and "..." in result.stderr
