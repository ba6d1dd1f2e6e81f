"""The package's shape, read from its source: no import cycles, no module reaching into another's
private names, and files and functions of a size a reader can hold, unless a reason stands beside.

These are the rules of the developers' guide, checked on every run so they hold as the code grows.
The parsing is plain :mod:`ast`; nothing is imported or run.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "wslab"
MAX_FILE_LINES = 500
MAX_FUNCTION_LINES = 60
#: A comment on the ``def`` line (or the line above it), or in a file's first ten lines, that
#: says why this one is longer: ``# long: <reason>``.
REASON = "# long:"


def modules() -> dict[str, Path]:
    """Every module of the package by dotted name (``wslab.servers.chat``)."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


MODULES = modules()


def package_of(name: str, path: Path) -> str:
    return name if path.name == "__init__.py" else name.rpartition(".")[0]


def resolve(module: str, path: Path, node: ast.ImportFrom) -> str:
    """The dotted name an ``import from`` names, relative imports resolved."""
    if not node.level:
        return node.module or ""
    base = package_of(module, path).split(".")
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def top_level_imports(module: str, path: Path) -> Iterator[tuple[ast.ImportFrom | ast.Import, str]]:
    """Imports that run when the module is imported: not inside functions, nor under TYPE_CHECKING."""
    tree = ast.parse(path.read_text())

    def walk(body: list[ast.stmt]) -> Iterator[tuple[ast.ImportFrom | ast.Import, str]]:
        for node in body:
            if isinstance(node, ast.ImportFrom):
                yield node, resolve(module, path, node)
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    yield node, alias.name
            elif isinstance(node, ast.If) and "TYPE_CHECKING" not in ast.unparse(node.test):
                yield from walk(node.body)
                yield from walk(node.orelse)
            elif isinstance(node, ast.Try):
                yield from walk(node.body)

    yield from walk(tree.body)


def wslab_targets(node: ast.ImportFrom | ast.Import, target: str) -> list[str]:
    """The package modules an import loads (``from . import net`` loads ``wslab.runtime.net``)."""
    if not target.startswith("wslab"):
        return []
    found = []
    if isinstance(node, ast.ImportFrom):
        for alias in node.names:
            if f"{target}.{alias.name}" in MODULES:
                found.append(f"{target}.{alias.name}")
    if target in MODULES:
        found.append(target)
    return found


def test_no_import_cycles() -> None:
    graph = {
        name: {
            dep
            for node, target in top_level_imports(name, path)
            for dep in wslab_targets(node, target)
            if dep != name and not name.startswith(dep + ".")  # a package's own __init__ runs first
        }
        for name, path in MODULES.items()
    }
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1 on the path, 2 done

    def visit(name: str, path: list[str]) -> None:
        state[name] = 1
        for dep in sorted(graph.get(name, ())):
            if state.get(dep) == 1:
                cycles.append([*path[path.index(dep) :], dep])
            elif dep not in state:
                visit(dep, [*path, dep])
        state[name] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


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


def dotted(node: ast.expr) -> str:
    """``a.b.c`` for a chain of names and attributes, else ''."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute) and (head := dotted(node.value)):
        return f"{head}.{node.attr}"
    return ""


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
