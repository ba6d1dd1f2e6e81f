"""What a chat server needs from a pub/sub system, whatever carries the messages.

The chat server publishes every room event through a :class:`Broker` and delivers to its
own clients whatever its :class:`Subscription` yields, even on a single server. So moving
from one process to many is a change of broker object, not of chat code: the in-process
broker here, Redis or NATS in lesson 06.

Contract, which every implementation's tests check:

* :meth:`Broker.publish` assigns the event the room's next sequence number, exactly
  once, and keeps it in a bounded history;
* every subscription of a room yields that room's events in sequence order;
* :meth:`Broker.history_after` returns the kept events after a sequence number, or
  raises :class:`~wslab.protocol.HistoryTooOld` when they are no longer kept.

A broker in another process can be down: its methods then raise
:class:`BrokerUnavailable` instead of waiting, and its subscriptions reconnect on their
own (lesson 06).
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

from ..protocol import RoomEvent, backoff_delays

__all__ = [
    "Broker",
    "BrokerReset",
    "BrokerUnavailable",
    "QueuedSubscription",
    "Subscription",
    "reconnect_delays",
]


def reconnect_delays() -> Iterator[float]:
    """Delays between a broker client's reconnection attempts: 0.1 s doubling up to 2 s, jittered.

    A shorter cap than a browser's: the clients here are a handful of servers, not a
    crowd, and each second they stay away their users' chat stands still.
    """
    return backoff_delays(first=0.1, cap=2.0)


class BrokerUnavailable(ConnectionError):
    """The broker cannot be reached right now: nothing was published (or, after a
    timeout, it is not known whether it was). The caller decides: retry, or tell the user.
    """


@dataclass(frozen=True)
class BrokerReset:
    """What a subscription yields, in order among the events, when its broker came back without
    the room's data (a Redis restarted without persistence, a NATS stream recreated).

    The sequence numbers start again after ``last_seq`` (0 when the room is empty): events
    numbered before the reset will never be delivered, and a client holding an older, higher
    ``seq`` must be told, or it would ignore every new event as already seen.
    """

    room: str
    #: The room's last sequence number on the broker now that it is back.
    last_seq: int


class Subscription(ABC, AsyncIterator[RoomEvent]):
    """An async iterator over one room's events; ends after :meth:`close`."""

    def __aiter__(self) -> Subscription:
        return self

    @abstractmethod
    async def __anext__(self) -> RoomEvent: ...

    @abstractmethod
    async def close(self) -> None: ...


class QueuedSubscription(Subscription):
    """A subscription fed through a queue: the broker's reader puts events in, the
    server's dispatch loop takes them out, and :meth:`end` marks where iteration stops.

    Unbounded on purpose: the consumer is a server's dispatch loop, which never blocks on
    a client, so the queue only holds what arrived since its last turn.
    """

    _END = object()

    def __init__(self) -> None:
        self.queue: asyncio.Queue[object] = asyncio.Queue()

    def put(self, event: RoomEvent) -> None:
        self.queue.put_nowait(event)

    def end(self) -> None:
        """No more events: iteration stops once the events queued before this are taken."""
        self.queue.put_nowait(self._END)

    async def __anext__(self) -> RoomEvent:
        item = await self.queue.get()
        if item is self._END:
            self.queue.put_nowait(item)  # stay ended for any later call
            raise StopAsyncIteration
        return item  # type: ignore[return-value]


class Broker(ABC):
    #: Shown in lessons and benchmarks: ``memory``, ``redis``, ``nats``.
    kind: str = "broker"

    @abstractmethod
    async def publish(self, event: RoomEvent) -> RoomEvent:
        """Number ``event``, keep it in history, deliver it to subscribers; returns it numbered."""

    @abstractmethod
    async def subscribe(self, room: str) -> Subscription:
        """Start receiving ``room``'s events; events published after this call are yielded."""

    @abstractmethod
    async def history_after(self, room: str, seq: int) -> list[RoomEvent]:
        """The kept events of ``room`` numbered above ``seq``, oldest first."""

    @abstractmethod
    async def last_seq(self, room: str) -> int:
        """The sequence number of ``room``'s newest event (0 when there is none)."""

    @abstractmethod
    async def close(self) -> None:
        """End every subscription and release connections."""
