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
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from websockets.exceptions import ConnectionClosed

from ..runtime.handles import ServerHandle, wait_until

__all__ = [
    "FAILED",
    "REPLY_TIMEOUT",
    "CheckReport",
    "Hints",
    "Verdict",
    "call",
    "call_async",
    "error_text",
    "serving",
    "until",
]

#: How long a check waits for one reply (or one answer of the learner's code) before calling it missing.
REPLY_TIMEOUT = 2.0


class Verdict(StrEnum):
    """What a check says of the learner's code, as the first line of its report shows it."""

    PASSED = "PASSED"
    NOT_YET = "NOT YET"


#: A hint table: ``(when, advice)`` rows. ``when`` is a fragment of a failed line, a tuple of
#: fragments that must all stand in one failed line, or None (any failure).
Hints = Sequence[tuple[str | tuple[str, ...] | None, str]]


@dataclass
class CheckReport:
    """The outcome of one exercise check; true when every expectation held."""

    exercise: str
    results: list[tuple[bool, str]] = field(default_factory=list)
    hints: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return bool(self.results) and all(ok for ok, _ in self.results)

    @property
    def verdict(self) -> Verdict:
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
        good = sum(ok for ok, _ in self.results)
        lines = [f"{self.exercise}: {self.verdict} ({good} of {len(self.results)} checks hold)"]
        lines += [f"  {'ok  ' if ok else 'FAIL'} {line}" for ok, line in self.results]
        if not self.passed:
            lines += [f"  hint: {hint}" for hint in self.hints]
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
