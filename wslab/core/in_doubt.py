"""Messages in doubt across a broker reset: the decision alone, no I/O.

When a broker comes back without a room's data, the messages its chat server published just
before and did not see delivered are in doubt: the broker that came back may have numbered them
already (a publish can return before the subscription yields the reset: seen with Redis and
Kafka), or they died with the old one. The new numbering tells: an event carrying the message
delivers it; an event numbered at or past the seq its publish got, without it, means it is gone.
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

    def settle(self, event: RoomEvent) -> list[Key]:
        """``event`` of the new numbering was delivered: the messages now known to be gone."""
        self._seqs.pop((event.name, event.ref), None)
        gone = [key for key, seq in self._seqs.items() if seq <= event.seq]
        for key in gone:
            del self._seqs[key]
        return gone
