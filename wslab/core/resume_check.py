"""A client resuming into a numbering its broker has since lost: the decision alone, no I/O.

A client that was away while the broker restarted without the room's data comes back with
``resume=N`` from the old numbering. The broker numbers the room again from 1, so N may
already exist there, naming another event: replaying "after N" would skip the new
numbering's first N events without a word. Two things give the old numbering away: an N past
the room's last seq, or another event than the client's under N (the client sends its event
N's :func:`~wslab.core.room_event.fingerprint`, the server compares it with the broker's).

The server's own subscription may not have noticed the reset yet (its broker connection
comes back with a backoff of its own): a room still fanning out the lost numbering would mix
it with the new one in what it sends the client. Such a room is behind its broker
(:func:`room_behind`), and sends newcomers away to try again a moment later.
"""

from __future__ import annotations

from collections.abc import Sequence

from .room_event import RoomEvent

__all__ = ["LAG_GRACE", "Lag", "from_lost_numbering", "room_behind"]

#: Seconds a room behind its broker sends newcomers away, at most.
LAG_GRACE = 5.0


def from_lost_numbering(
    resume: int | None, fingerprint: str | None, room_seq: int, kept: Sequence[RoomEvent]
) -> bool:
    """Whether ``resume`` (with the client's ``fingerprint`` of its event ``resume``) belongs to a
    numbering the broker has lost, given the room's last seq and the kept events from ``resume`` on.

    An event the broker no longer keeps cannot be compared: that resume is taken as it comes.
    """
    if not resume:
        return False
    if resume > room_seq:
        return True
    if fingerprint is None or not kept or kept[0].seq != resume:
        return False
    return kept[0].fingerprint != fingerprint


def room_behind(
    room_seq: int, last_fanned_out: RoomEvent | None, broker_seq: int, kept: Sequence[RoomEvent]
) -> bool:
    """Whether a room that had fanned out up to ``room_seq`` (that event: ``last_fanned_out``)
    before the broker was read still follows a numbering its broker has lost, given what the
    broker said then: its last seq and some of its kept events. A subscription can never be
    ahead of its broker: past it, or another event under the same seq, means a reset."""
    if room_seq > broker_seq:
        return True
    if last_fanned_out is None or last_fanned_out.seq != room_seq:
        return False
    theirs = next((event for event in kept if event.seq == room_seq), None)
    return theirs is not None and not _same(theirs, last_fanned_out)


def _same(a: RoomEvent, b: RoomEvent) -> bool:
    return (a.kind, a.name, a.text, a.via, a.ref) == (b.kind, b.name, b.text, b.via, b.ref)


class Lag:
    """Whether a room behind its broker sends newcomers away: while its subscription catches
    up (a second or so), and for :data:`LAG_GRACE` seconds at most, lest a broker whose log
    disagrees with itself (tansu has been seen giving two records one offset) keep everyone out."""

    def __init__(self) -> None:
        self._since: float | None = None

    def holds_back(self, behind: bool, now: float) -> bool:
        if not behind:
            self._since = None
            return False
        if self._since is None:
            self._since = now
        return now - self._since < LAG_GRACE
