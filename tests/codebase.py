"""The package's source as data, for the tests that check its shape (``test_architecture``,
``test_layers``): its modules, what each imports and from where, and what each defines.

Plain :mod:`ast`: nothing is imported or run. Every function takes module names and paths,
so a test can run the same reading on a sample module it writes itself.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "wslab"


def modules(package: Path = PACKAGE) -> dict[str, Path]:
    """Every module of the package by dotted name (``wslab.servers.chat``), found by walking it."""
    found = {}
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(package.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def package_of(name: str, path: Path) -> str:
    return name if path.name == "__init__.py" else name.rpartition(".")[0]


def resolve(module: str, path: Path, node: ast.ImportFrom) -> str:
    """The dotted name an ``import from`` names, relative imports resolved."""
    if not node.level:
        return node.module or ""
    base = package_of(module, path).split(".")
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


class When(StrEnum):
    """When an import runs."""

    #: When the module is imported.
    IMPORT = "import"
    #: Never: only the type checker reads it (``if TYPE_CHECKING:``).
    TYPING = "typing"
    #: When a function runs (a lazy import).
    CALL = "call"


@dataclass(frozen=True)
class Import:
    """One imported module and the names taken from it (empty for ``import x``)."""

    target: str
    names: tuple[str, ...]
    line: int
    when: When
    #: The local name each imported module or name is bound to.
    aliases: tuple[tuple[str, str], ...] = ()


def imports(module: str, path: Path) -> list[Import]:
    """Every import in ``module``'s source, with when it runs."""
    tree = ast.parse(path.read_text())
    found: list[Import] = []

    def visit(node: ast.AST, when: When) -> None:
        if isinstance(node, ast.ImportFrom):
            target = resolve(module, path, node)
            names = tuple(alias.name for alias in node.names)
            aliases = tuple((alias.asname or alias.name, alias.name) for alias in node.names)
            found.append(Import(target, names, node.lineno, when, aliases))
            return
        if isinstance(node, ast.Import):
            for alias in node.names:
                local = alias.asname or alias.name.split(".")[0]
                bound = alias.name if alias.asname else alias.name.split(".")[0]
                found.append(Import(alias.name, (), node.lineno, when, ((local, bound),)))
            return
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                visit(child, When.TYPING)
            for child in node.orelse:
                visit(child, when)
            return
        inner = When.CALL if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) else when
        for child in ast.iter_child_nodes(node):
            visit(child, inner if when is When.IMPORT else when)

    visit(tree, When.IMPORT)
    return found


def wslab_targets(item: Import, known: Mapping[str, Path]) -> list[str]:
    """The package modules an import takes something from: ``from . import net`` takes
    ``wslab.runtime.net``, not the package around it (already loaded, as every parent is)."""
    if not item.target.startswith("wslab"):
        return []
    found = [f"{item.target}.{name}" for name in item.names if f"{item.target}.{name}" in known]
    if item.target in known and (not item.names or len(found) < len(item.names)):
        found.append(item.target)  # a name defined in the module (or package) itself
    return found


def definitions(path: Path) -> set[str]:
    """The names a module binds itself at its top level: functions, classes, assignments."""
    tree = ast.parse(path.read_text())
    names: set[str] = set()

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                names.add(node.name)
            elif isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for target in targets:
                    names.update(n.id for n in ast.walk(target) if isinstance(n, ast.Name))
            elif isinstance(node, ast.If | ast.Try | ast.With):
                visit(node.body)
                visit(getattr(node, "orelse", []))
                for handler in getattr(node, "handlers", []):
                    visit(handler.body)

    visit(tree.body)
    return names


def declared_all(path: Path) -> list[str]:
    """The names in a module's ``__all__``, if it has a literal one."""
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets
        ):
            value = ast.literal_eval(node.value)
            return [str(name) for name in value]
    return []


def dotted(node: ast.expr) -> str:
    """``a.b.c`` for a chain of names and attributes, else ''."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute) and (head := dotted(node.value)):
        return f"{head}.{node.attr}"
    return ""


def attribute_uses(path: Path) -> Iterator[tuple[str, str, int]]:
    """``(owner, attribute, line)`` for every ``owner.attribute`` in the source, ``owner`` dotted."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Attribute) and (owner := dotted(node.value)):
            yield owner, node.attr, node.lineno


def layer_name(module: str) -> str:
    """The part of the package a module belongs to: ``wslab.servers.chat`` is in ``servers``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""
