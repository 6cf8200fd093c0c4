"""Every `mlship …` command line in the README and docs/ names a command and
options that exist, so the reference cannot drift from `mlship --help`."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import typer.main

from mlship.cli import app
from tests import docs_gen

ROOT = Path(__file__).resolve().parents[1]
DOC_FILES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
GLOBAL_OPTIONS = {"--json", "--quiet", "-q", "--verbose", "-v", "--plain", "--config", "-c", "--version", "--help", "-h"}
TAKES_VALUE = {"--config", "-c"}
STOP = {"|", "&&", "||", ";", ">", "2>&1", "\\", "#"}


def _code_lines(text: str) -> list[str]:
    """Code spans and the lines of fenced code blocks: where command lines live."""
    blocks = re.findall(r"```[^\n]*\n(.*?)```", text, flags=re.S)
    prose = re.sub(r"```.*?```", "", text, flags=re.S)
    lines = [line.split(" #", 1)[0] for block in blocks for line in block.splitlines()]
    return lines + re.findall(r"`([^`\n]+)`", prose)


def _invocations(text: str) -> list[list[str]]:
    """The words after each `mlship` in code, up to a shell operator."""
    found = []
    for line in _code_lines(text):
        for match in re.finditer(r"(?:^|[\s/(])mlship\s+(.*)", line):
            words = []
            for word in match.group(1).split():
                if word in STOP or word.startswith("#") or word.startswith("$("):
                    break
                words.append(word.strip("[](),'\"…"))
            found.append([w for w in words if w])
    return found


def _resolve(root, words: list[str]):
    """Walk the command tree along `words`; return the command, the words left and its path."""
    command, path, rest = root, "mlship", list(words)
    while rest and getattr(command, "commands", None):
        word = rest[0]
        if word.startswith("-"):
            rest = rest[2:] if word in TAKES_VALUE else rest[1:]
            continue
        sub = command.commands.get(word)
        default = getattr(command, "default_command", None)  # `mlship deploy NAME:VERSION` runs `deploy run`
        if sub is None and default:
            command, path = command.commands[default], f"{path} {default}"
            continue
        if sub is None:
            break
        command, path, rest = sub, f"{path} {word}", rest[1:]
    return command, rest, path


def _options(command) -> set[str]:
    return {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)}


def _problems(files: list[Path]) -> list[str]:
    root = typer.main.get_command(app)
    problems = []
    for doc in files:
        where = doc.relative_to(ROOT) if doc.is_relative_to(ROOT) else doc.name
        for words in _invocations(doc.read_text()):
            command, rest, path = _resolve(root, words)
            if command is root and rest and re.fullmatch(r"[a-z][a-z-]+", rest[0]):
                problems.append(f"{where}: `mlship {rest[0]}` is not a command")
                continue
            known = _options(command) | GLOBAL_OPTIONS
            for word in rest:
                flag = word.split("=", 1)[0]
                if re.fullmatch(r"--?[a-z][a-z0-9-]*", flag) and flag not in known:
                    problems.append(f"{where}: `{path}` has no option {flag}")
    return problems


def test_docs_exist_for_every_command_group():
    root = typer.main.get_command(app)
    pages = (ROOT / "docs" / "commands").glob("*.md")
    documented = " ".join(p.read_text() for p in pages)
    missing = [name for name in root.commands if f"mlship {name}" not in documented]
    assert missing == []


def test_every_documented_command_and_option_exists():
    assert _problems(DOC_FILES) == []


def test_the_checker_catches_a_made_up_option(tmp_path):
    bad = tmp_path / "bad.md"
    bad.write_text("Run `mlship check model.onnx --no-such-flag` or `mlship frobnicate`.\n")
    problems = _problems([bad])
    assert any("--no-such-flag" in p for p in problems)
    assert any("frobnicate" in p for p in problems)


@pytest.mark.parametrize("doc", ["README.md"])
def test_readme_is_a_five_minute_page(doc):
    assert len((ROOT / doc).read_bytes()) <= 15_000


def test_the_configuration_keys_table_is_generated_from_the_schema():
    """docs/configuration.md's keys table is what `mlship config schema` gives today."""
    text = docs_gen.CONFIG_DOC.read_text(encoding="utf-8")
    expected = docs_gen.with_table(text, docs_gen.keys_table(docs_gen.config_schema()))
    assert text == expected, f"docs/configuration.md's keys table is stale: run `{docs_gen.REGENERATE}`"


def test_the_keys_table_follows_plugin_unions():
    """A `type` union's choices and each variant's keys come from the schema, not from a list."""
    schema = {"type": "object", "properties": {"targets": {"type": "object", "additionalProperties": {
        "discriminator": {"propertyName": "type", "mapping": {"gcs": "#/$defs/Gcs"}},
        "oneOf": [{"$ref": "#/$defs/Gcs"}]}}},
        "$defs": {"Gcs": {"type": "object", "properties": {"type": {"const": "gcs"},
                                                            "bucket": {"type": "string", "description": "Where."}}}}}
    table = docs_gen.keys_table(schema)
    assert "| `targets.NAME.type` | string |  | One of `gcs`. |" in table
    assert "| `targets.NAME.bucket` (`type: gcs`) | string |  | Where. |" in table
