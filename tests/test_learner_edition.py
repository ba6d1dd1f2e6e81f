"""The learner edition as shipped runs top to bottom, and every blank's check says "not written yet".

Each lesson of ``notebooks/learner/`` is executed as a learner's *Run All* executes it (a fresh
kernel, nbclient, in a temporary copy of the folder so the files a lesson writes land there):
no cell may end in an error or print a traceback, and the check after each blank (counted from
the complete edition's marks, so a check that vanished fails) must report "not written yet".
Until a blank passes its check, the cells below use wslab's reference, which is why the rest
of the lesson still runs.

The other half, "the reference answers put back pass every check", is the complete edition:
``tests/test_blanks.py`` finds PASSED stored after each blank, and nbval (``make test``)
re-executes it and compares. A lesson with no blank yet is the complete edition's code without
outputs, which nbval already runs: it is skipped here to keep ``make test`` short.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import nbclient
import nbformat
import pytest

from wslab.checks.report import Verdict
from wslab.cli.editions import blank_cells

REPO = Path(__file__).resolve().parent.parent
COMPLETE = REPO / "notebooks" / "complete"
LEARNER = REPO / "notebooks" / "learner"
LESSONS = sorted(LEARNER.glob("[0-9][0-9]-*.ipynb"))

pytestmark = [pytest.mark.lesson, pytest.mark.timeout(300)]


def check_cells(complete: nbformat.NotebookNode) -> list[str]:
    """The id of each blank's check: the code cell after each marked cell."""
    ids = []
    for index in blank_cells(complete):
        ids.append(next(cell.id for cell in complete.cells[index + 1 :] if cell.cell_type == "code"))
    return ids


def text_of(cell: nbformat.NotebookNode) -> str:
    parts = []
    for output in cell.get("outputs", []):
        if output.output_type == "stream":
            parts.append(output.text)
        elif output.output_type in ("execute_result", "display_data"):
            parts.append(output.data.get("text/plain", ""))
    return "".join(parts)


def problems(notebook: nbformat.NotebookNode) -> list[str]:
    """Every error output, and every traceback printed to stderr, as ``cell id: what``."""
    found = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            if output.output_type == "error":
                found.append(f"{cell.id}: {output.ename}: {output.evalue}")
            elif output.output_type == "stream" and output.name == "stderr" and "Traceback" in output.text:
                found.append(f"{cell.id}: a traceback on stderr: {output.text[-500:]}")
    return found


@pytest.mark.parametrize("lesson", LESSONS, ids=[lesson.stem for lesson in LESSONS])
def test_the_learner_edition_runs_as_shipped_and_says_not_written_yet(lesson: Path, tmp_path: Path) -> None:
    checks = check_cells(nbformat.read(COMPLETE / lesson.name, as_version=4))
    if not checks:
        pytest.skip(f"{lesson.name} has no blank yet (nbval runs its code in the complete edition)")
    shutil.copy2(lesson, tmp_path / lesson.name)
    notebook = nbformat.read(tmp_path / lesson.name, as_version=4)
    client = nbclient.NotebookClient(
        notebook,
        timeout=120,
        kernel_name="python3",
        allow_errors=True,  # run to the end, to report every error at once
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()

    assert problems(notebook) == [], f"{lesson.name} (learner edition) does not run cleanly"
    cells = {cell.id: cell for cell in notebook.cells}
    said = {check: text_of(cells[check]).splitlines()[:1] for check in checks}
    marker = f": {Verdict.NOT_WRITTEN} ("
    wrong = {check: first for check, first in said.items() if marker not in "".join(first)}
    assert not wrong, f"{lesson.name}: checks that did not say 'not written yet': {wrong}"
    reports = [cell.id for cell in notebook.cells if marker in text_of(cell)]
    assert sorted(reports) == sorted(checks), f"{lesson.name}: {len(checks)} blanks, reports in {reports}"
