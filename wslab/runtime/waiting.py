"""Waiting until something holds, with a deadline: written once, for asyncio and for blocking code.

A wait is a generator of *steps*: it checks its condition and yields how many seconds to
sleep before the next check; its return value is the outcome. It does no sleeping itself,
so the same steps run under an event loop (:func:`run_async`) or in plain blocking code
(:func:`run_blocking`, for a pytest session fixture or an exit hook). Lessons and tests
wait on conditions like this, never on a guessed sleep.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Generator
from typing import TypeVar

__all__ = ["Steps", "poll", "run_async", "run_blocking"]

T = TypeVar("T")

#: A wait: yields seconds to sleep before looking again, returns its outcome.
Steps = Generator[float, None, T]


def poll(
    predicate: Callable[[], object],
    *,
    timeout: float,
    interval: float = 0.01,
    clock: Callable[[], float] = time.monotonic,
) -> Steps[bool]:
    """Check ``predicate`` every ``interval`` s: True as soon as it holds, False after ``timeout`` s.

    Whatever ``predicate`` raises ends the wait (a child process that exited, say).
    """
    deadline = clock() + timeout
    while not predicate():
        if clock() >= deadline:
            return False
        yield interval
    return True


def run_blocking(steps: Steps[T]) -> T:
    """Carry out a wait by blocking this thread between its checks; its outcome."""
    try:
        while True:
            time.sleep(next(steps))
    except StopIteration as done:
        return done.value


async def run_async(steps: Steps[T]) -> T:
    """Carry out a wait in the running event loop, other tasks running between its checks."""
    try:
        while True:
            await asyncio.sleep(next(steps))
    except StopIteration as done:
        return done.value
