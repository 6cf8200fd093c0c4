"""The CI templates: valid YAML, and every mlship command they run exists with those options."""

from __future__ import annotations

import json
import re
import shlex

import pytest
import typer.main
import yaml

from mlship.cli import app
from mlship.templates import template_text
from tests.support import run

SHELL_SPLIT = re.compile(r"\|\||&&|[|;(){}]|\bthen\b|\bdo\b|\belse\b|\bif\b")


def scripts(kind: str, doc: dict) -> list[str]:
    out: list[str] = []
    if kind == "github":
        for job in doc["jobs"].values():
            out += [step["run"] for step in job.get("steps", []) if "run" in step]
    else:
        for job in doc.values():
            if isinstance(job, dict):
                for key in ("before_script", "script", "after_script"):
                    out += job.get(key, [])
    return out


def mlship_calls(script: str) -> list[list[str]]:
    calls = []
    for line in script.replace("\\\n", " ").splitlines():
        for part in SHELL_SPLIT.split(line):
            words = part.strip().split(None, 1)
            if words and words[0] == "mlship":
                calls.append(shlex.split(part.strip())[1:])
    return calls


def check_call(args: list[str]) -> str:
    """Walk the click command tree like the CLI would; return the command path."""
    command = typer.main.get_command(app)
    path = []
    tokens = list(args)
    while hasattr(command, "commands"):
        opts = {o for p in command.params for o in p.opts + p.secondary_opts}
        while tokens and tokens[0].startswith("-"):
            assert tokens.pop(0).split("=")[0] in opts, f"unknown global option in {args}"
        assert tokens, f"no subcommand in {args}"
        name = tokens.pop(0)
        assert name in command.commands, f"mlship {' '.join(path + [name])}: no such command ({args})"
        command = command.commands[name]
        path.append(name)
    params = {o: p for p in command.params for o in p.opts + p.secondary_opts}
    skip = False
    for token in tokens:
        if skip:
            skip = False
            continue
        if token.startswith("-"):
            option = token.split("=")[0]
            assert option in params, f"mlship {' '.join(path)}: no option {option}"
            skip = "=" not in token and not params[option].is_flag
    return " ".join(path)


@pytest.mark.parametrize("kind,template", [("github", "ci/github-actions.yml"), ("gitlab", "ci/gitlab-ci.yml")])
def test_templates_parse_and_call_real_commands(kind, template):
    text = template_text(template).replace("__MLSHIP_NAME__", "readmission")
    doc = yaml.safe_load(text)
    calls = [c for s in scripts(kind, doc) for c in mlship_calls(s)]
    paths = {check_call(c) for c in calls}
    # The pipeline the issue asks for: check -> build -> push to staging -> rollout -> drift gate.
    assert {"check", "build", "push", "promote", "rollout start", "rollout step", "rollout status",
            "rollout abort", "drift"} <= paths, paths
    assert len(calls) >= 10


def test_the_checker_catches_a_wrong_option():
    with pytest.raises(AssertionError, match="no option --candidat"):
        check_call(["rollout", "start", "m", "--candidat", "1"])
    with pytest.raises(AssertionError, match="no such command"):
        check_call(["rollout", "advance", "m"])


@pytest.mark.parametrize("kind,path", [("github", ".github/workflows/mlship.yml"), ("gitlab", ".gitlab-ci.yml")])
def test_init_writes_the_pipeline(tmp_path, monkeypatch, kind, path):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mlship.yaml").write_text("name: Readmission Risk\nversion: 1.0.0\n")
    result = run("init", "--ci", kind)
    assert result.code == 0, result.stderr
    written = tmp_path / path
    assert "MODEL: readmission-risk" in written.read_text()
    assert yaml.safe_load(written.read_text())
    assert (tmp_path / "mlship.yaml").read_text() == "name: Readmission Risk\nversion: 1.0.0\n"  # kept
    again = run("init", "--ci", kind)
    assert again.code == 2 and "already exists" in again.stderr
    assert run("init", "--ci", kind, "--force").code == 0


def test_init_ci_refuses_an_unknown_kind_and_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run("init", "--ci", "jenkins")
    assert result.code == 2 and "use github or gitlab" in result.stderr
    assert list(tmp_path.iterdir()) == []


CI_KINDS = [("github", ".github/workflows/mlship.yml"), ("gitlab", ".gitlab-ci.yml")]
PIPELINE_ENV = {"MODEL": "breast-cancer", "MLSHIP_VERSION": "1.7.0", "STAGING_REGISTRY": "127.0.0.1:5000/ml"}


def pipeline_calls(kind: str, path) -> list[list[str]]:
    """The mlship calls of a written pipeline, with its variables filled in as the CI would."""
    from string import Template

    calls = [c for s in scripts(kind, yaml.safe_load(path.read_text())) for c in mlship_calls(s)]
    return [[Template(word).safe_substitute(PIPELINE_ENV) for word in call] for call in calls]


