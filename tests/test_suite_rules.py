"""The test suite's own rules, read from its source (``ast``; nothing is imported or run).

- Test modules import nothing from each other: what several share is in ``helpers.py`` or
  ``support/``, their fixtures in ``conftest.py`` (the autouse ``stop_servers`` too).
- No test picks a free port for someone to bind later (``free_port()``): bind port 0 and keep
  the socket (``helpers.refused_port``), or let the server choose and say which.
- Every marker is declared: pytest runs with ``--strict-markers``.
"""

from __future__ import annotations

import ast
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
MODULES = sorted(TESTS.rglob("*.py"))


def imports(path: Path) -> Iterator[tuple[int, str, list[str]]]:
    """Every import in ``path``: its line, the module, the names taken from it."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            yield node.lineno, node.module, [alias.name for alias in node.names]
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, []


@pytest.mark.parametrize("path", MODULES, ids=lambda path: str(path.relative_to(TESTS)))
def test_no_module_imports_a_test_module_or_the_autouse_fixture(path: Path) -> None:
    wrong = [
        f"{path.name}:{line}: from {module} import {', '.join(names)}"
        for line, module, names in imports(path)
        if module.split(".")[-1].startswith("test_") or "stop_servers" in names
    ]
    assert wrong == [], "shared code goes to helpers.py or support/, fixtures to conftest.py"


def test_no_test_picks_a_free_port_for_later() -> None:
    calls = [
        f"{path.relative_to(TESTS)}:{node.lineno}"
        for path in MODULES
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Call)
        and getattr(node.func, "id", getattr(node.func, "attr", "")) == "free_port"
    ]
    assert calls == [], "bind port 0 and hold the socket, or let the server choose its port"


def test_markers_are_strict_and_declared() -> None:
    pytest_options = tomllib.loads((TESTS.parent / "pyproject.toml").read_text())["tool"]["pytest"][
        "ini_options"
    ]
    assert "--strict-markers" in pytest_options["addopts"].split()
    declared = {line.split(":")[0] for line in pytest_options["markers"]}
    assert {"browser", "broker", "lab", "lesson"} <= declared
