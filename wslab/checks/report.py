"""What every exercise check shares: the report it returns, its hints, and how it runs the
learner's code.

A check (``wslab.checks.lessonNN``) runs the learner's code against real connections or
plain values and records one line per expectation in a :class:`CheckReport`: what was tried,
what was expected, what came back. Its verdict is a :class:`Verdict`; its hints, shown only
under a verdict that is not a pass, point the way without giving the answer.

The learner's code is run in two ways, and each has one helper here, so that a mistake in
it reads as a line of the report and never as a traceback from the library:

* called directly: :func:`call` (a function) and :func:`call_async` (a coroutine, with a
  deadline): a raise, or a hang, becomes a failed line;
* served, as a handler that real clients talk to: :func:`serving`, where a connection that
  fails becomes a failed line.

Hints are a table (:data:`Hints`): advice, and the failure that calls for it, so a check
states them as data, in the order a learner should read them.

What the lessons hold is an :class:`Exercise` (made by :func:`exercise` from a check function):
the check, its progressive hints (``hint()``) and wslab's reference answer (``solution()``,
from :mod:`wslab.solutions`). It answers in three ways: "not written yet" for a blank still
holding its skeleton, or raising NotImplementedError (nothing is run, no traceback);
NOT YET with what differs; PASSED. Its ``check()`` returns what the cells below should use:
the learner's answer once it passes, else the reference.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import sysconfig
import textwrap
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from websockets.exceptions import ConnectionClosed

from ..core.blanks import unwritten
from ..runtime.handles import ServerHandle, wait_until

__all__ = [
    "FAILED",
    "REPLY_TIMEOUT",
    "AsyncExercise",
    "CheckReport",
    "Exercise",
    "Hints",
    "Verdict",
    "call",
    "call_async",
    "error_text",
    "exercise",
    "serving",
    "until",
    "unwritten_parts",
]

#: How long a check waits for one reply (or one answer of the learner's code) before calling it missing.
REPLY_TIMEOUT = 2.0


class Verdict(StrEnum):
    """What a check says of the learner's code, as the first line of its report shows it."""

    PASSED = "PASSED"
    NOT_YET = "NOT YET"
    #: A blank still holding its skeleton (or raising NotImplementedError): nothing was run.
    NOT_WRITTEN = "not written yet"


#: A hint table: ``(when, advice)`` rows. ``when`` is a fragment of a failed line, a tuple of
#: fragments that must all stand in one failed line, or None (any failure).
Hints = Sequence[tuple[str | tuple[str, ...] | None, str]]


@dataclass
class CheckReport:
    """The outcome of one exercise check; true when every expectation held."""

    exercise: str
    results: list[tuple[bool, str]] = field(default_factory=list)
    hints: list[str] = field(default_factory=list)
    #: What is not written yet: a skeleton's name, or what raised NotImplementedError.
    unwritten: list[str] = field(default_factory=list)
    #: The exercise object that made this report (its name, for the "stuck?" line), if any.
    helper: str | None = None

    @property
    def passed(self) -> bool:
        return bool(self.results) and all(ok for ok, _ in self.results) and not self.unwritten

    @property
    def verdict(self) -> Verdict:
        if self.unwritten:
            return Verdict.NOT_WRITTEN
        return Verdict.PASSED if self.passed else Verdict.NOT_YET

    def __bool__(self) -> bool:
        return self.passed

    def add(self, ok: bool, line: str) -> bool:
        self.results.append((ok, line))
        return ok

    def hint(self, text: str) -> None:
        """Advice shown under the results when something failed; not itself a check.

        The same advice is given once, however many failures call for it.
        """
        if text not in self.hints:
            self.hints.append(text)

    def hints_for(self, table: Hints) -> None:
        """Give the advice of every row of ``table`` whose failure is among the failed lines."""
        failures = self.failures
        for when, text in table:
            fragments = (when,) if isinstance(when, str) else when
            if fragments is None or any(all(f in line for f in fragments) for line in failures):
                self.hint(text)

    @property
    def failures(self) -> list[str]:
        return [line for ok, line in self.results if not ok]

    def __str__(self) -> str:
        if self.unwritten:
            lines = [
                f"{self.exercise}: {self.verdict} ({', '.join(self.unwritten)})",
                "  write it in its cell above, run that cell, then run this one again",
            ]
        else:
            good = sum(ok for ok, _ in self.results)
            lines = [f"{self.exercise}: {self.verdict} ({good} of {len(self.results)} checks hold)"]
            lines += [f"  {'ok  ' if ok else 'FAIL'} {line}" for ok, line in self.results]
            if not self.passed:
                lines += [f"  hint: {hint}" for hint in self.hints]
        if not self.passed and self.helper:
            helper = self.helper
            lines.append(f"  stuck? {helper}.hint() gives a hint; {helper}.solution() shows one answer")
        return "\n".join(lines)

    __repr__ = __str__


