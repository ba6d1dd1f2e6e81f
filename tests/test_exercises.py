"""Exercises: the three answers (not written yet, NOT YET, PASSED), what ``check()`` hands the
cells below, progressive hints that never give the answer away, and the reference shown.

Lesson 01's exercises stand in for all; the last tests go through every exercise of every lesson.
"""

from __future__ import annotations

import base64
import hashlib
import importlib
import inspect
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection

import wslab
from wslab.checks.lesson01 import accept_key_exercise, check_reverse, echo_exercise
from wslab.checks.report import Exercise, Verdict, exercise, unwritten_parts
from wslab.core import GUID
from wslab.solutions import lesson01

LESSONS = [f"wslab.checks.lesson{n:02}" for n in range(1, 9)]
EXERCISES = [
    (module, name, value)
    for module in LESSONS
    for name, value in vars(importlib.import_module(module)).items()
    if isinstance(value, Exercise) and name in importlib.import_module(module).__all__
]


# Blanks as the learner edition ships them, and half-written ones


async def skeleton_echo(connection: ServerConnection) -> None:
    """Answer each message: text as "Echo: <text>", binary unchanged."""
    # Write it: ...
    raise NotImplementedError  # write it: see the comment above


async def text_only_echo(connection: ServerConnection) -> None:
    async for message in connection:
        if not isinstance(message, str):
            raise NotImplementedError("binary: later")
        await connection.send(f"Echo: {message}")


def skeleton_key(key: str) -> str:
    """The Sec-WebSocket-Accept a server answers to this Sec-WebSocket-Key."""
    ...


class HalfClient:
    def __init__(self, url: str) -> None:
        self.url = url

    async def run(self) -> None:
        pass


# --- the three answers ------------------------------------------------------------------


async def test_a_skeleton_is_not_written_yet_and_is_never_run() -> None:
    report = await echo_exercise(skeleton_echo)
    assert report.verdict is Verdict.NOT_WRITTEN and not report
    assert report.results == [], "a skeleton must not be served or called"
    lines = str(report).splitlines()
    assert lines[0] == "echo: not written yet (skeleton_echo has no body yet)"
    assert "Traceback" not in str(report)
    assert (
        lines[-1] == "  stuck? echo_exercise.hint() gives a hint; echo_exercise.solution() shows one answer"
    )
    assert wslab.running() == []


async def test_notimplementederror_from_the_learners_code_is_not_written_yet() -> None:
    report = await echo_exercise(text_only_echo)
    assert report.verdict is Verdict.NOT_WRITTEN, str(report)
    assert str(report).splitlines()[0] == "echo: not written yet (text_only_echo raised NotImplementedError)"


async def test_a_sync_skeleton_and_a_class_with_a_skeleton_method() -> None:
    assert (await accept_key_exercise(skeleton_key)).verdict is Verdict.NOT_WRITTEN
    assert unwritten_parts(HalfClient) == ["HalfClient.run has no body yet"]
    assert unwritten_parts(lesson01.echo) == [] and unwritten_parts("not code") == []


async def test_wrong_is_not_yet_with_what_differs_and_right_is_passed() -> None:
    async def shouting(connection: ServerConnection) -> None:
        async for message in connection:
            await connection.send(f"ECHO: {message}" if isinstance(message, str) else message)

    wrong = await echo_exercise(shouting)
    assert wrong.verdict is Verdict.NOT_YET
    assert "sent text 'hello': expected text 'Echo: hello', got text 'ECHO: hello'" in wrong.failures
    right = await echo_exercise(lesson01.echo)
    assert right.verdict is Verdict.PASSED and "stuck?" not in str(right)
    assert str(right).splitlines()[0] == "echo: PASSED (6 of 6 checks hold)"


# --- check(): what the cells below use ----------------------------------------------------


async def test_check_returns_the_learners_answer_once_it_passes(capsys: pytest.CaptureFixture[str]) -> None:
    async def mine(connection: ServerConnection) -> None:
        async for message in connection:
            await connection.send(f"Echo: {message}" if isinstance(message, str) else message)

    assert await echo_exercise.check(mine) is mine
    shown = capsys.readouterr().out
    assert shown.startswith("echo: PASSED") and "reference" not in shown and "wslab's" not in shown


async def test_check_hands_on_the_reference_until_then(capsys: pytest.CaptureFixture[str]) -> None:
    assert await echo_exercise.check(skeleton_echo) is lesson01.echo
    assert await accept_key_exercise.check(skeleton_key) is lesson01.accept_key
    shown = capsys.readouterr().out.splitlines()
    assert "(the cells below use wslab's echo until yours passes)" in shown
    assert "(the cells below use wslab's accept_key until yours passes)" in shown


