"""Where a subscription that lost its broker goes on from: the decision alone, no broker, no I/O.

When a Redis or NATS subscription gets its connection back, three numbers say what happened
while it was away: the last sequence number it yielded, the room's last sequence number on
the broker now, and the oldest one the broker still keeps. :func:`classify_resume` turns
them into a :class:`Resumption`; :mod:`wslab.brokers.resumable` carries it out.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["Resume", "Resumption", "classify_resume"]


class Resume(enum.Enum):
    """What a resubscribing subscription finds on the broker."""

    #: Nothing was published meanwhile.
    CAUGHT_UP = "caught-up"
    #: Events were published meanwhile, and the broker still keeps every one of them.
    RECOVERABLE = "recoverable"
    #: Some events fell out of the broker's history meanwhile: they cannot be delivered.
    LOST = "lost"
    #: The broker lost the room (restarted without its data) and numbers it again from 1.
    RESET = "reset"


@dataclass(frozen=True)
class Resumption:
    """A :class:`Resume` state and where to go on from."""

    state: Resume
    #: Go on with the kept events numbered above this (they come from the history, then live).
    after: int
    #: Events that can never be delivered: missed and no longer kept.
    lost: int = 0


def classify_resume(yielded: int, last: int, oldest: int, *, same_event: bool | None = None) -> Resumption:
    """Classify what a subscription finds when it is back, from the broker's numbers alone.

    Args:
        yielded: the sequence number of the last event the subscription yielded (0: none).
        last: the room's last sequence number on the broker now (0: none).
        oldest: the oldest sequence number the broker keeps (0: it keeps nothing).
        same_event: whether the event the broker keeps under ``yielded`` is the one that was
            yielded; None when that is not known (nothing yielded, or no longer kept).

    A broker whose numbering is behind what was yielded, or that keeps another event under
    the same number, lost the room: :attr:`Resume.RESET`, going on from the start of its new
    numbering. (A new numbering that already passed ``yielded`` *and* trimmed that number
    cannot be told apart from the old one; an epoch would tell.)
    """
    if last < yielded or same_event is False:
        start = oldest or last + 1
        return Resumption(Resume.RESET, after=start - 1, lost=start - 1)
    if last == yielded:
        return Resumption(Resume.CAUGHT_UP, after=yielded)
    if oldest == 0:  # newer events, none of them kept
        return Resumption(Resume.LOST, after=last, lost=last - yielded)
    if oldest > yielded + 1:
        return Resumption(Resume.LOST, after=oldest - 1, lost=oldest - 1 - yielded)
    return Resumption(Resume.RECOVERABLE, after=yielded)
