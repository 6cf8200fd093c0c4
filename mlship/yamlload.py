"""YAML from files people and CI jobs write (mlship.yaml, MLSHIP_* values), read safely.

`yaml.safe_load` builds aliases by reference, but everything that walks the
result (validation, error messages, completion) expands them: nine aliases of
nine (the "billion laughs") make a few lines that never finish. `load_yaml`
counts the nodes the document expands to before building it, and refuses a
document past `max_nodes` or with an alias that contains itself.
"""

from __future__ import annotations

from typing import Any

import yaml

MAX_NODES = 100_000  # mlship.yaml has hundreds; a bomb has billions


class YamlBombError(ValueError):
    """A document whose aliases expand past the limit, or refer to themselves."""


def load_yaml(text: str, *, max_nodes: int = MAX_NODES) -> Any:
    """`yaml.safe_load(text)`, refusing documents that expand past `max_nodes` nodes (YamlBombError)."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _expanded_size(node, {}, max_nodes)
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _expanded_size(node: yaml.Node, sizes: dict[int, int], limit: int) -> int:
    """How many nodes `node` stands for once every alias is expanded (memoised per node)."""
    key = id(node)
    if key in sizes:
        if sizes[key] < 0:
            raise YamlBombError("an alias refers to a node that contains it")
        return sizes[key]
    sizes[key] = -1
    children: list[yaml.Node] = []
    if isinstance(node, yaml.SequenceNode):
        children = node.value
    elif isinstance(node, yaml.MappingNode):
        children = [part for pair in node.value for part in pair]
    total = 1
    for child in children:
        total += _expanded_size(child, sizes, limit)
        if total > limit:
            raise YamlBombError(f"aliases expand to more than {limit:,} values (a YAML bomb?)")
    sizes[key] = total
    return total
