"""The ``integration`` marker, given mechanically (a plugin loaded from tests/conftest.py).

A test starts a real server when it, a helper it calls (defined under ``tests/``) or
any fixture it uses calls one of ``SERVER_STARTERS`` or uses one of ``SERVER_FIXTURES``;
such tests get the marker at collection, so ``pytest -m "not integration"`` is the quick
run without services. A fixture that picks a server at run time
(``request.getfixturevalue``) marks that parameter itself
(``pytest.param("s3", marks=pytest.mark.integration)``); a server fixture set up for an
unmarked test fails it, so a forgotten mark cannot pass unnoticed. In-process stdlib
handlers a test defines for itself (webhook receivers) are not counted. The hooks live in
a plugin, not a conftest, because session-scoped fixtures are set up through the
session's hooks, which a conftest below the rootdir does not join.
"""

from __future__ import annotations

import inspect
import json
import os
from types import CodeType
from typing import Any

import pytest

# The helpers that start a service or an `mlship serve` process (tests/harness/, tests/serve/server_process.py).
SERVER_STARTERS = frozenset({
    "start_server", "start_docker_engine", "start_oci_registry", "start_moto_server", "start_nginx",
    "start_http_upstream", "start_prometheus", "start_counting_proxy", "start_split_registry",
    "start_fake_gcs", "start_azurite",
})
# Fixtures that give a real service without calling a starter (a browser the test launches).
SERVER_FIXTURES = frozenset({"chromium"})

_CURRENT_ITEM = pytest.StashKey[pytest.Item]()
_UNMARKED_SERVERS = pytest.StashKey[list[str]]()
_starts: dict[CodeType, bool] = {}


def _code_starts_server(code: CodeType, namespace: dict[str, Any]) -> bool:
    """Whether code (its nested functions, and test helpers it names) calls a server starter."""
    if code in _starts:
        return _starts[code]
    _starts[code] = False  # recursion guard
    found = any(name in SERVER_STARTERS for name in code.co_names)
    for name in code.co_names:
        if found:
            break
        helper = namespace.get(name)
        if inspect.isfunction(helper) and helper.__module__.startswith("tests."):
            found = _code_starts_server(helper.__code__, helper.__globals__)
    for const in code.co_consts:
        if found:
            break
        if isinstance(const, CodeType):
            found = _code_starts_server(const, namespace)
    _starts[code] = found
    return found


def _function_starts_server(func: Any) -> bool:
    func = inspect.unwrap(getattr(func, "__func__", func))
    return inspect.isfunction(func) and _code_starts_server(func.__code__, func.__globals__)


def _is_server_fixture(fixturedef: Any) -> bool:
    return fixturedef.argname in SERVER_FIXTURES or _function_starts_server(fixturedef.func)


def server_users(item: pytest.Item) -> list[str]:
    """The fixtures (or "test body") through which a collected test starts a real server."""
    found = ["test body"] if _function_starts_server(getattr(item, "function", None)) else []
    name2defs = getattr(getattr(item, "_fixtureinfo", None), "name2fixturedefs", {})
    for name in getattr(item, "fixturenames", ()):
        if any(_is_server_fixture(fixturedef) for fixturedef in name2defs.get(name, ())):
            found.append(name)
    return found


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test that starts a real server `integration` (before -m deselects)."""
    for item in items:
        if server_users(item):
            item.add_marker(pytest.mark.integration)


def _where(name: str, func: Any) -> list[Any]:
    func = inspect.unwrap(getattr(func, "__func__", func))
    return [name, func.__code__.co_filename, func.__code__.co_firstlineno] if inspect.isfunction(func) else []


def pytest_collection_finish(session: pytest.Session) -> None:
    """With MLSHIP_COLLECT_REPORT=FILE, write each selected test's id, markers, and where its function and
    fixtures are defined (read by tests/test_layout.py)."""
    report = os.environ.get("MLSHIP_COLLECT_REPORT")
    if not report:
        return
    rows = []
    for item in session.items:
        name2defs = getattr(getattr(item, "_fixtureinfo", None), "name2fixturedefs", {})
        functions = [_where("test body", getattr(item, "function", None))]
        functions += [_where(name, name2defs[name][-1].func) for name in getattr(item, "fixturenames", ())
                      if name2defs.get(name)]
        rows.append({"id": item.nodeid, "markers": sorted({m.name for m in item.iter_markers()}),
                     "functions": [f for f in functions if f]})
    with open(report, "w", encoding="utf-8") as fh:
        json.dump(rows, fh)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    item.config.stash[_CURRENT_ITEM] = item
    item.stash[_UNMARKED_SERVERS] = []


@pytest.hookimpl(tryfirst=True)
def pytest_fixture_setup(fixturedef: Any, request: pytest.FixtureRequest) -> None:
    """Note a server fixture set up for a test without the marker (a dynamic request collection cannot see)."""
    item = request.config.stash.get(_CURRENT_ITEM, None)
    if item is not None and item.get_closest_marker("integration") is None and _is_server_fixture(fixturedef):
        item.stash[_UNMARKED_SERVERS].append(fixturedef.argname)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_call(item: pytest.Item) -> None:
    """Fail such a test (after setup, so the shared fixture itself stays good for the tests after it)."""
    unmarked = item.stash.get(_UNMARKED_SERVERS, [])
    if unmarked:
        pytest.fail(f"{item.nodeid} starts a real server through fixture {unmarked[0]!r} but is not marked "
                    "integration (mark the parameter that requests it)", pytrace=False)
