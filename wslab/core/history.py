"""A room's numbered history, and a client's view of the numbering: no I/O.

Sequence numbers are assigned once, by the broker, so they mean the same on every server of
a scaled-out deployment; a :class:`History` keeps the newest events for clients that
reconnect, and a :class:`SequenceTracker` lets a client see what it missed.
"""

from __future__ import annotations

from collections import deque
from enum import StrEnum
from typing import TYPE_CHECKING

from .errors import WslabError

if TYPE_CHECKING:
    from .room_event import RoomEvent

__all__ = ["History", "HistoryTooOld", "SequenceTracker", "Tracked"]


class HistoryTooOld(WslabError, LookupError):
    """The history no longer reaches back to what a client asked for.

    Not a reason to close: the server tells the client (``history-lost``) and replays what
    is still kept.
    """

    def __init__(self, wanted_after: int, oldest: int) -> None:
        super().__init__(f"history starts at seq {oldest}; events {wanted_after + 1}..{oldest - 1} are gone")
        self.wanted_after = wanted_after
        self.oldest = oldest


class History:
    """The newest ``maxlen`` events of one room, in sequence order."""

    def __init__(self, *, maxlen: int = 1000) -> None:
        self._events: deque[RoomEvent] = deque(maxlen=maxlen)

    def __len__(self) -> int:
        return len(self._events)

    @property
    def last_seq(self) -> int:
        return self._events[-1].seq if self._events else 0

    def append(self, event: RoomEvent) -> None:
        if event.seq <= self.last_seq:
            raise ValueError(f"seq {event.seq} is not after {self.last_seq}")
        self._events.append(event)

    def after(self, seq: int) -> list[RoomEvent]:
        """Every kept event with a sequence number above ``seq``.

        Raises:
            HistoryTooOld: when events after ``seq`` existed but have been dropped.
        """
        if not self._events or seq >= self.last_seq:
            return []
        oldest = self._events[0].seq
        if seq + 1 < oldest:
            raise HistoryTooOld(seq, oldest)
        return [event for event in self._events if event.seq > seq]


class Tracked(StrEnum):
    """What one sequence number told a :class:`SequenceTracker`."""

    NEXT = "next"
    DUPLICATE = "duplicate"
    GAP = "gap"
    FIRST = "first"


class SequenceTracker:
    """A client's view of a room's sequence: spots duplicates and gaps.

    ``missing`` lists every range ``(first, last)`` of sequence numbers that never
    arrived, so a test or a lesson can show that nothing was lost.
    """

    def __init__(self, last: int | None = None) -> None:
        self.last = last
        self.missing: list[tuple[int, int]] = []
        self.duplicates = 0

    def observe(self, seq: int) -> Tracked:
        if self.last is None:
            self.last = seq
            return Tracked.FIRST
        if seq <= self.last:
            self.duplicates += 1
            return Tracked.DUPLICATE
        result = Tracked.NEXT
        if seq > self.last + 1:
            self.missing.append((self.last + 1, seq - 1))
            result = Tracked.GAP
        self.last = seq
        return result
