"""Ctrl-C and SIGTERM for command-line programs under asyncio: handled, then put back.

Every long-running command (``serve``, ``services``, ``client``, ``bench scale``) stops on
either signal by running its own clean-up (close connections with 1001, stop child
processes) instead of dying mid-sentence.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

__all__ = ["STOP_SIGNALS", "cancel_on_signal", "handle_signals", "until_signalled"]

T = TypeVar("T")

#: What a user sends to stop a program: Ctrl-C in its terminal, or ``kill``.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def handle_signals(
    callback: Callable[[signal.Signals], object], signals: tuple[signal.Signals, ...] = STOP_SIGNALS
) -> Callable[[], None]:
    """Call ``callback(sig)`` in the running loop on each of ``signals``; returns the undo.

    Where signals cannot be handled (Windows, a thread other than the main one) nothing is
    installed and the default behaviour stays: Ctrl-C still raises KeyboardInterrupt.
    """
    loop = asyncio.get_running_loop()
    handled: list[signal.Signals] = []
    for sig in signals:
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, callback, sig)
            handled.append(sig)

    def undo() -> None:
        for sig in handled:
            with contextlib.suppress(Exception):  # the loop may be closing already
                loop.remove_signal_handler(sig)

    return undo


async def until_signalled(
    signals: tuple[signal.Signals, ...] = STOP_SIGNALS, *, on_ready: Callable[[], None] | None = None
) -> signal.Signals:
    """Wait for the first of ``signals``; which one came.

    ``on_ready`` runs once the handlers are in place: announce the program there, so that
    whoever reads the announcement can already stop it cleanly.
    """
    received: asyncio.Future[signal.Signals] = asyncio.get_running_loop().create_future()

    def first(sig: signal.Signals) -> None:
        if not received.done():
            received.set_result(sig)

    undo = handle_signals(first, signals)
    try:
        if on_ready is not None:
            on_ready()
        return await received
    finally:
        undo()


async def cancel_on_signal(
    work: Coroutine[Any, Any, T], signals: tuple[signal.Signals, ...] = STOP_SIGNALS
) -> tuple[T | None, signal.Signals | None]:
    """Run ``work`` until it ends or one of ``signals`` cancels it: ``(its result, None)``, or
    ``(None, the signal)`` once its clean-up (``finally`` clauses) has run.

    For a command that must stay stoppable while it starts up (waiting for a broker) or
    while it runs a long job (a benchmark), and stop through its own clean-up.
    """
    task = asyncio.ensure_future(work)
    received: list[signal.Signals] = []

    def on_signal(sig: signal.Signals) -> None:
        received.append(sig)
        task.cancel()

    undo = handle_signals(on_signal, signals)
    try:
        return await task, None
    except asyncio.CancelledError:
        if not received:
            raise  # cancelled from outside (Ctrl-C under asyncio.run, when SIGINT is not ours)
        return None, received[0]
    finally:
        undo()
