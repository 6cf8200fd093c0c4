"""The layout holds: no import cycles between mlship's packages, every module imports on
its own, and the quick run (``-m "not integration"``) starts no real server."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

from tests.harness import markers

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "mlship"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def unit(module: str) -> str:
    """The package a module belongs to: mlship.serve.app -> mlship.serve; top-level modules stand alone."""
    return ".".join(module.split(".")[:2])


def _type_checking_only(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and ast.unparse(test) in {"TYPE_CHECKING", "typing.TYPE_CHECKING"}


def imports_of(module: str) -> list[tuple[str, int]]:
    """Every mlship module imported anywhere in module (inside functions too, not under TYPE_CHECKING)."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: list[tuple[str, int]] = []
    stack: list[ast.AST] = [ast.parse(path.read_text(encoding="utf-8"))]
    while stack:
        node = stack.pop()
        if _type_checking_only(node):
            continue
        stack.extend(ast.iter_child_nodes(node))
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
            source = ".".join(base + ([node.module] if node.module else []))
            for alias in node.names:
                child = f"{source}.{alias.name}"
                found.append((child if child in MODULES else source, node.lineno))
    return [(name, line) for name, line in found if name in MODULES]


def package_graph() -> dict[str, dict[str, str]]:
    """unit -> {imported unit: "module:line" of one import that makes the edge}."""
    graph: dict[str, dict[str, str]] = {}
    for module in MODULES:
        for target, line in imports_of(module):
            if unit(target) != unit(module):
                graph.setdefault(unit(module), {}).setdefault(unit(target), f"{module}:{line}")
    return graph


def cycles(graph: dict[str, dict[str, str]]) -> list[list[str]]:
    """The strongly connected components with more than one node (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph.get(node, {}):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def describe(graph: dict[str, dict[str, str]], component: list[str]) -> str:
    return "; ".join(f"{a} -> {b} ({where})" for a in component for b, where in sorted(graph.get(a, {}).items())
                     if b in component)


def test_no_import_cycles_between_packages():
    graph = package_graph()
    assert "mlship.cli" in graph  # the graph sees imports at all
    found = cycles(graph)
    assert not found, "\n".join(describe(graph, component) for component in found)


def test_core_modules_never_import_the_cli():
    """cli/ parses and renders; everything below it works without it (only `python -m mlship` starts it)."""
    offenders = [f"{module}:{line} imports {target}" for module in MODULES for target, line in imports_of(module)
                 if unit(target) == "mlship.cli" and unit(module) not in {"mlship.cli", "mlship.__main__"}]
    assert not offenders, "\n".join(offenders)


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b": ""}, "b": {"c": ""}, "c": {"a": ""}, "d": {"a": ""}}) == [["a", "b", "c"]]


def test_every_module_imports_on_its_own():
    """Each module imported first in a fresh import state: a cycle of eager imports fails here."""
    script = (
        "import importlib, sys\n"
        "failed = []\n"
        "for name in sys.argv[1:]:\n"
        "    for loaded in [m for m in sys.modules if m == 'mlship' or m.startswith('mlship.')]:\n"
        "        del sys.modules[loaded]\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except Exception as exc:\n"
        "        failed.append(f'{name}: {type(exc).__name__}: {exc}')\n"
        "print('\\n'.join(failed))\n"
    )
    modules = [name for name in MODULES if not name.endswith(".__main__")]  # __main__ runs the command line
    proc = subprocess.run([sys.executable, "-c", script, *modules], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == ""


# ------------------------------------------------------------------------- integration marker

def _function_at(path: str, line: int) -> ast.AST | None:
    tree = ast.parse(Path(path).read_text(encoding="utf-8"))
    return next((node for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
                 and (node.decorator_list[0].lineno if node.decorator_list else node.lineno) <= line <= node.lineno),
                None)


def _names_in(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)} | \
        {n.attr for n in ast.walk(node) if isinstance(n, ast.Attribute)}


def test_starter_list_names_every_starter_in_the_harness():
    """SERVER_STARTERS is complete: every start_* helper under tests/harness/ and serve's server_process."""
    defined = set()
    for path in [*(ROOT / "tests" / "harness").glob("*.py"), ROOT / "tests" / "serve" / "server_process.py"]:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        defined |= {node.name for node in tree.body if isinstance(node, ast.FunctionDef)
                    and node.name.startswith("start_")}
    assert defined == set(markers.SERVER_STARTERS)


def test_the_quick_run_starts_no_real_server(tmp_path):
    """`pytest -m "not integration"` collects no test whose body or fixtures start a server (read with ast)."""
    report = tmp_path / "collected.json"
    proc = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                           "-m", "not integration", "tests"], cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "MLSHIP_COLLECT_REPORT": str(report)})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = json.loads(report.read_text())
    assert rows and not any("integration" in row["markers"] for row in rows)
    starters = set(markers.SERVER_STARTERS)
    offenders = []
    for row in rows:
        for name, path, line in row["functions"]:
            node = _function_at(path, line)
            if name in markers.SERVER_FIXTURES or (node is not None and _names_in(node) & starters):
                offenders.append(f"{row['id']} via {name} ({path}:{line})")
    assert not offenders, "\n".join(offenders)
    ids = {row["id"] for row in rows}
    assert not any(i.startswith("tests/integration/test_services.py") for i in ids)
    assert "tests/targets/test_targets.py::test_dry_run_uploads_nothing[file]" in ids
    assert "tests/targets/test_targets.py::test_dry_run_uploads_nothing[s3]" not in ids
