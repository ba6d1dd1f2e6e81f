"""The lessons' text, read as an instructor adopting the course would.

* The Rust tutorial the course grew from is put in the course's own words: no run of twelve words
  from one of its sentences appears anywhere in the lessons, the README or the docs.
* Each lesson draws at least one idea (a Mermaid block in a markdown cell; the reading copy's
  browser test checks that each one is drawn).
* Each lesson ends with 4 to 6 recall questions, answers folded away in ``<details>``, and each
  answer points to the section of the lesson that shows it.

Nothing here runs a kernel: it reads the committed notebooks.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parent.parent
COMPLETE = REPO / "notebooks" / "complete"
LESSONS = sorted(COMPLETE.glob("*.ipynb"))
SEED = REPO.parent / "shared" / "seed" / "000_809b01bb36355138.txt"
#: Twelve words in a row from one sentence is a quotation, not a shared phrase.
RUN = 12
MERMAID = re.compile(r"^\s*```\s*mermaid\s*$", re.MULTILINE)
RECALL_HEADING = "## Check your understanding"
DETAILS = re.compile(r"<details>(.*?)</details>", re.DOTALL)
SECTION_HEADING = re.compile(r"^##\s+(\d+)\s+·", re.MULTILINE)
SECTION_REFERENCE = re.compile(r"\bsection (\d+)\b", re.IGNORECASE)

#: Lessons whose diagrams and recall questions are still being written. Each lesson's author
#: removes it from here; the set is empty when the course is whole.
PENDING: set[str] = set()


def words(text: str) -> list[str]:
    """Lower-case words, with typographic apostrophes and dashes read as plain ones."""
    text = text.replace("\u2019", "'").replace("\u2014", " ").replace("\u2013", " ")
    return re.findall(r"[a-z0-9]+(?:'[a-z]+)?", text.lower())


def runs(sequence: list[str], length: int = RUN) -> set[tuple[str, ...]]:
    return {tuple(sequence[i : i + length]) for i in range(len(sequence) - length + 1)}


def seed_runs() -> set[tuple[str, ...]]:
    """Every run of twelve words inside one sentence (or line) of the tutorial."""
    found: set[tuple[str, ...]] = set()
    for sentence in re.split(r"(?<=[.!?])\s+|\n", SEED.read_text(encoding="utf-8")):
        found |= runs(words(sentence))
    return found


def course_texts() -> dict[str, str]:
    """What a reader of the course reads: every cell of both editions, the README and the docs."""
    texts = {"README.md": (REPO / "README.md").read_text(encoding="utf-8")}
    for path in sorted((REPO / "docs").rglob("*.md")):
        if "node_modules" not in path.parts and "_build" not in path.parts:
            texts[str(path.relative_to(REPO))] = path.read_text(encoding="utf-8")
    for path in sorted((REPO / "notebooks").rglob("*.ipynb")):
        if ".ipynb_checkpoints" in path.parts:
            continue
        notebook = nbformat.read(path, as_version=4)
        texts[str(path.relative_to(REPO))] = "\n".join(cell.source for cell in notebook.cells)
    return texts


def lesson_markdown(path: Path) -> list[str]:
    return [cell.source for cell in nbformat.read(path, as_version=4).cells if cell.cell_type == "markdown"]


def pending(path: Path) -> None:
    if path.stem in PENDING:
        pytest.skip(f"{path.stem}: its diagrams and recall questions are still being written")


def test_no_sentence_of_the_rust_tutorial_is_quoted() -> None:
    if not SEED.exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"the tutorial is missing at {SEED}: CI runs beside ../shared")
        pytest.skip("the tutorial (../shared/seed) is not beside this checkout")
    quoted = seed_runs()
    assert len(quoted) > 100, "the tutorial should yield a few hundred twelve-word runs"
    found = []
    for name, text in course_texts().items():
        sequence = words(text)
        for i in range(len(sequence) - RUN + 1):
            if tuple(sequence[i : i + RUN]) in quoted:
                found.append(f"{name}: ...{' '.join(sequence[i : i + RUN])}...")
                break
    assert not found, "put these in the course's own words:\n" + "\n".join(found)


def test_the_quotation_check_finds_a_quotation() -> None:
    """The check above can fail: a sentence of the tutorial, lightly reformatted, is found."""
    if not SEED.exists():
        pytest.skip("the tutorial (../shared/seed) is not beside this checkout")
    sentence = next(s for s in SEED.read_text(encoding="utf-8").splitlines() if len(words(s)) >= 20)
    planted = "Intro. " + sentence.upper().replace(" ", "\n") + " Outro."
    assert runs(words(planted)) & seed_runs()


@pytest.mark.parametrize("path", LESSONS, ids=[p.stem for p in LESSONS])
def test_a_lesson_draws_at_least_one_idea(path: Path) -> None:
    pending(path)
    blocks = sum(len(MERMAID.findall(source)) for source in lesson_markdown(path))
    assert blocks >= 1, f"{path.stem} has no ```mermaid block in a markdown cell"


@pytest.mark.parametrize("path", LESSONS, ids=[p.stem for p in LESSONS])
def test_a_lesson_ends_with_recall_questions_that_point_to_their_section(path: Path) -> None:
    pending(path)
    markdown = lesson_markdown(path)
    recall = [source for source in markdown if source.lstrip().startswith(RECALL_HEADING)]
    assert len(recall) == 1, f"{path.stem}: one markdown cell opening with {RECALL_HEADING!r}"
    answers = DETAILS.findall(recall[0])
    assert 4 <= len(answers) <= 6, f"{path.stem}: {len(answers)} recall questions (4 to 6 wanted)"
    sections = {number for source in markdown for number in SECTION_HEADING.findall(source)}
    for answer in answers:
        pointed = SECTION_REFERENCE.findall(answer)
        assert pointed, f"{path.stem}: an answer names no section: {answer[:120]!r}"
        assert set(pointed) <= sections, f"{path.stem}: an answer points to a section the lesson lacks"
