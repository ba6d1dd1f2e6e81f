"""The in-process broker: one Python process, no network, nothing to install.

It stands where the original tutorial's ``tokio::sync::broadcast`` channel stood, with
two differences that matter: it numbers events, and it keeps a bounded history, so a
client that falls behind can catch up instead of silently losing messages.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..core.history import History
from ..core.room_event import RoomEvent
from .base import Broker, QueuedSubscription, Subscription

__all__ = ["MemoryBroker"]


class _MemorySubscription(QueuedSubscription):
    def __init__(self, broker: MemoryBroker, room: str) -> None:
        self._broker = broker
        self._room = room
        super().__init__()

    async def close(self) -> None:
        self._broker._rooms[self._room].subscribers.discard(self)
        self.end()


@dataclass
class _Room:
    history: History
    seq: int = 0
    subscribers: set[_MemorySubscription] = field(default_factory=set)


class MemoryBroker(Broker):
    """Fan-out inside one event loop, with per-room sequence numbers and history."""

    kind = "memory"

    def __init__(self, *, history: int = 1000) -> None:
        self._history_size = history
        self._rooms: dict[str, _Room] = {}

    def _room(self, name: str) -> _Room:
        room = self._rooms.get(name)
        if room is None:
            room = self._rooms[name] = _Room(History(maxlen=self._history_size))
        return room

    async def publish(self, event: RoomEvent) -> RoomEvent:
        room = self._room(event.room)
        room.seq += 1
        numbered = event.with_seq(room.seq)
        room.history.append(numbered)
        for subscription in room.subscribers:
            subscription.put(numbered)
        return numbered

    async def subscribe(self, room: str) -> Subscription:
        subscription = _MemorySubscription(self, room)
        self._room(room).subscribers.add(subscription)
        return subscription

    async def history_after(self, room: str, seq: int) -> list[RoomEvent]:
        return self._room(room).history.after(seq)

    async def last_seq(self, room: str) -> int:
        return self._room(room).seq

    async def close(self) -> None:
        for room in self._rooms.values():
            for subscription in list(room.subscribers):
                await subscription.close()
