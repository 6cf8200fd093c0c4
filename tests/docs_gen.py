"""Generated parts of docs/: the configuration keys table from `mlship config schema`.

The table is rebuilt from what the installed mlship prints at run time, so keys and the
`type` choices of targets and routers come from the plugins that are installed, never
from a list here. Regenerate with ``python -m tests.docs_gen`` (tests/test_docs.py
checks that the checked-in table is the generated one).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CONFIG_DOC = ROOT / "docs" / "configuration.md"
BEGIN = "<!-- keys table: generated from `mlship config schema` by `python -m tests.docs_gen`; do not edit -->"
END = "<!-- end of generated keys table -->"
REGENERATE = "python -m tests.docs_gen"

Schema = dict[str, Any]


def config_schema() -> Schema:
    """The JSON Schema `mlship config schema` prints."""
    proc = subprocess.run([sys.executable, "-m", "mlship", "config", "schema"], capture_output=True, text=True,
                          cwd=ROOT, timeout=120, check=True)
    return json.loads(proc.stdout)


class _Table:
    """Rows of (key, type, default, meaning) walked out of one schema document."""

    def __init__(self, schema: Schema) -> None:
        self.defs: dict[str, Schema] = schema.get("$defs", {})
        self.rows: list[tuple[str, str, str, str]] = []

    def resolve(self, node: Schema) -> Schema:
        while "$ref" in node:
            node = {**self.defs[node["$ref"].rsplit("/", 1)[-1]], **{k: v for k, v in node.items() if k != "$ref"}}
        return node

    def without_null(self, node: Schema) -> Schema:
        """An optional field's schema without its `null` branch (the default says it may be absent)."""
        options = node.get("anyOf")
        if options:
            rest = [option for option in options if option.get("type") != "null"]
            if len(rest) == 1:
                return {**{k: v for k, v in node.items() if k != "anyOf"}, **rest[0]}
        return node

    def variants(self, node: Schema) -> dict[str, Schema] | None:
        """A union told apart by `type`: {type value: schema of that variant}."""
        mapping = node.get("discriminator", {}).get("mapping")
        if mapping:
            return {name: self.resolve({"$ref": ref}) for name, ref in sorted(mapping.items())}
        return None

    def plain(self, node: Schema) -> Schema:
        """node with references followed and an optional field's `null` branch dropped."""
        return self.resolve(self.without_null(self.resolve(node)))

    def walk(self, key: str, node: Schema, meaning: str = "", qualifier: str = "") -> None:
        node = self.plain(node)
        meaning = node.get("description", meaning)
        variants = self.variants(node)
        if variants is not None:
            self.union(key, variants, meaning, qualifier)
        elif node.get("type") == "object" and "properties" in node:
            for name, child in node["properties"].items():
                self.walk(f"{key}.{name}" if key else name, child, "", qualifier)
        elif node.get("type") == "object" and isinstance(node.get("additionalProperties"), dict) \
                and self.is_section(node["additionalProperties"]):
            self.walk(f"{key}.NAME", node["additionalProperties"], meaning, qualifier)
        elif node.get("type") == "array" and self.is_section(node.get("items", {})):
            self.walk(f"{key}[]", node["items"], meaning, qualifier)
        else:
            self.rows.append((self.label(key, qualifier), type_text(self, node), default_text(node), meaning))

    def union(self, key: str, variants: dict[str, Schema], meaning: str, qualifier: str) -> None:
        choices = ", ".join(f"`{name}`" for name in variants)
        self.rows.append((self.label(f"{key}.type", qualifier), "string", "", f"{meaning} One of {choices}.".strip()))
        for name, variant in variants.items():
            for child, schema in variant.get("properties", {}).items():
                if child != "type":
                    self.walk(f"{key}.{child}", schema, "", f"type: {name}")

    def is_section(self, node: Schema) -> bool:
        node = self.plain(node)
        return self.variants(node) is not None or (node.get("type") == "object" and "properties" in node)

    @staticmethod
    def label(key: str, qualifier: str) -> str:
        return f"`{key}`" + (f" (`{qualifier}`)" if qualifier else "")


def type_text(table: _Table, node: Schema) -> str:
    """A short type: `string`, `integer ≥ 0`, `list of string`, `` `a` \\| `b` ``."""
    node = table.plain(node)
    if "enum" in node:
        return " \\| ".join(f"`{value}`" for value in node["enum"])
    if "const" in node:
        return f"`{node['const']}`"
    if "anyOf" in node:
        return " or ".join(type_text(table, option) for option in node["anyOf"] if option.get("type") != "null")
    kind = node.get("type", "any")
    if kind == "array":
        return f"list of {type_text(table, node.get('items', {}))}"
    if kind == "object":
        values = node.get("additionalProperties")
        return f"map of {type_text(table, values)}" if isinstance(values, dict) else "mapping"
    bounds = [f"{sign} {node[name]:g}" for name, sign in (("minimum", "≥"), ("exclusiveMinimum", ">"),
                                                           ("maximum", "≤"), ("exclusiveMaximum", "<"))
              if name in node]
    return " ".join([kind, ", ".join(bounds)]).strip()


def default_text(node: Schema) -> str:
    default = node.get("default")
    if default is None or default in ({}, []):
        return ""
    return f"`{json.dumps(default)}`"


def keys_table(schema: Schema) -> str:
    """The Markdown table of every key in the schema, in the schema's order."""
    table = _Table(schema)
    table.walk("", schema)
    lines = ["| key | type | default | meaning |", "|---|---|---|---|"]
    lines += [f"| {key} | {kind} | {default} | {escaped} |"
              for key, kind, default, meaning in table.rows for escaped in [meaning.replace("|", "\\|")]]
    return "\n".join(lines) + "\n"


def with_table(text: str, table: str) -> str:
    """text with the part between BEGIN and END replaced by table."""
    head, begin, rest = text.partition(BEGIN)
    _, end, tail = rest.partition(END)
    if not begin or not end:
        raise ValueError(f"{CONFIG_DOC.name} lacks the generated-table markers")
    return f"{head}{BEGIN}\n{table}{END}{tail}"


def main() -> None:
    """Rewrite the generated table in docs/configuration.md."""
    text = CONFIG_DOC.read_text(encoding="utf-8")
    CONFIG_DOC.write_text(with_table(text, keys_table(config_schema())), encoding="utf-8")


if __name__ == "__main__":
    main()
