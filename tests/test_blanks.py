"""Blanks and the learner edition: the marked regions become skeletons, and the committed
learner edition is what the complete edition gives today.

Nothing here runs a kernel: ``tests/test_learner_edition.py`` executes the lessons.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from wslab.cli.editions import SOLUTION_ONLY, blank_cells, learner_edition, render, write_learner_edition
from wslab.core.blanks import SKELETON, BlankError, blank_out, regions, unwritten

REPO = Path(__file__).resolve().parent.parent
COMPLETE = REPO / "notebooks" / "complete"
LEARNER = REPO / "notebooks" / "learner"
LESSONS = sorted(COMPLETE.glob("[0-9][0-9]-*.ipynb"))

ECHO = '''async def echo(connection):
    """Answer each message."""
    # Write it: send each message back.
    ### BEGIN SOLUTION
    async for message in connection:
        await connection.send(message)
    ### END SOLUTION


print("defined")'''


# --- one cell ---------------------------------------------------------------------------


def test_a_region_becomes_the_skeleton_at_its_indentation_and_the_rest_stays() -> None:
    head = 'async def echo(connection):\n    """Answer each message."""\n'
    head += "    # Write it: send each message back.\n"
    assert blank_out(ECHO) == f'{head}    {SKELETON}\n\n\nprint("defined")'
    assert unwritten(blank_out(ECHO)) == ["echo"]
    assert unwritten(ECHO) == []


def test_a_region_may_name_its_skeleton_and_sit_anywhere() -> None:
    source = "class Room:\n    def publish(self, text):\n        ### BEGIN SOLUTION: return []\n"
    source += "        return [text]\n        ### END SOLUTION\n"
    assert blank_out(source) == "class Room:\n    def publish(self, text):\n        return []\n"
    top = "### BEGIN SOLUTION: limit = ...\nlimit = 3\n### END SOLUTION\n"
    assert blank_out(top) == "limit = ...\n"


def test_marks_work_inside_a_writefile_cell() -> None:
    script = "%%writefile graceful.py\nimport asyncio\n\n\nasync def main():\n    ### BEGIN SOLUTION\n"
    script += "    await asyncio.sleep(1)\n    ### END SOLUTION\n\n\nasyncio.run(main())\n"
    blanked = blank_out(script)
    assert blanked.startswith("%%writefile graceful.py\n")
    assert f"    {SKELETON}\n" in blanked and "sleep" not in blanked
    assert unwritten(blanked) == ["main"]


@pytest.mark.parametrize(
    ("source", "error"),
    [
        ("def f():\n    ### BEGIN SOLUTION\n    return 1\n", "never closed"),
        ("def f():\n    return 1\n    ### END SOLUTION\n", "no ### BEGIN SOLUTION"),
        ("def f():\n    ### BEGIN SOLUTION\n    ### BEGIN SOLUTION\n", "inside the region"),
        ("x = 1  ### BEGIN SOLUTION\n", "stand alone"),
        ("### BEGIN SOLUTION\nx = 1\n### END SOLUTION\n", "top level of a cell"),
    ],
)
def test_bad_marks_are_refused_with_the_line(source: str, error: str) -> None:
    with pytest.raises(BlankError, match=error):
        blank_out(source)


def test_a_skeleton_is_a_docstring_and_placeholders_only() -> None:
    source = '''
def a():
    """Doc."""
    ...

async def b(x):
    raise NotImplementedError("write it")

def c():
    pass

def d():
    return 1

class Client:
    def run(self):
        raise NotImplementedError

    def send(self, text):
        self.sent = text
'''
    assert unwritten(source) == ["a", "b", "c", "Client.run"]
    assert unwritten(source, {"Client"}) == ["Client.run"]
    assert unwritten(source, {"d"}) == []
    assert unwritten("result = await f()\n%time x = 1\n") == []  # top-level await and magics parse


# --- a notebook -------------------------------------------------------------------------


def small_notebook() -> nbformat.NotebookNode:
    blank = nbformat.v4.new_code_cell(ECHO, id="blank", execution_count=3)
    blank.outputs = [nbformat.v4.new_output("stream", text="defined\n")]
    blank.metadata["execution"] = {"iopub.status.idle": "2026-01-01T00:00:00Z"}
    check = nbformat.v4.new_code_cell("echo = await echo_exercise.check(echo)", id="check", execution_count=4)
    answer = nbformat.v4.new_code_cell("print('the answer')", id="answer", metadata={"tags": [SOLUTION_ONLY]})
    notebook = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_markdown_cell("# Lesson", id="title"), blank, check, answer]
    )
    notebook.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}}}
    return notebook


def test_the_learner_edition_has_skeletons_no_outputs_and_the_same_ids() -> None:
    complete = small_notebook()
    learner = learner_edition(complete)
    assert [cell.id for cell in learner.cells] == ["title", "blank", "check"]  # solution-only dropped
    assert "widgets" not in learner.metadata
    for cell in learner.cells:
        if cell.cell_type == "code":
            assert (cell.outputs, cell.execution_count, cell.metadata) == ([], None, {})
    assert SKELETON in learner.cells[1].source and "async for" not in learner.cells[1].source
    assert complete.cells[1].outputs and "async for" in complete.cells[1].source  # left as it was
    assert blank_cells(complete) == [1]
    assert render(learner) == render(learner_edition(small_notebook()))  # deterministic


def test_a_blank_must_be_followed_by_its_check() -> None:
    notebook = small_notebook()
    notebook.cells = notebook.cells[:2]
    with pytest.raises(BlankError, match="next code cell must be this blank's check"):
        learner_edition(notebook, "lesson.ipynb")


def test_a_region_outside_any_def_is_refused() -> None:
    notebook = small_notebook()
    notebook.cells[1].source = "x = 1\n### BEGIN SOLUTION: y = 2\ny = 3\n### END SOLUTION\n"
    with pytest.raises(BlankError, match="no function is left a skeleton"):
        learner_edition(notebook, "lesson.ipynb")


def test_writing_twice_changes_nothing(tmp_path: Path) -> None:
    complete, learner = tmp_path / "complete", tmp_path / "learner"
    complete.mkdir()
    nbformat.write(small_notebook(), complete / "01-small.ipynb")
    assert write_learner_edition(complete, learner) == ["01-small.ipynb"]
    first = (learner / "01-small.ipynb").read_bytes()
    assert write_learner_edition(complete, learner) == []
    assert (learner / "01-small.ipynb").read_bytes() == first
    (learner / "09-gone.ipynb").write_text("{}")
    assert write_learner_edition(complete, learner, check=True) == ["09-gone.ipynb"]


# --- the committed editions -------------------------------------------------------------


def test_the_committed_learner_edition_is_up_to_date() -> None:
    assert LESSONS, f"no lessons in {COMPLETE}"
    stale = write_learner_edition(COMPLETE, LEARNER, check=True)
    assert not stale, f"notebooks/learner/ is stale for {stale}: run `make learner` and commit the result"


@pytest.mark.parametrize("lesson", LESSONS, ids=[lesson.stem for lesson in LESSONS])
def test_every_blank_of_the_complete_edition_is_checked_and_passes(lesson: Path) -> None:
    """Each blank's check (the next code cell) stored PASSED, and nbval compares that output.

    This is the complete edition's half of "the reference answers put back pass every check":
    nbval re-executes it in ``make test`` and fails if a check no longer prints what is stored.
    """
    notebook = nbformat.read(lesson, as_version=4)
    for index in blank_cells(notebook):
        check = next(cell for cell in notebook.cells[index + 1 :] if cell.cell_type == "code")
        tags = set(check.metadata.get("tags", []))
        assert not tags & {"nbval-ignore-output", "nbval-skip"}, f"{lesson.name}: {check.id} escapes nbval"
        text = "".join(output.get("text", "") for output in check.outputs)
        assert ": PASSED (" in text, (
            f"{lesson.name}: the check after {notebook.cells[index].id} says {text!r}"
        )
        assert regions(notebook.cells[index].source)
