"""The subscription of :class:`~wslab.brokers.kafka.KafkaBroker`: one consumer of its own, reading
the room's partition from its own position, resuming after every outage."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import ConsumerStoppedError, KafkaError
from aiokafka.structs import ConsumerRecord

from ..core.room_event import RoomEvent
from .base import BrokerUnavailable
from .kafka_clients import stop_quietly
from .kafka_topics import KafkaTopics
from .resumable import BrokerState, ResumableSubscription

__all__ = ["KafkaSubscription"]

logger = logging.getLogger("wslab.brokers.kafka")

#: Milliseconds one read waits for records before looking at the lifeline again.
POLL_MS = 200


class KafkaSubscription(ResumableSubscription):
    """One room's events from a consumer of its own: no consumer group, the partition assigned by
    hand, the position this subscription's alone (every chat server reads every event).

    Before delivering what a read returned it checks that the broker is still the one it
    looked at (the broker's :class:`~wslab.brokers.kafka_lifeline.Lifeline`); if not, it looks
    at the room again and goes on where it stopped, or yields a
    :class:`~wslab.brokers.base.BrokerReset` if the broker came back without the room's events.

    Counters as for every :class:`~wslab.brokers.resumable.ResumableSubscription`:
    ``reconnects``, ``recovered``, ``lost``, ``resets``.
    """

    broker_name = "Kafka"
    retry_on = (BrokerUnavailable, KafkaError, OSError, TimeoutError)

    def __init__(self, topics: KafkaTopics, room: str) -> None:
        super().__init__(room, delays=topics.reconnect_delays)
        self.topics = topics
        self.partition = topics.partition(room)
        self._consumer: AIOKafkaConsumer | None = None
        #: The lifeline generation of the broker this subscription last looked the room up on.
        self._generation = 0
        self._checking = 0
        #: End offset at the last resubscription: events up to it count as recovered.
        self._replay_until = 0
        self._advanced = asyncio.Event()
        self._reader: asyncio.Task[None] | None = None
        self._closed = False

    def __repr__(self) -> str:
        topic = self.partition.topic
        return f"<KafkaSubscription {topic} last_seq={self.last_seq} reconnects={self.reconnects}>"

    async def start(self) -> None:
        """Subscribe: on return, every event published from now on will be yielded."""
        generation = await self.topics.connection()
        start, end = await self.topics.offsets(self.room)
        self.last_seq = end
        self._last_payload = await self.topics.stored(self.room, end) if end > start else None
        await self._attach(end)
        self._generation = generation  # read before the state: a broker lost meanwhile is checked again
        self._reader = asyncio.create_task(self._read(), name=f"kafka-subscription {self.room}")

    def recheck(self) -> None:
        """Look at the room again before the next read: tansu may have renumbered it unseen."""
        self._generation = 0

    def _current(self) -> bool:
        """Still the broker whose room this subscription last looked at?"""
        lifeline = self.topics.lifeline
        return lifeline.alive and lifeline.generation == self._generation

    async def _attach(self, offset: int) -> None:
        """A new consumer of the room's partition, at ``offset``."""
        await self._detach()
        consumer = self.topics.consumer()
        with self.topics.down(outcome=f"cannot subscribe to room {self.room!r}"):
            try:
                async with asyncio.timeout(self.topics.timeout):
                    await consumer.start()
            except BaseException:
                await stop_quietly(consumer.stop(), timeout=self.topics.timeout)
                raise
        consumer.assign([self.partition])
        consumer.seek(self.partition, offset)
        self._consumer = consumer

    # What the resubscribe loop needs

    async def _reattach(self) -> None:
        await self._detach()
        self._checking = await self.topics.connection()

    async def _read_state(self) -> BrokerState:
        start, end = await self.topics.offsets(self.room)
        was = self.last_seq
        stored = await self.topics.stored(self.room, was) if start < was <= end else None
        return BrokerState(last=end, oldest=start + 1 if end > start else 0, stored=stored)

    async def _catch_up(self, after: int, last: int) -> None:
        self._replay_until = last
        await self._attach(after)  # seq after + 1 is at offset after
        self._generation = self._checking

    async def _detach(self) -> None:
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            await stop_quietly(consumer.stop(), timeout=self.topics.timeout)

    # Reading

    async def _read(self) -> None:
        try:
            while not self._closing:
                if not self._current() or self._consumer is None:
                    if not await self._resubscribe():
                        return  # closing
                    continue
                consumer = self._consumer
                try:
                    batch = await consumer.getmany(self.partition, timeout_ms=POLL_MS)
                except (KafkaError, ConsumerStoppedError) as exc:
                    if self._closing:
                        return
                    logger.warning(
                        "room %s: reading from Kafka failed (%r); looking at the room again", self.room, exc
                    )
                    self._generation = 0
                    continue
                if not self._current() or consumer is not self._consumer:
                    continue  # perhaps fetched from a broker that came back: look at the room first
                for record in batch.get(self.partition, ()):
                    self._offer(record)
        finally:
            await self._detach()
            self.end()

    def _offer(self, record: ConsumerRecord[bytes, bytes]) -> None:
        seq = record.offset + 1
        if seq <= self.last_seq:
            return
        if seq > self.last_seq + 1:  # records gone from the log before this read them
            logger.warning(
                "room %s: events %d..%d are no longer in Kafka's log", self.room, self.last_seq + 1, seq - 1
            )
            self.lost += seq - 1 - self.last_seq
        self.last_seq, self._last_payload = seq, record.value
        self._advanced.set()
        try:
            event = RoomEvent.from_json(record.value or b"").with_seq(seq)
        except (ValueError, KeyError, TypeError) as exc:
            logger.warning("room %s: seq %d is not a room event, skipped: %r", self.room, seq, exc)
            return
        if seq <= self._replay_until:
            self.recovered += 1
        self.put(event)

    async def close(self) -> None:
        """Stop; events published before this call are still yielded, then iteration ends."""
        if self._closed:
            return
        self._closed = True
        self.topics.forget(self)
        reader = self._reader
        with contextlib.suppress(Exception):  # unreachable, or not caught up in time
            _, end = await self.topics.offsets(self.room)
            async with asyncio.timeout(self.topics.timeout):
                while self.last_seq < end and reader is not None and not reader.done():
                    self._advanced.clear()
                    await self._advanced.wait()
        self._closing = True
        if reader is not None and not reader.done():
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader
        await self._detach()
        self.end()