def test_a_sync_check_is_not_a_coroutine(capsys: pytest.CaptureFixture[str]) -> None:
    @exercise(reference=len, hints=["count them"])
    def check_counting(answer: Any) -> Any:
        from wslab.checks.report import CheckReport

        report = CheckReport("counting")
        report.add(answer("abc") == 3, "abc has 3")
        return report

    assert check_counting.check(len) is len
    assert capsys.readouterr().out.startswith("counting: PASSED")


# --- hints and solution -------------------------------------------------------------------


def test_hints_come_one_at_a_time_then_point_to_the_solution(capsys: pytest.CaptureFixture[str]) -> None:
    fresh = Exercise(check_reverse.run, reference=lesson01.reverse, hints=check_reverse.hints)
    for _ in range(len(fresh.hints) + 1):
        fresh.hint()
    shown = capsys.readouterr().out.splitlines()
    n = len(fresh.hints)
    assert [line.split(":")[0] for line in shown if line.startswith("hint ")] == [
        *(f"hint {i} of {n}" for i in range(1, n + 1)),
        f"hint {n} of {n}",
    ]
    assert shown[-1] == "(that was the last hint; check_reverse.solution() shows one answer)"


def test_solution_shows_the_reference_source(capsys: pytest.CaptureFixture[str]) -> None:
    echo_exercise.solution()
    shown = capsys.readouterr().out
    assert "from wslab.solutions.lesson01" in shown
    assert 'await connection.send(f"Echo: {message}")' in shown
    assert echo_exercise.solution_source == inspect.getsource(lesson01.echo)


def distinctive_lines(source: str) -> list[str]:
    """The reference's lines that give it away: code, not its signature, docstring or comments."""
    lines = []
    for raw in source.splitlines():
        line = raw.split("  # ")[0].strip()
        if len(line) >= 12 and not line.startswith(("#", '"""', "def ", "async def ", "class ", "@")):
            lines.append(line)
    return lines


def test_every_lesson_has_exercises() -> None:
    assert {module for module, _, _ in EXERCISES} >= {"wslab.checks.lesson01"}
    assert len([name for module, name, _ in EXERCISES if module == "wslab.checks.lesson01"]) == 5


@pytest.mark.parametrize(
    ("module", "name", "value"), EXERCISES, ids=[f"{m[-8:]}.{n}" for m, n, _ in EXERCISES]
)
def test_no_hint_gives_the_answer_away(module: str, name: str, value: Exercise) -> None:
    assert value.hints, f"{module}.{name} has no hints"
    assert value.name == name, f"{module}.{name} calls itself {value.name}"
    answer = distinctive_lines(value.solution_source)
    assert answer, f"{module}.{name}: its reference shows no code"
    for hint in value.hints:
        flat = hint.replace("`", "")
        leaked = [line for line in answer if line in hint or line in flat]
        assert not leaked, f"{module}.{name}'s hint {hint!r} gives away {leaked}"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.mark.parametrize(
    ("slip", "hint"),
    [
        (lambda key: base64.b64encode(hashlib.sha1(key.encode()).digest()).decode(), "joins the GUID"),
        (lambda key: base64.b64encode(hashlib.sha1((GUID + key).encode()).digest()).decode(), "key first"),
        (lambda key: base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()), "the header is text"),
        (lambda key: b64(hashlib.sha1((key + GUID).encode()).hexdigest().encode()), "raw"),
    ],
    ids=["no GUID", "GUID first", "bytes", "hex digest"],
)
async def test_the_usual_slips_in_accept_key_get_their_hint(slip: Any, hint: str) -> None:
    report = await accept_key_exercise(slip)
    assert report.verdict is Verdict.NOT_YET
    assert "RFC 6455's example says 's3pPLMBiTxaQ9kYGzzhZRbK+xOo=', got" in report.failures[0]
    assert any(hint in line for line in report.hints), str(report)
    assert (await accept_key_exercise(lesson01.accept_key)).verdict is Verdict.PASSED


def test_a_script_written_by_a_cell_is_read_from_its_file(tmp_path: Any) -> None:
    """A ``%%writefile`` blank: the check gets the script's path, and reads its functions."""
    script = tmp_path / "graceful.py"
    script.write_text('import asyncio\n\n\nasync def main(port):\n    """Serve."""\n    ...\n')
    assert unwritten_parts(str(script)) == ["graceful.py: main has no body yet"]
    script.write_text("import asyncio\n\n\nasync def main(port):\n    await asyncio.sleep(port)\n")
    assert unwritten_parts(script) == []
    assert unwritten_parts("missing.py") == []

    @exercise(reference=str(script), hints=["sleep"])
    def check_graceful(path: str) -> Any:
        from wslab.checks.report import CheckReport

        return CheckReport("graceful", results=[(True, "ran")])

    assert check_graceful.solution_source.startswith("import asyncio")
    assert check_graceful.check(str(script)) == str(script)
