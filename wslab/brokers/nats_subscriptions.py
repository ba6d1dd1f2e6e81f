"""The subscriptions of :class:`~wslab.brokers.nats.NatsBroker`: a resumable JetStream consumer,
and core NATS's at-most-once one for lesson 06's counter-example. Both hold the broker's
:class:`~wslab.brokers.nats_streams.NatsStreams`, not the broker."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import nats.errors
import nats.js.errors
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription as NatsSubscriptionHandle

from ..core.room_event import RoomEvent
from .base import BrokerUnavailable, QueuedSubscription
from .nats_streams import NatsStreams
from .resumable import BrokerState, ResumableSubscription
from .resumption import Resume, classify_resume

__all__ = ["CoreNatsSubscription", "NatsSubscription"]

logger = logging.getLogger("wslab.brokers.nats")


class NatsSubscription(ResumableSubscription):
    """One room's events from a JetStream consumer; after an outage, a new consumer resumes.

    Counters as for every :class:`~wslab.brokers.resumable.ResumableSubscription`:
    ``reconnects``, ``recovered``, ``lost``, ``resets``.
    """

    broker_name = "NATS"
    retry_on = (BrokerUnavailable, nats.errors.Error, nats.js.errors.Error)  # JetStream still starting, say

    def __init__(self, streams: NatsStreams, room: str) -> None:
        super().__init__(room, delays=streams.reconnect_delays)
        self.streams = streams
        self._handle: NatsSubscriptionHandle | None = None
        self._consumer_name: str | None = None
        #: Counts consumers: messages of a replaced one are ignored (they carry the stream's
        #: subject, not the inbox's, so the generation tells them apart).
        self._generation = 0
        #: Stream sequence at the last resubscription: events up to it count as recovered.
        self._replay_until = 0
        self._advanced = asyncio.Event()
        self._resuming: asyncio.Task[Any] | None = None
        self._closed = False

    def __repr__(self) -> str:
        return f"<NatsSubscription {self.streams.stream(self.room)} last_seq={self.last_seq}>"

    async def start(self) -> None:
        """Subscribe: on return, every event published from now on will be yielded."""
        await self.streams.ensure_stream(self.room)
        _, last, _ = await self.streams.stream_state(self.room)
        self.last_seq = last
        self._last_payload = await self.streams.stored_payload(self.room, last) if last else None
        await self._attach(last + 1)

    async def _detach_consumer(self) -> None:
        """Stop the current consumer; its messages still in flight are ignored from now on."""
        handle, name = self._handle, self._consumer_name
        self._handle = self._consumer_name = None
        self._generation += 1
        await self.streams.drop_consumer(self.room, handle, name)

    async def _attach(self, start: int) -> None:
        """Listen to a new consumer starting at ``start``, replacing the current one."""
        await self._detach_consumer()
        generation = self._generation

        async def on_message(msg: Msg) -> None:
            if generation == self._generation:
                await self._on_message(msg)

        self._handle, self._consumer_name = await self.streams.consumer(self.room, start, on_message)

    # What the resubscribe loop needs

    async def _reattach(self) -> None:
        await self._detach_consumer()
        await self.streams.ensure_stream(self.room)

    async def _read_state(self) -> BrokerState:
        first, last, messages = await self.streams.stream_state(self.room)
        was = self.last_seq
        stored = await self.streams.stored_payload(self.room, was) if was and was <= last else None
        return BrokerState(last=last, oldest=first if messages else 0, stored=stored)

    async def _catch_up(self, after: int, last: int) -> None:
        self._replay_until = last
        await self._attach(after + 1)

    def resume(self) -> None:
        """The connection is back (called by the broker): resubscribe in a task of its own."""
        if self._closed:
            return
        if self._resuming is not None and not self._resuming.done():
            self._resuming.cancel()  # a re-read started before the outage: this does it again
        self._resuming = asyncio.get_running_loop().create_task(self._resubscribe())

    # Reading

    async def _on_message(self, msg: Msg) -> None:
        if self._closed or not msg.reply:
            return  # a status message
        seq = msg.metadata.sequence.stream
        if seq <= self.last_seq:
            return
        if seq > self.last_seq + 1 and not await self._bridge_gap(seq):
            return
        self.last_seq, self._last_payload = seq, msg.data
        self._advanced.set()
        try:
            event = RoomEvent.from_json(msg.data).with_seq(seq)
        except (ValueError, KeyError, TypeError) as exc:
            logger.warning("room %s: seq %d is not a room event, skipped: %r", self.room, seq, exc)
            return
        if seq <= self._replay_until:
            self.recovered += 1
        self.put(event)

    async def _bridge_gap(self, seq: int) -> bool:
        """A live event numbered past ``last_seq + 1``: True to take it now (what was between is
        lost for good), False when a new consumer re-reads the missed ones first."""
        if self._resuming is not None and not self._resuming.done():
            return False  # a new consumer is on its way; it starts at the right place
        first, _, _ = await self.streams.stream_state(self.room)
        resumption = classify_resume(self.last_seq, seq, first or seq)
        if resumption.state is Resume.LOST:
            self._go_on_from(resumption, BrokerState(last=seq, oldest=first))
            if resumption.after + 1 == seq:
                return True
        # Still in the stream, so this client dropped them (too slow): start over there.
        # In a task of its own: replacing the consumer ends the task running this callback.
        logger.warning(
            "room %s: missed seq %d..%d; reading them again", self.room, resumption.after + 1, seq - 1
        )
        self._resuming = asyncio.get_running_loop().create_task(self._reread(resumption.after + 1))
        return False

    async def _reread(self, start: int) -> None:
        try:
            await self._attach(start)
        except BrokerUnavailable as exc:  # the reconnect's resubscription will start over
            logger.debug("room %s: cannot re-read yet: %s", self.room, exc)

    async def close(self) -> None:
        """Stop; events published before this call are still yielded, then iteration ends."""
        if self._closed:
            return
        self.streams.forget(self)
        with contextlib.suppress(Exception):  # unreachable, or not caught up in time
            _, last, _ = await self.streams.stream_state(self.room)
            async with asyncio.timeout(self.streams.timeout):
                while self.last_seq < last:
                    self._advanced.clear()
                    await self._advanced.wait()
        self._closed = self._closing = True
        if self._resuming is not None:
            self._resuming.cancel()
        await self._detach_consumer()
        self.end()


class CoreNatsSubscription(QueuedSubscription):
    """Core NATS only (``jetstream=False``): what at-most-once means, for lesson 06.

    Each publishing process numbers its own events, so two servers' events share numbers
    and their order is whatever the network made of it; nothing is kept, so
    ``history_after`` can only say that everything is gone; a subscriber that was
    disconnected never sees what was published meanwhile. Not for a real chat: the
    contract tests do not pass on it, and that is the lesson.
    """

    def __init__(self, streams: NatsStreams, room: str) -> None:
        super().__init__()
        self.streams = streams
        self.room = room
        self._handle: NatsSubscriptionHandle | None = None
        self._closed = False

    async def start(self) -> None:
        """Subscribe to the room's subject: from now on, whatever is published while connected."""
        logger.warning(
            "core NATS only: at most once, numbered per publishing process, no history. "
            "Use JetStream (the default) for a chat."
        )
        nc, _ = await self.streams.connection()
        self._handle = await nc.subscribe(self.streams.subject(self.room), cb=self._on_message)
        await self.streams.barrier(nc)

    async def _on_message(self, msg: Msg) -> None:
        if not self._closed:
            with contextlib.suppress(ValueError, KeyError, TypeError):
                self.put(RoomEvent.from_json(msg.data))

    def resume(self) -> None:
        """Nothing to resume: core NATS delivers at most once, and keeps nothing to catch up from."""

    async def close(self) -> None:
        if self._closed:
            return
        self.streams.forget(self)
        if self._handle is not None:
            with contextlib.suppress(Exception):  # what was published before this is delivered
                nc, _ = await self.streams.connection()
                await self.streams.barrier(nc)
        self._closed = True
        if self._handle is not None:
            with contextlib.suppress(Exception):
                await self._handle.unsubscribe()
        self.end()
