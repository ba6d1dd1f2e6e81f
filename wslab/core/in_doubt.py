"""Messages in doubt across a broker reset: the decision alone, no I/O.

When a broker comes back without a room's data, the messages its chat server published just
before and did not see delivered are in doubt: the broker that came back may have numbered them
already (a publish can return before the subscription yields the reset: seen with Redis and
Kafka), or they died with the old one. The new numbering tells: an event carrying the message
delivers it; an event numbered at or past the seq its publish got, without it, means it is gone.
So does the new numbering read at once (:meth:`InDoubt.check`): every publish in doubt returned
before the reset, so one the new broker numbered is in its log already. Without that read, a
message would stay in doubt until the room's new numbering caught up with its old seq, and a
quiet room never does.
"""

from __future__ import annotations

from collections.abc import Iterable

from .room_event import RoomEvent

__all__ = ["InDoubt"]

#: ``(author, ref)``: one message of one user.
Key = tuple[str, str]


class InDoubt:
    """The messages in doubt since the last reset, and the seq each one's publish got."""

    def __init__(self) -> None:
        self._seqs: dict[Key, int] = {}

    def __contains__(self, key: object) -> bool:
        return key in self._seqs

    def __bool__(self) -> bool:
        return bool(self._seqs)

    def add(self, published: Iterable[tuple[Key, int]]) -> None:
        """``(key, seq)`` of messages published in the numbering that just ended, not delivered."""
        self._seqs.update(published)

    @property
    def first(self) -> int:
        """The lowest seq a message in doubt got (0: none in doubt)."""
        return min(self._seqs.values(), default=0)

    def check(self, kept: Iterable[RoomEvent]) -> list[Key]:
        """The new numbering's events from :attr:`first` on: the messages in doubt not among
        them, now known to be gone. Those among them wait for their delivery (:meth:`settle`)."""
        numbered = {((event.name, event.ref), event.seq) for event in kept if event.ref}
        gone = [key for key, seq in self._seqs.items() if (key, seq) not in numbered]
        for key in gone:
            del self._seqs[key]
        return gone

    def settle(self, event: RoomEvent) -> list[Key]:
        """``event`` of the new numbering was delivered: the messages now known to be gone."""
        self._seqs.pop((event.name, event.ref), None)
        gone = [key for key, seq in self._seqs.items() if seq <= event.seq]
        for key in gone:
            del self._seqs[key]
        return gone