class _Failed:
    def __repr__(self) -> str:
        return "FAILED"


#: What :func:`call` and :func:`call_async` return when the learner's code did not answer
#: (the report already has a line saying why).
FAILED: Any = _Failed()


def error_text(exc: BaseException) -> str:
    """An exception as a report line shows it: ``ValueError: name taken``."""
    return f"{type(exc).__name__}: {exc}"


def call(report: CheckReport, what: str, function: Callable[..., Any], *args: Any) -> Any:
    """``function(*args)``, the learner's; a raise becomes a failed line about ``what`` and :data:`FAILED`."""
    try:
        return function(*args)
    except NotImplementedError:
        report.unwritten.append(f"{what} raised NotImplementedError")
    except Exception as exc:
        report.add(False, f"{what}: raised {error_text(exc)}")
    return FAILED


async def call_async(
    report: CheckReport, what: str, answer: Awaitable[Any], *, timeout: float = REPLY_TIMEOUT
) -> Any:
    """The learner's coroutine awaited for at most ``timeout``; a raise or a hang becomes a failed
    line about ``what`` and :data:`FAILED`."""
    try:
        return await asyncio.wait_for(answer, timeout)
    except TimeoutError:
        report.add(False, f"{what}: no answer within {timeout:g} s")
    except NotImplementedError:
        report.unwritten.append(f"{what} raised NotImplementedError")
    except Exception as exc:
        report.add(False, f"{what}: raised {error_text(exc)}")
    return FAILED


@asynccontextmanager
async def serving(report: CheckReport, start: Awaitable[ServerHandle]) -> AsyncIterator[ServerHandle]:
    """The server that ``start`` starts (the learner's handler, usually), stopped afterwards.

    A connection to it that fails (refused, closed mid-way) ends the block as a failed line.
    """
    server = await start
    try:
        yield server
    except (OSError, ConnectionClosed) as exc:
        report.add(False, f"the connection failed: {exc}")
    finally:
        await server.stop()


async def until(report: CheckReport, what: str, condition: Callable[[], bool], timeout: float) -> bool:
    """Wait up to ``timeout`` for ``condition``; if it never holds, a failed line says that
    ``what`` did not happen."""
    try:
        await wait_until(condition, timeout=timeout)
        return True
    except TimeoutError:
        return report.add(False, f"{what}: not within {timeout:g} s")


# Exercises: a check with its hints and its reference, as the lessons use it


def _script(answer: Any) -> Path | None:
    """``answer`` as a Python script's path (a ``%%writefile`` cell's file), if it is one."""
    if isinstance(answer, str | Path) and str(answer).endswith(".py") and Path(answer).is_file():
        return Path(answer)
    return None


def unwritten_parts(answer: Any) -> list[str]:
    """What in ``answer`` (a function, a method, a class's own methods, or every function of a
    script, given its path) is still a skeleton.

    Read from the source, which Jupyter keeps for every cell; anything whose source cannot
    be read is taken as written (and NotImplementedError, if it raises it, still tells).
    """
    if (script := _script(answer)) is not None:
        with contextlib.suppress(SyntaxError, OSError):
            return [f"{script.name}: {name} has no body yet" for name in unwritten(script.read_text())]
        return []
    functions: list[tuple[str, Callable[..., Any]]]
    if inspect.isclass(answer):
        functions = [(f"{answer.__name__}.{n}", f) for n, f in vars(answer).items() if inspect.isfunction(f)]
    elif inspect.ismethod(answer):
        functions = [(answer.__qualname__, answer.__func__)]
    elif inspect.isfunction(answer):
        functions = [(answer.__name__, answer)]
    else:
        return []
    found = []
    for name, function in functions:
        try:
            source = inspect.getsource(function)
        except (OSError, TypeError):
            continue
        with contextlib.suppress(SyntaxError):
            if unwritten(source, {function.__name__}):
                found.append(f"{name} has no body yet")
    return found


