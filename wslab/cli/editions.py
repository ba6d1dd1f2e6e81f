"""The learner edition of the lessons, written from the complete edition (``make learner``).

The complete lessons (``notebooks/complete/``) are executed and hold every answer; each
mechanism the learner should write is marked in its code cell with ``### BEGIN SOLUTION`` /
``### END SOLUTION`` (:mod:`wslab.core.blanks`). The learner edition
(``notebooks/learner/``) is the same notebook with every marked region replaced by a
skeleton, no outputs, no execution counts and no saved widget state, the same cell ids, and
no cell tagged ``solution-only``. Output is deterministic: the same complete edition gives
byte-identical files, so a test can tell when the committed learner edition is stale.

    python -m wslab.cli.editions [--check] [--complete DIR] [--learner DIR]

It lives in the package, not in a script beside the Makefile, because the tests regenerate
the learner edition in memory with the same code, and the checks share its notion of a
skeleton; it is not a ``python -m wslab`` command because learners never run it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat
from nbformat import NotebookNode

from ..core.blanks import BlankError, blank_out, regions, unwritten

__all__ = ["SOLUTION_ONLY", "blank_cells", "learner_edition", "main", "render", "write_learner_edition"]

#: A cell with this tag is in the complete edition only (a worked answer, say).
SOLUTION_ONLY = "solution-only"
#: Cell metadata that records a run (not the lesson): dropped in the learner edition.
RUN_METADATA = ("execution", "scrolled", "collapsed")


def blank_cells(notebook: NotebookNode) -> list[int]:
    """Indexes of the code cells holding marked regions (each is one blank, checked by the next code cell)."""
    return [
        index
        for index, cell in enumerate(notebook.cells)
        if cell.cell_type == "code" and regions(cell.source)
    ]


def _learner_cell(cell: NotebookNode, where: str) -> NotebookNode:
    cell = nbformat.from_dict(cell)  # a deep copy
    for key in RUN_METADATA:
        cell.metadata.pop(key, None)
    if cell.cell_type != "code":
        return cell
    cell.outputs, cell.execution_count = [], None
    if not regions(cell.source):
        return cell
    try:
        cell.source = blank_out(cell.source)
        first = cell.source.split("\n", 1)[0]
        python = not first.startswith("%%") or (first.startswith("%%writefile") and first.endswith(".py"))
        names = unwritten(cell.source) if python else ["(not Python: not read)"]
    except (BlankError, SyntaxError) as exc:
        raise BlankError(f"{where}: {exc}") from exc
    if not names:
        raise BlankError(f"{where}: no function is left a skeleton; put each region inside a def's body")
    return cell


def learner_edition(complete: NotebookNode, name: str = "notebook") -> NotebookNode:
    """The learner edition of one complete lesson (which is left as it was)."""
    notebook = nbformat.from_dict(complete)
    notebook.metadata.pop("widgets", None)
    notebook.cells = [
        _learner_cell(cell, f"{name}, cell {cell.get('id', index)}")
        for index, cell in enumerate(complete.cells)
        if SOLUTION_ONLY not in cell.metadata.get("tags", [])
    ]
    for index in blank_cells(complete):
        following = [cell for cell in complete.cells[index + 1 :] if cell.cell_type == "code"]
        if not following or regions(following[0].source):
            where = f"{name}, cell {complete.cells[index].get('id', index)}"
            raise BlankError(f"{where}: the next code cell must be this blank's check")
    nbformat.validate(notebook)
    return notebook


def render(notebook: NotebookNode) -> str:
    """The file's text, exactly as written (Jupyter's own layout, one newline at the end)."""
    return nbformat.writes(notebook).rstrip("\n") + "\n"


def write_learner_edition(complete_dir: Path, learner_dir: Path, *, check: bool = False) -> list[str]:
    """Write (or with ``check``, only compare) every lesson's learner edition; returns what changed."""
    changed = []
    lessons = sorted(complete_dir.glob("[0-9][0-9]-*.ipynb"))
    wanted = {lesson.name for lesson in lessons}
    for lesson in lessons:
        text = render(learner_edition(nbformat.read(lesson, as_version=4), lesson.name))
        target = learner_dir / lesson.name
        if not target.exists() or target.read_text(encoding="utf-8") != text:
            changed.append(target.name)
            if not check:
                learner_dir.mkdir(parents=True, exist_ok=True)
                target.write_text(text, encoding="utf-8")
    for stale in sorted(learner_dir.glob("[0-9][0-9]-*.ipynb")):
        if stale.name not in wanted:
            changed.append(stale.name)
            if not check:
                stale.unlink()
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--complete", type=Path, default=Path("notebooks/complete"), help="read from DIR")
    parser.add_argument("--learner", type=Path, default=Path("notebooks/learner"), help="write to DIR")
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if a file would change")
    options = parser.parse_args(argv)
    try:
        changed = write_learner_edition(options.complete, options.learner, check=options.check)
    except BlankError as exc:
        print(f"make learner: {exc}", file=sys.stderr)
        return 1
    if options.check:
        if changed:
            print(f"stale: {', '.join(changed)} (run make learner)")
            return 1
        print("the learner edition is up to date")
        return 0
    print(f"{options.learner}: wrote {', '.join(changed)}" if changed else f"{options.learner}: up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
