"""The fleet's changes on one server: numbered by a broker, folded into a :class:`~wslab.core.fleet.Fleet`.

Like lesson 02's chat server, a dashboard server publishes every change through a
:class:`~wslab.brokers.Broker` and applies what its subscription yields, even when it is
alone: two servers over Redis (lesson 06) then share one numbering and one history, and
a client can resume on either of them from the last ``seq`` it saw.

Every connection of every mode waits on the same thing, :meth:`FleetFeed.wait_after`, and
then reads what it missed from the fleet's shared history: no queue per client.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from collections.abc import Callable, Iterable

from ..brokers.base import Broker, BrokerUnavailable
from ..brokers.memory import MemoryBroker
from ..core.fleet import DEFAULT_SERVICES, Change, Fleet, FleetSimulation, Status
from ..core.history import HistoryTooOld
from ..core.room_event import BrokerReset, EventKind, RoomEvent

__all__ = ["FleetFeed"]

logger = logging.getLogger("wslab.dashboard")


# The broker carries room events; a change travels as one (the only place that knows how).


def _room_event(change: Change, room: str) -> RoomEvent:
    body = json.dumps({"version": change.version, "status": str(change.status)})
    return RoomEvent(EventKind.CHAT, change.service, body, room, via=change.via, at=change.at)


def _change(event: RoomEvent) -> Change:
    body = json.loads(event.text)
    return Change(event.name, int(body["version"]), Status(body["status"]), event.seq, event.at, event.via)


class FleetFeed:
    """One server's view of the fleet, kept current from a broker.

    Args:
        broker: numbers and shares the changes (default: an in-process one, closed with
            the feed; a broker passed in is the caller's to close).
        server_id: this server's name, in each change it publishes (``via``).
        services: the fleet's services at the start.
        room: the broker room the changes go through.
    """

    def __init__(
        self,
        broker: Broker | None = None,
        *,
        server_id: str = "dashboard",
        services: Iterable[str] = DEFAULT_SERVICES,
        room: str = "fleet",
        history: int = 1000,
    ) -> None:
        self._owns_broker = broker is None
        self.broker = broker or MemoryBroker(history=history)
        self.server_id = server_id
        self.room = room
        self.services = tuple(services)
        self.fleet = Fleet(self.services, history=history)
        self.published = 0
        #: Set by :meth:`close_streams`: every waiting connection ends (the server is stopping).
        self.closed = False
        self._changed = asyncio.Event()
        self._listeners: list[Callable[[Change], object]] = []
        self._reader: asyncio.Task[None] | None = None
        self._simulation: asyncio.Task[None] | None = None

    # Lifecycle

    async def start(self) -> FleetFeed:
        """Subscribe, then catch up from the broker's history: from now on the fleet is current."""
        subscription = await self.broker.subscribe(self.room)
        try:
            kept = await self.broker.history_after(self.room, 0)
        except HistoryTooOld as exc:  # trimmed: start from what is still kept
            kept = await self.broker.history_after(self.room, exc.oldest - 1)
        for event in kept:
            self._apply(_change(event))
        self._reader = asyncio.create_task(self._read(subscription), name=f"fleet-feed-{self.server_id}")
        return self

    def close_streams(self) -> None:
        """Wake every waiting connection and tell it to end: an SSE stream would otherwise hold
        the server's shutdown until its grace period runs out."""
        self.closed = True
        self._notify()

    async def stop(self) -> None:
        self.close_streams()
        for task in (self._simulation, self._reader):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._owns_broker:
            await self.broker.close()

    async def _read(self, subscription: object) -> None:
        async for item in subscription:  # type: ignore[attr-defined]
            if isinstance(item, BrokerReset):
                logger.warning("the broker lost the fleet's history; from seq %d on", item.last_seq)
                self.fleet.reset(item.last_seq)
                self._notify()
            else:
                self._apply(_change(item))

    def _apply(self, change: Change) -> None:
        if self.fleet.apply(change):
            self._notify()
            for listener in list(self._listeners):
                listener(change)

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    # What the endpoints use

    async def wait_after(self, seq: int, timeout: float | None = None) -> bool:
        """Until the fleet holds something after ``seq`` (True), or ``timeout`` s pass or the
        feed closes (False)."""
        while self.fleet.seq == seq and not self.closed:
            try:
                await asyncio.wait_for(self._changed.wait(), timeout)
            except TimeoutError:
                return False
        return not self.closed

    def on_change(self, listener: Callable[[Change], object]) -> Callable[[], None]:
        """Call ``listener`` with each change as it is applied; returns how to stop."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    async def report(self, change: Change) -> Change:
        """Publish a change (a deploy system reporting one); returns it numbered by the broker.

        Raises :class:`~wslab.brokers.BrokerUnavailable` if the broker cannot take it.
        """
        stamped = Change(change.service, change.version, change.status, 0, time.time(), self.server_id)
        numbered = await self.broker.publish(_room_event(stamped, self.room))
        self.published += 1
        return _change(numbered)

    # The simulated fleet

    def simulate(self, rate: float, *, seed: int = 7) -> asyncio.Task[None]:
        """Report a seeded fleet's changes at ``rate`` per second on average (until :meth:`stop`)."""
        simulation = FleetSimulation(self.services, seed=seed)
        pause = random.Random(seed + 1)

        async def run() -> None:
            while True:
                await asyncio.sleep(pause.expovariate(rate))
                try:
                    await self.report(simulation.next_change())
                except BrokerUnavailable as exc:
                    logger.warning("a simulated change was not reported: %s", exc)

        if self._simulation is not None:
            self._simulation.cancel()
        self._simulation = asyncio.create_task(run(), name=f"fleet-simulation-{self.server_id}")
        return self._simulation