def named_targets(calls: list[list[str]]) -> set[str]:
    """Targets the pipeline names with --to that are not URLs (so must be in mlship.yaml)."""
    return {c[i + 1] for c in calls for i, word in enumerate(c) if word == "--to" and "://" not in c[i + 1]}


@pytest.mark.parametrize("kind,path", CI_KINDS)
def test_init_ci_with_a_target_passes_config_show_and_a_dry_run(tmp_path, monkeypatch, kind, path):
    from mlship.config import load_config
    from tests.support import MODEL, SAMPLE

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLSHIP_VERSION", PIPELINE_ENV["MLSHIP_VERSION"])  # as the pipeline's env sets it
    store = tmp_path / "staging-store"
    result = run("init", "--ci", kind, "--model", str(MODEL), "--sample", str(SAMPLE),
                 "--target", f"file://{store}", "--registry", PIPELINE_ENV["STAGING_REGISTRY"])
    assert result.code == 0, result.stderr
    assert run("config", "show").code == 0
    cfg = load_config(tmp_path / "mlship.yaml", environ={})
    calls = pipeline_calls(kind, tmp_path / path)
    assert named_targets(calls) == {"staging"} and cfg.targets["staging"].url == f"file://{store}"
    tag = next(c[c.index("--tag") + 1] for c in calls if c[:2] == ["build", "--image"])
    assert tag == f"{cfg.build.image.repository}:1.7.0"  # the image lands where mlship.yaml says
    build = next(c for c in calls if c[:2] == ["build", "--edge"])
    assert run(*build).code == 0
    pushes = [c for c in calls if c[0] == "push" and "--image" not in c]
    assert pushes
    for push in pushes:
        dry = run("--json", *push, "--dry-run")
        assert dry.code == 0, (push, dry.stderr)
        results = json.loads(dry.stdout)["results"]
        assert [(r["target"], r["status"]) for r in results] == [(f"file://{store}", "would push")], results
    assert not store.exists()  # a dry run uploads nothing
    # The rollout job: without a router it names the setting to add; with one, its start passes a dry run.
    start = next(c for c in calls if c[:2] == ["rollout", "start"])
    unrouted = run(*start, "--stable", "1.6.0", "--dry-run")
    assert unrouted.code == 2 and "rollout.router" in unrouted.stderr
    config = tmp_path / "mlship.yaml"
    config.write_text(config.read_text().replace("\nrollout:\n", "\nrollout:\n  router: {type: file, path: route.json, "
                                                 "upstreams: {blue: 'http://127.0.0.1:1', green: 'http://127.0.0.1:2'}}\n"))
    dry = run("--json", *start, "--stable", "1.6.0", "--dry-run")
    assert dry.code == 0, dry.stderr
    assert dry.json()["rollout"]["candidate"]["version"] == "1.7.0" and dry.json()["changed"] is False
    assert not (tmp_path / "route.json").exists() and not (tmp_path / ".mlship" / "rollouts").exists()


@pytest.mark.parametrize("kind,path", CI_KINDS)
def test_init_ci_without_flags_names_what_the_pipeline_needs_as_todos(tmp_path, monkeypatch, kind, path):
    from mlship.config import load_config

    monkeypatch.chdir(tmp_path)
    assert run("init", "--ci", kind).code == 0
    text = (tmp_path / "mlship.yaml").read_text()
    for name in named_targets(pipeline_calls(kind, tmp_path / path)):
        assert re.search(rf"^#  {name}: .*# TODO", text, re.M), text
    assert re.search(r"^    # repository: .*# TODO.*--registry", text, re.M)
    assert run("config", "show").code == 0
    assert load_config(tmp_path / "mlship.yaml", environ={}).targets == {}


def test_init_ci_refuses_flags_an_existing_config_does_not_match(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mlship.yaml").write_text("name: m\nversion: 1.0.0\n")
    result = run("init", "--ci", "gitlab", "--target", f"file://{tmp_path}/t")
    assert result.code == 2 and "no targets.staging" in result.stderr and "Add under targets" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mlship.yaml"]
    (tmp_path / "mlship.yaml").write_text(f"name: m\ntargets:\n  staging: {{type: file, url: 'file://{tmp_path}/t'}}\n")
    assert run("init", "--ci", "gitlab", "--target", f"file://{tmp_path}/t").code == 0


@pytest.mark.parametrize("flag,value,message", [("--target", "ftp://host/models", "unknown target scheme"),
                                                ("--target", "registry://127.0.0.1:5000/ml", "registry targets take images"),
                                                ("--registry", "a b/c", "not HOST[:PORT]/REPO")])
def test_init_refuses_a_bad_target_or_registry_and_writes_nothing(tmp_path, monkeypatch, flag, value, message):
    monkeypatch.chdir(tmp_path)
    result = run("init", "--ci", "github", flag, value)
    assert result.code == 2 and message in result.stderr
    assert list(tmp_path.iterdir()) == []
