"""Where a resubscribing broker subscription goes on from: the pure decision, no broker, no socket.

The same three numbers decide for Redis and NATS alike (``wslab.brokers.resumption``); the
real restarts that produce them run in ``test_brokers.py``.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from wslab.brokers import resumption
from wslab.brokers.resumption import Resume, Resumption, classify_resume


@pytest.mark.parametrize(
    ("yielded", "last", "oldest", "expected"),
    [
        # Nothing published meanwhile: go on live.
        (0, 0, 0, Resumption(Resume.CAUGHT_UP, after=0)),
        (7, 7, 1, Resumption(Resume.CAUGHT_UP, after=7)),
        # Missed events, all kept: replay them after what was yielded.
        (5, 9, 1, Resumption(Resume.RECOVERABLE, after=5)),
        (5, 9, 6, Resumption(Resume.RECOVERABLE, after=5)),  # exactly the oldest kept is next
        (0, 3, 1, Resumption(Resume.RECOVERABLE, after=0)),
        # Some fell out of the history: count them, go on from the oldest kept.
        (5, 20, 7, Resumption(Resume.LOST, after=6, lost=1)),
        (5, 20, 11, Resumption(Resume.LOST, after=10, lost=5)),
        (5, 9, 0, Resumption(Resume.LOST, after=9, lost=4)),  # newer events, none kept
        # The broker is behind what was yielded: it lost the room; the new numbering from its start.
        (5, 0, 0, Resumption(Resume.RESET, after=0)),
        (5, 2, 1, Resumption(Resume.RESET, after=0)),
        (50, 40, 31, Resumption(Resume.RESET, after=30, lost=30)),  # its first 30 already trimmed
    ],
)
def test_the_three_numbers_decide(yielded: int, last: int, oldest: int, expected: Resumption) -> None:
    assert classify_resume(yielded, last, oldest) == expected


def test_another_event_under_the_yielded_number_is_a_reset_even_when_the_numbering_passed_it() -> None:
    """A broker that lost the room and already numbered past it: only the stored event tells."""
    assert classify_resume(3, 8, 1, same_event=False) == Resumption(Resume.RESET, after=0)
    assert classify_resume(3, 8, 1, same_event=True) == Resumption(Resume.RECOVERABLE, after=3)
    assert classify_resume(3, 8, 1, same_event=None) == Resumption(Resume.RECOVERABLE, after=3)


def test_going_on_never_yields_an_event_twice_nor_skips_a_kept_one() -> None:
    """For every small case: events after ``after`` are exactly the kept ones not yet yielded."""
    for yielded in range(6):
        for last in range(yielded, 9):
            for oldest in [0, *range(1, last + 1)]:
                resumption = classify_resume(yielded, last, oldest)
                kept = set(range(oldest, last + 1)) if oldest else set()
                replayed = {seq for seq in kept if seq > resumption.after}
                assert replayed == {seq for seq in kept if seq > yielded}, (yielded, last, oldest)
                assert resumption.lost == len(set(range(yielded + 1, last + 1)) - kept)


def test_the_decision_needs_no_asyncio_and_no_broker_client() -> None:
    """The module loads on its own (not through ``wslab``, whose package imports the servers)."""
    code = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('resumption', {resumption.__file__!r})\n"
        "module = importlib.util.module_from_spec(spec)\n"
        "sys.modules['resumption'] = module\n"
        "spec.loader.exec_module(module)\n"
        "assert module.classify_resume(1, 0, 0).state is module.Resume.RESET\n"
        "print(sorted(m for m in ('asyncio', 'redis', 'nats', 'websockets', 'wslab') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
