"""Blanks for the learner to fill: the marked regions of a lesson's code, and skeletons.

A lesson's complete edition marks each mechanism the learner should write, inside a code
cell, as nbgrader and otter-grader do::

    async def echo(connection):
        \"\"\"Answer each message: ...\"\"\"
        # write it: loop over the connection's messages; ...
        ### BEGIN SOLUTION
        async for message in connection:
            ...
        ### END SOLUTION

:func:`blank_out` turns every region into one skeleton line at the region's indentation
(:data:`SKELETON`, or the text after ``### BEGIN SOLUTION:``), keeping everything outside
it: the signature, the docstring, the comment saying what to write. Marks are plain
comments, so they work in any cell, ``%%writefile`` scripts included.

:func:`unwritten` reads source the other way round: which functions in it are still a
skeleton (a body of only a docstring and ``...``, ``pass`` or ``raise NotImplementedError``).
The checks ask it before running the learner's code, so a blank that was not filled in is
told "not written yet" instead of failing on real connections.

Text in, text out: no files, no notebooks (``wslab.cli.editions`` reads and writes those).
"""

from __future__ import annotations

import ast
import re
import textwrap
from dataclasses import dataclass

__all__ = ["BEGIN", "END", "SKELETON", "BlankError", "Region", "blank_out", "regions", "unwritten"]

BEGIN = "### BEGIN SOLUTION"
END = "### END SOLUTION"
#: What a region becomes, unless its BEGIN line says otherwise (``### BEGIN SOLUTION: ...``).
SKELETON = "raise NotImplementedError  # write it: see the comment above"

_BEGIN = re.compile(rf"^(?P<indent>[ \t]*){re.escape(BEGIN)}(?::[ \t]*(?P<skeleton>\S.*?))?[ \t]*$")
_END = re.compile(rf"^[ \t]*{re.escape(END)}[ \t]*$")


class BlankError(ValueError):
    """Marks that cannot be blanked out: unbalanced, or a skeleton that would break the cell."""


@dataclass(frozen=True)
class Region:
    """One marked region: its lines (``begin`` and ``end`` are the markers' 0-based line numbers)."""

    begin: int
    end: int
    indent: str
    skeleton: str


def regions(source: str) -> list[Region]:
    """The marked regions of ``source``, in order; raises :class:`BlankError` on unbalanced marks."""
    found: list[Region] = []
    open_at: re.Match[str] | None = None
    begin = 0
    for number, line in enumerate(source.splitlines()):
        if (start := _BEGIN.match(line)) is not None:
            if open_at is not None:
                raise BlankError(f"line {number + 1}: {BEGIN} inside the region opened on line {begin + 1}")
            open_at, begin = start, number
        elif _END.match(line):
            if open_at is None:
                raise BlankError(f"line {number + 1}: {END} with no {BEGIN} before it")
            skeleton = open_at.group("skeleton") or SKELETON
            found.append(Region(begin, number, open_at.group("indent"), skeleton))
            open_at = None
        elif BEGIN in line or END in line:
            raise BlankError(f"line {number + 1}: a mark must stand alone on its line: {line.strip()!r}")
    if open_at is not None:
        raise BlankError(f"line {begin + 1}: {BEGIN} is never closed by {END}")
    return found


def blank_out(source: str) -> str:
    """``source`` with every marked region replaced by its skeleton line."""
    found = regions(source)
    if not found:
        return source
    lines = source.splitlines(keepends=True)
    out: list[str] = []
    last = 0
    for region in found:
        if not region.indent and region.skeleton == SKELETON:
            raise BlankError(
                f"line {region.begin + 1}: a region at the top level of a cell would raise when the cell"
                f" runs: put it inside a def, or name its skeleton ({BEGIN}: name = ...)"
            )
        out += lines[last : region.begin]
        out.append(f"{region.indent}{region.skeleton}\n")
        last = region.end + 1
    out += lines[last:]
    text = "".join(out)
    return text if source.endswith("\n") else text.removesuffix("\n")


# Reading source: which functions are still a skeleton


def _is_placeholder(statement: ast.stmt) -> bool:
    """``...``, ``pass``, or ``raise NotImplementedError`` (called or not, with a message or not)."""
    if isinstance(statement, ast.Pass):
        return True
    if isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant):
        return statement.value.value is Ellipsis
    if isinstance(statement, ast.Raise) and statement.exc is not None:
        exc = statement.exc.func if isinstance(statement.exc, ast.Call) else statement.exc
        return isinstance(exc, ast.Name) and exc.id == "NotImplementedError"
    return False


def _is_docstring(statement: ast.stmt) -> bool:
    return (
        isinstance(statement, ast.Expr)
        and isinstance(statement.value, ast.Constant)
        and isinstance(statement.value.value, str)
    )


def is_skeleton(function: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    """A body of only a docstring and placeholders: nothing written yet."""
    body = function.body[1:] if _is_docstring(function.body[0]) else function.body
    return all(_is_placeholder(statement) for statement in body)


def parse_cell(source: str) -> ast.Module:
    """Python source as a notebook cell holds it: top-level ``await`` allowed, magics dropped."""
    source = textwrap.dedent(source)
    if source.startswith("%%"):
        source = source.split("\n", 1)[1] if "\n" in source else ""
    source = re.sub(r"(?m)^[ \t]*[%!].*$", "", source)
    flags = ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
    return compile(source, "<cell>", "exec", flags=flags, dont_inherit=True)  # type: ignore[no-any-return]


def unwritten(source: str, names: set[str] | None = None) -> list[str]:
    """The functions and methods in ``source`` that are still a skeleton, as ``name`` or
    ``Class.name``; only those called one of ``names`` (a function's or a class's), if given."""
    found: list[str] = []
    methods: set[ast.AST] = set()
    for node in ast.walk(parse_cell(source)):
        if isinstance(node, ast.ClassDef):
            defs = [item for item in node.body if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef)]
            methods.update(defs)
            if names is None or node.name in names:
                found += [f"{node.name}.{item.name}" for item in defs if is_skeleton(item)]
        elif (
            isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            and node not in methods
            and (names is None or node.name in names)
            and is_skeleton(node)
        ):
            found.append(node.name)
    return found