#: Where the library's own code lives: a NotImplementedError raised there is not the learner's blank.
_LIBRARY = (
    str(Path(__file__).resolve().parent.parent),
    *{sysconfig.get_paths()[key] for key in ("stdlib", "purelib", "platlib")},
)


def _learners(exc: BaseException) -> bool:
    """Was ``exc`` raised in the learner's code (a cell), not in a library it called?"""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return tb is not None and not str(Path(tb.tb_frame.f_code.co_filename).resolve()).startswith(_LIBRARY)


def _note(seen: list[str], answer: Any, exc: NotImplementedError) -> None:
    what = f"{answer.__name__} raised NotImplementedError"
    if _learners(exc) and what not in seen:
        seen.append(what)


def _watched(answer: Any, seen: list[str]) -> Any:
    """``answer`` (a plain function), noting in ``seen`` when the learner's code in it raises
    NotImplementedError; anything else is passed through untouched."""
    if not inspect.isfunction(answer):
        return answer
    if inspect.iscoroutinefunction(answer):

        async def watched_async(*args: Any, **kwargs: Any) -> Any:
            try:
                return await answer(*args, **kwargs)
            except NotImplementedError as exc:
                _note(seen, answer, exc)
                raise

        return functools.wraps(answer)(watched_async)

    def watched(*args: Any, **kwargs: Any) -> Any:
        try:
            return answer(*args, **kwargs)
        except NotImplementedError as exc:
            _note(seen, answer, exc)
            raise

    return functools.wraps(answer)(watched)


