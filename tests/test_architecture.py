"""The package's shape, read from its source: no module reaching into another's private names,
and files and functions of a size a reader can hold, unless a reason stands beside. (What each
layer may import, and import cycles, are ``test_layers``.)

These are the rules of the developers' guide, checked on every run so they hold as the code grows.
The parsing is plain :mod:`ast`; nothing is imported or run.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest
from codebase import dotted, modules, resolve

MAX_FILE_LINES = 500
MAX_FUNCTION_LINES = 60
#: A comment on the ``def`` line (or the line above it), or in a file's first ten lines, that
#: says why this one is longer: ``# long: <reason>``.
REASON = "# long:"

MODULES = modules()


def private_uses(module: str, path: Path) -> Iterator[str]:
    """``from other import _name`` and ``other_module._name`` in ``module``'s source."""
    tree = ast.parse(path.read_text())
    aliases: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            target = resolve(module, path, node)
            if not target.startswith("wslab"):
                continue
            for alias in node.names:
                full = f"{target}.{alias.name}"
                if full in MODULES:
                    aliases[alias.asname or alias.name] = full
                elif alias.name.startswith("_") and target != module:
                    yield f"{path.name}:{node.lineno} imports {target}.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("wslab"):
                    aliases[alias.asname or alias.name] = alias.name
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
            owner = aliases.get(dotted(node.value))
            if owner is not None and owner != module:
                yield f"{path.name}:{node.lineno} uses {owner}.{node.attr}"


def test_no_module_reaches_into_another_modules_private_names() -> None:
    found = [use for name, path in MODULES.items() for use in private_uses(name, path)]
    assert not found, "\n".join(found)


def has_reason(lines: list[str], lineno: int) -> bool:
    """A ``# long:`` comment on the line or the one above it (1-based ``lineno``)."""
    return any(REASON in lines[i] for i in (lineno - 1, lineno - 2) if 0 <= i < len(lines))


@pytest.mark.parametrize("name", sorted(MODULES))
def test_files_and_functions_stay_short_or_say_why(name: str) -> None:
    path = MODULES[name]
    lines = path.read_text().splitlines()
    problems = []
    if len(lines) > MAX_FILE_LINES and not any(REASON in line for line in lines[:10]):
        problems.append(f"{path.name} has {len(lines)} lines (over {MAX_FILE_LINES}, no '{REASON}' reason)")
    for node in ast.walk(ast.parse("\n".join(lines))):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            length = (node.end_lineno or node.lineno) - node.lineno + 1
            if (
                length > MAX_FUNCTION_LINES
                and not has_reason(lines, first)
                and not has_reason(lines, node.lineno)
            ):
                problems.append(
                    f"{path.name}:{node.lineno} {node.name}() has {length} lines (no '{REASON}' reason)"
                )
    assert not problems, "\n".join(problems)


def test_the_rules_can_fail(tmp_path: Path) -> None:
    """The checks above find what they look for: a private import, and a long function."""
    source = tmp_path / "sample.py"
    source.write_text(
        "from wslab.runtime.handles import _secret\nimport wslab.runtime.net\nwslab.runtime.net._hidden\n"
    )
    found = list(private_uses("wslab.sample", source))
    assert len(found) == 2, found
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES))
    tree = ast.parse(f"def long():\n{body}\n")
    node = tree.body[0]
    assert isinstance(node, ast.FunctionDef) and node.end_lineno and node.end_lineno > MAX_FUNCTION_LINES
