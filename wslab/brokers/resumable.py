"""The resubscribe loop of a subscription to a broker in another process, written once.

A Redis or NATS subscription whose connection drops comes back the same way: with backoff
it listens again, reads the room's numbers on the broker, decides with
:func:`~wslab.brokers.resumption.classify_resume` whether what it missed is still kept, lost
or gone with a broker that lost the room, yields a :class:`~wslab.brokers.base.BrokerReset`
in the last case, and replays what the broker kept. Each broker supplies only its client
calls: :meth:`ResumableSubscription._reattach`, ``_read_state`` and ``_catch_up``.
"""

from __future__ import annotations

import asyncio
import logging
from abc import abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from ..core.room_event import BrokerReset
from .base import BrokerUnavailable, QueuedSubscription
from .resumption import Resume, Resumption, classify_resume

__all__ = ["BrokerState", "ResumableSubscription"]

logger = logging.getLogger("wslab.brokers")


@dataclass(frozen=True)
class BrokerState:
    """A room on the broker, as a resubscribing subscription finds it."""

    #: The room's last sequence number (0: none).
    last: int
    #: The oldest sequence number the broker keeps (0: it keeps nothing).
    oldest: int
    #: What the broker keeps under the subscription's last yielded number, or None.
    stored: bytes | None = None


class ResumableSubscription(QueuedSubscription):
    """One room's events from a broker that keeps them, resuming after every outage.

    After a lost connection it resubscribes and goes on where it stopped: each event once,
    in order; a :class:`~wslab.brokers.base.BrokerReset` where the broker lost the room.

    Counters for lessons and tests: ``reconnects`` (times it resubscribed), ``recovered``
    (missed events replayed from the broker's history), ``lost`` (missed events the broker
    no longer kept) and ``resets`` (times the broker had lost the room's data).
    """

    #: The broker as log messages name it.
    broker_name = "the broker"
    #: What a failed attempt raises: the loop waits for the next delay and tries again.
    retry_on: tuple[type[BaseException], ...] = (BrokerUnavailable,)

    def __init__(self, room: str, *, delays: Callable[[], Iterator[float]]) -> None:
        super().__init__()
        self.room = room
        #: The sequence number of the last event yielded (or of the room when subscribing).
        self.last_seq = 0
        self.reconnects = 0
        self.recovered = 0
        self.lost = 0
        self.resets = 0
        #: The last yielded event as the broker stores it: tells a broker that lost the room apart.
        self._last_payload: bytes | None = None
        self._delays = delays
        self._closing = False

    # What each broker supplies

    @abstractmethod
    async def _reattach(self) -> None:
        """Listen to the room again (new events are kept back until ``_catch_up``)."""

    @abstractmethod
    async def _read_state(self) -> BrokerState:
        """The room's numbers on the broker, and what it stores under ``last_seq``."""

    @abstractmethod
    async def _catch_up(self, after: int, last: int) -> None:
        """Yield the kept events numbered above ``after`` (up to ``last``: recovered), then live ones."""

    async def _detach(self) -> None:
        """Let go of what a failed attempt left half made."""

    # Written once

    async def _resubscribe(self) -> bool:
        """Subscribe again, with backoff, and go on where this stopped; False if closed first."""
        for delay in self._delays():
            if self._closing:
                return False
            try:
                await self._reattach()
                state = await self._read_state()
                self._go_on_from(self._classify(state), state)
                await self._catch_up(self.last_seq, state.last)
            except self.retry_on as exc:
                logger.debug("room %s: cannot resubscribe to %s yet: %r", self.room, self.broker_name, exc)
                await self._detach()
                await asyncio.sleep(delay)
                continue
            self.reconnects += 1
            logger.info("room %s: back on %s after seq %d", self.room, self.broker_name, self.last_seq)
            return True
        return False

    def _classify(self, state: BrokerState) -> Resumption:
        same = None
        if state.stored is not None and self._last_payload is not None:
            same = state.stored == self._last_payload
        return classify_resume(self.last_seq, state.last, state.oldest, same_event=same)

    def _go_on_from(self, resumption: Resumption, state: BrokerState) -> None:
        """Count and log ``resumption``, yield a reset, and move ``last_seq`` to where events go on."""
        was = self.last_seq
        if resumption.state is Resume.RESET:
            self.resets += 1
            logger.warning(
                "room %s: %s lost the room's data (restarted without it?): it is at seq %d, this "
                "subscription had reached %d. Events published before are gone; going on with the "
                "new numbering after seq %d.",
                self.room,
                self.broker_name,
                state.last,
                was,
                resumption.after,
            )
            self.put(BrokerReset(self.room, resumption.after))
        elif resumption.state is Resume.LOST:
            logger.warning(
                "room %s: events %d..%d fell out of %s's history before they could be delivered",
                self.room,
                was + 1,
                resumption.after,
                self.broker_name,
            )
        self.lost += resumption.lost
        if resumption.after != was:
            self.last_seq, self._last_payload = resumption.after, None