class Exercise:
    """One thing the learner writes: its check, its hints, and wslab's reference answer.

    Call it like the check it wraps (``report = await check_reverse(my_reverse)``), or use
    :meth:`check` in the cell after a blank, which prints the report and returns what the
    cells below should use::

        echo = await echo_exercise.check(echo)   # yours once it passes, else wslab's

    A skeleton (a body of only a docstring and ``...``, ``pass`` or ``raise
    NotImplementedError``) is told "not written yet" without being run, and so is code that
    raises NotImplementedError while it is checked. A blank in a script that a ``%%writefile``
    cell writes is checked by the script's path: its functions are read from the file.
    :meth:`hint` gives the hints one at a time; :meth:`solution` shows the reference, from
    :mod:`wslab.solutions`.
    """

    def __init__(
        self, run: Callable[..., Any], *, reference: Any, hints: Sequence[str], title: str | None = None
    ) -> None:
        self.run = run
        #: How the lesson names it (``echo_exercise``), and how its reports do (``echo``).
        self.name = run.__name__
        self.title = title or self.name.removeprefix("check_").removesuffix("_exercise").replace("_", " ")
        self.reference = reference
        self.hints = tuple(hints)
        self.hints_shown = 0
        functools.update_wrapper(self, run)

    def __repr__(self) -> str:
        return f"<exercise {self.name}: .check(yours), .hint(), .solution()>"

    # Running the check

    def _before(self, args: tuple[Any, ...]) -> tuple[CheckReport | None, tuple[Any, ...], list[str]]:
        """A "not written yet" report if an answer is a skeleton; else the answers, watched."""
        missing = [part for answer in args for part in unwritten_parts(answer)]
        if missing:
            return self._report(CheckReport(self.title, unwritten=missing)), args, []
        seen: list[str] = []
        return None, tuple(_watched(answer, seen) for answer in args), seen

    def _report(self, report: CheckReport, seen: Sequence[str] = ()) -> CheckReport:
        """The report as the learner sees it: under this exercise's title, naming it for help."""
        report.unwritten += [what for what in seen if what not in report.unwritten]
        report.exercise, report.helper = self.title, self.name
        return report

    def __call__(self, *args: Any, **options: Any) -> CheckReport:
        report, args, seen = self._before(args)
        if report is not None:
            return report
        try:
            return self._report(self.run(*args, **options), seen)
        except NotImplementedError:
            if not seen:
                raise
            return self._report(CheckReport(self.title), seen)

    def _verdict(self, report: CheckReport, answer: Any) -> Any:
        print(report)
        if report.passed:
            return answer
        print(f"(the cells below use wslab's {self._subject} until yours passes)")
        return self.reference

    @property
    def _subject(self) -> str:
        if (script := _script(self.reference)) is not None:
            return script.name
        if isinstance(self.reference, tuple):  # an exercise of several functions
            return " and ".join(part.__name__ for part in self.reference)
        return getattr(self.reference, "__name__", None) or type(self.reference).__name__

    def check(self, answer: Any, *args: Any, **options: Any) -> Any:
        """Check ``answer``, print the report, and return ``answer`` if it passed, else the reference."""
        return self._verdict(self(answer, *args, **options), answer)

    # Help

    def hint(self) -> None:
        """Print the next hint (one more each call); after the last, where the answer is."""
        if not self.hints:
            print(f"no hints for this one: {self.name}.solution() shows one answer")
            return
        index = min(self.hints_shown, len(self.hints) - 1)
        self.hints_shown = index + 1
        print(f"hint {index + 1} of {len(self.hints)}: {self.hints[index]}")
        if self.hints_shown == len(self.hints):
            print(f"(that was the last hint; {self.name}.solution() shows one answer)")

    @property
    def solution_source(self) -> str:
        """The reference answer's source, as :meth:`solution` shows it (a script's whole text)."""
        if (script := _script(self.reference)) is not None:
            return script.read_text()
        parts = self.reference if isinstance(self.reference, tuple) else (self.reference,)
        shown: list[Any] = [getattr(part, "__func__", part) for part in parts]
        return "\n\n".join(textwrap.dedent(inspect.getsource(part)) for part in shown)

    def solution(self) -> None:
        """Show the reference answer (from :mod:`wslab.solutions`), highlighted in a notebook."""
        script = _script(self.reference)
        first = self.reference[0] if isinstance(self.reference, tuple) else self.reference
        module = inspect.getmodule(first) if script is None else None
        where = script.name if script is not None else getattr(module, "__name__", "wslab.solutions")
        print(f"One answer (wslab's, from {where}); yours may differ and still pass:")
        try:
            from IPython.display import Code, display
        except ImportError:  # pragma: no cover - IPython comes with the course
            print(self.solution_source)
            return
        display(Code(self.solution_source, language="python"))


class AsyncExercise(Exercise):
    """An :class:`Exercise` whose check talks to real connections: await it, and its :meth:`check`."""

    async def __call__(self, *args: Any, **options: Any) -> CheckReport:  # type: ignore[override]
        report, args, seen = self._before(args)
        if report is not None:
            return report
        try:
            return self._report(await self.run(*args, **options), seen)
        except NotImplementedError:
            if not seen:
                raise
            return self._report(CheckReport(self.title), seen)

    async def check(self, answer: Any, *args: Any, **options: Any) -> Any:
        """Check ``answer``, print the report, and return ``answer`` if it passed, else the reference."""
        return self._verdict(await self(answer, *args, **options), answer)


def exercise(
    *, reference: Any, hints: Sequence[str], title: str | None = None
) -> Callable[[Callable[..., Any]], Exercise]:
    """Make a check function an :class:`Exercise` (an :class:`AsyncExercise` if it is async).

    ``reference`` is wslab's answer (from :mod:`wslab.solutions`; a tuple for an exercise of
    several functions, a path for a script): what :meth:`Exercise.check`
    hands the cells below until the learner's passes, and what ``solution()`` shows.
    ``hints`` go from a nudge to nearly the answer, and never give it. ``title`` is the name
    its reports start with, if not the function's (``check_numbered_echo``: "numbered echo").
    """

    def make(run: Callable[..., Any]) -> Exercise:
        kind = AsyncExercise if inspect.iscoroutinefunction(run) else Exercise
        return kind(run, reference=reference, hints=hints, title=title)

    return make
