"""A broker on Kafka (or anything speaking its protocol, such as tansu): a room is a topic's log.

Per room::

    topic      wslab.r-lobby     ONE partition, created by the first broker object that needs it
    partition  0                 every event of the room, in the order the broker appended them
    offset     0, 1, 2, ...      the event's position in that partition: seq = offset + 1

**Why one partition per room.** Kafka orders records within a partition only. A room needs one
total order that every server sees the same (and a number that says where a client is in it),
so the room's events all go to one partition, whose dense offsets, assigned once on append by
the partition's leader, *are* the sequence. (A topic with many partitions keyed by room would
spread rooms over brokers, but each room would still live in one partition: the same design
with more sharing.) Offsets start at 0 and the chat's ``seq`` at 1, hence ``seq = offset + 1``:
"everything after seq 41" is a seek to offset 41, and the room's last seq is the partition's
end offset (the offset the next record will get).

* **publish** appends to partition 0 (``acks="all"``) and reads the offset from the answer.
  Not idempotent: tansu answers an idempotent producer's first request with an error, and the
  chat does not need it: a message whose ack was lost is resent under its ``ref``, and the
  chat room acknowledges a ref it already saw instead of publishing it again.
* **subscribe** gives each subscription its OWN consumer, with no consumer group
  (``group_id=None``) and the partition assigned by hand: every chat server must read every
  event. A consumer group would share the partition out, and one server would get all the
  room's events and the others none.
* **history_after** seeks a consumer to offset ``seq`` and reads up to the end offset. It offers
  the newest ``history`` events, exactly (what the topic keeps beyond that is its retention's
  business: tansu's memory storage keeps everything until it restarts).

**Outages.** One plain connection per broker object (a :class:`~.kafka_lifeline.Lifeline`)
notices a broker process that went away; while it cannot be reconnected every method raises
:class:`~wslab.brokers.BrokerUnavailable` at once, and this object holds no aiokafka client
(so nothing retries behind the chat's back, and nothing floods the log). A publish that fails
after it was handed to the client says it is in doubt. Subscriptions then resume
(:class:`~.kafka_subscriptions.KafkaSubscription`): the same room with its events kept (a real
Kafka restarted) is caught up from the log; a broker that came back *empty* (tansu with memory
storage) is a :class:`~wslab.brokers.BrokerReset` followed by the room's new numbering, exactly
as for a Redis that restarted without its data.

URL: ``kafka://host:port`` (one bootstrap broker, as the course runs it).
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import re
from collections.abc import Callable, Coroutine, Iterator
from typing import Any
from urllib.parse import urlsplit

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError

from ..core.protocol import HistoryTooOld, RoomEvent
from .base import Broker, BrokerUnavailable, Subscription, broker_address, broker_down_as_unavailable
from .base import reconnect_delays as default_reconnect_delays
from .kafka_clients import quiet_client_logs, stop_quietly
from .kafka_lifeline import Lifeline
from .kafka_subscriptions import KafkaSubscription

__all__ = ["FETCH_MAX_WAIT_MS", "KafkaBroker", "KafkaSubscription"]

logger = logging.getLogger("wslab.brokers.kafka")

#: How long a fetch waits on the broker for records to arrive. Apache Kafka answers a waiting
#: fetch as soon as a record comes in; tansu 0.6 does not, it waits the whole time: with
#: aiokafka's default of 500 ms a chat message took about 250 ms to cross servers here. 20 ms
#: bounds that wait, at the price of up to 50 fetch requests a second per idle subscription.
FETCH_MAX_WAIT_MS = 20
#: What a broker that cannot be reached raises, in aiokafka and below it.
_DOWN = (KafkaError, OSError, asyncio.TimeoutError)
_SAFE = re.compile(r"[A-Za-z0-9_-]+")
#: Kafka's limit on a topic name's length.
_MAX_TOPIC = 249
#: "Topic with this name already exists."
_TOPIC_EXISTS = 36


def _token(room: str) -> str:
    """A topic-name part for ``room``: readable when it can be, always unique."""
    return f"r-{room}" if _SAFE.fullmatch(room) else f"h-{room.encode().hex()}"


def _address(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    if parts.scheme.lower() != "kafka" or not parts.hostname:
        raise ValueError(f"expected kafka://host:port, not {url!r}")
    return parts.hostname, parts.port or 9092


class KafkaBroker(Broker):
    """Fan-out, numbering and history in a Kafka topic per room: many processes, one room.

    Args:
        url: ``kafka://host:port`` of a Kafka-protocol broker (tansu, Apache Kafka, Redpanda).
        history: events per room that :meth:`history_after` offers (exactly).
        prefix: starts every topic name; two prefixes never share a room.
        timeout: seconds to wait for the broker to connect or answer.
        reconnect_delays: makes the delays between a subscription's reconnection attempts.
    """

    kind = "kafka"

    def __init__(
        self,
        url: str,
        *,
        history: int = 1000,
        prefix: str = "wslab",
        timeout: float = 2.0,
        reconnect_delays: Callable[[], Iterator[float]] = default_reconnect_delays,
    ) -> None:
        if history < 1:
            raise ValueError("history must keep at least one event")
        if not re.fullmatch(r"[A-Za-z0-9._-]+", prefix):
            raise ValueError(f"prefix {prefix!r}: letters, digits, '.', '-' and '_' only")
        self.url = url
        self.host, self.port = _address(url)
        self.bootstrap = f"{self.host}:{self.port}"
        self.history = history
        self.prefix = prefix
        self.timeout = timeout
        self.reconnect_delays = reconnect_delays
        #: ``with self.down(): ...`` turns aiokafka's "cannot reach it" into BrokerUnavailable.
        self.down = functools.partial(broker_down_as_unavailable, "Kafka", url, _DOWN)
        self.lifeline = Lifeline(self.host, self.port, timeout=timeout)
        quiet_client_logs()
        self._generation = 0  # the lifeline generation the clients below were made in
        self._producer: AIOKafkaProducer | None = None
        self._admin: AIOKafkaAdminClient | None = None
        self._reader: AIOKafkaConsumer | None = None
        self._reading = asyncio.Lock()
        self._starting = asyncio.Lock()
        self._topics: set[str] = set()
        self._subscriptions: set[KafkaSubscription] = set()
        self._background: set[asyncio.Task[None]] = set()
        self._closed = False

    def __repr__(self) -> str:
        return f"<KafkaBroker {broker_address(self.url)} prefix={self.prefix!r} history={self.history}>"

    # Names

    def topic(self, room: str) -> str:
        """The topic that keeps ``room``."""
        name = f"{self.prefix}.{_token(room)}"
        if len(name) > _MAX_TOPIC:
            name = f"{self.prefix}.s-{hashlib.sha256(room.encode()).hexdigest()}"
        return name

    def partition(self, room: str) -> TopicPartition:
        """The one partition that holds ``room``'s events."""
        return TopicPartition(self.topic(room), 0)

    # Clients, made while the broker answers and dropped when it goes away

    def consumer(self) -> AIOKafkaConsumer:
        """A consumer of its own: no group, partitions assigned by hand, fetches bounded
        by :data:`FETCH_MAX_WAIT_MS`, and an error (not a silent jump) for a position the
        log no longer has."""
        return AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            client_id="wslab",
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="none",
            fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
            request_timeout_ms=round(self.timeout * 1000),
        )

    async def connection(self) -> int:
        """Make sure the broker answers; the lifeline generation. BrokerUnavailable at once if not.

        When the broker went away since the clients were made, they are dropped here (their
        own retries would only fill the log) and made again on first use.
        """
        if self._closed:
            raise BrokerUnavailable("this broker is closed")
        with self.down():
            generation = await self.lifeline.connect()
        if generation != self._generation:
            await self._drop_clients()
            self._generation = generation
        return generation

    async def _drop_clients(self) -> None:
        producer, admin, reader = self._producer, self._admin, self._reader
        self._producer = self._admin = self._reader = None
        self._topics.clear()  # a broker that came back empty has lost them: create them again
        for stop in (
            producer.stop if producer else None,
            admin.close if admin else None,
            reader.stop if reader else None,
        ):
            if stop is not None:
                # In the background: a producer flushing to a broker that is gone waits out its timeout.
                self._in_background(stop_quietly(stop(), timeout=self.timeout))

    async def _started(self, attribute: str, make: Callable[[], Any]) -> Any:
        """The client kept in ``attribute``, made and started if there is none."""
        await self.connection()
        async with self._starting:
            client = getattr(self, attribute)
            if client is None:
                client = make()
                with self.down():
                    try:
                        async with asyncio.timeout(self.timeout):
                            await client.start()
                    except BaseException:
                        await stop_quietly(client.close() if attribute == "_admin" else client.stop())
                        raise
                setattr(self, attribute, client)
        return client

    async def producer(self) -> AIOKafkaProducer:
        """The shared producer: ``acks="all"``, not idempotent (see the module's docstring)."""
        return await self._started(
            "_producer",
            lambda: AIOKafkaProducer(
                bootstrap_servers=self.bootstrap,
                client_id="wslab",
                acks="all",
                enable_idempotence=False,
                request_timeout_ms=round(self.timeout * 1000),
            ),
        )

    async def ensure_topic(self, room: str) -> TopicPartition:
        """Create the room's one-partition topic if needed (idempotent); returns its partition.

        Created explicitly: tansu would create a topic on first use too, with several partitions.
        """
        partition = self.partition(room)
        await self.connection()  # first: a broker that went away meanwhile forgets the topics made
        if partition.topic in self._topics:
            return partition
        admin = await self._started(
            "_admin",
            lambda: AIOKafkaAdminClient(
                bootstrap_servers=self.bootstrap,
                client_id="wslab",
                request_timeout_ms=round(self.timeout * 1000),
            ),
        )
        with self.down():
            async with asyncio.timeout(self.timeout):
                response = await admin.create_topics([NewTopic(partition.topic, 1, 1)])
        for topic, code, message in _topic_errors(response):
            if code not in (0, _TOPIC_EXISTS):
                raise BrokerUnavailable(
                    f"Kafka at {broker_address(self.url)} cannot create {topic}: {message}"
                )
        self._topics.add(partition.topic)
        return partition

    # Reading the log: one shared consumer, one reader at a time

    async def offsets(self, room: str) -> tuple[int, int]:
        """``(log start, end)`` offsets of the room's partition: the kept records are ``start..end-1``."""
        partition = await self.ensure_topic(room)
        reader = await self._started("_reader", self.consumer)
        with self.down():
            async with asyncio.timeout(self.timeout):
                start = (await reader.beginning_offsets([partition]))[partition]
                end = (await reader.end_offsets([partition]))[partition]
        return start, end

    async def read(self, room: str, start: int, end: int) -> list[tuple[int, bytes]]:
        """``[(offset, value), ...]`` of the kept records ``start..end-1`` (fewer if trimmed)."""
        if start >= end:
            return []
        partition = await self.ensure_topic(room)
        reader = await self._started("_reader", self.consumer)
        records: list[tuple[int, bytes]] = []
        async with self._reading:
            reader.assign([partition])
            reader.seek(partition, start)
            with self.down():
                try:
                    async with asyncio.timeout(self.timeout + (end - start) / 5000):
                        while not records or records[-1][0] < end - 1:
                            batch = await reader.getmany(partition, timeout_ms=100)
                            records += [
                                (r.offset, r.value) for r in batch.get(partition, []) if r.offset < end
                            ]
                except BaseException:
                    self._reader = None  # start afresh next time: its position is unknown
                    self._in_background(stop_quietly(reader.stop(), timeout=self.timeout))
                    raise
        return records

    async def stored(self, room: str, seq: int) -> bytes | None:
        """The payload kept under ``seq``, or None if the log no longer has it."""
        kept = await self.read(room, seq - 1, seq) if seq > 0 else []
        return kept[0][1] if kept and kept[0][0] == seq - 1 else None

    # The contract

    async def publish(self, event: RoomEvent) -> RoomEvent:
        partition = await self.ensure_topic(event.room)
        producer = await self.producer()
        # seq 0 on the wire: the offset, known once the broker appended it, is the number.
        payload = event.with_seq(0).to_json().encode()
        with self.down(outcome="the event may not have been published"):
            sent = await producer.send_and_wait(partition.topic, payload, partition=partition.partition)
        return event.with_seq(sent.offset + 1)

    async def subscribe(self, room: str) -> Subscription:
        subscription = KafkaSubscription(self, room)
        await subscription.start()
        self._subscriptions.add(subscription)
        return subscription

    async def history_after(self, room: str, seq: int) -> list[RoomEvent]:
        start, end = await self.offsets(room)
        if seq >= end or start >= end:
            return []
        oldest = max(start + 1, end - self.history + 1)
        if seq + 1 < oldest:
            raise HistoryTooOld(seq, oldest)
        kept = await self.read(room, seq, end)
        if not kept or kept[0][0] > seq:  # trimmed since the offsets were read
            raise HistoryTooOld(seq, kept[0][0] + 1 if kept else end + 1)
        return [RoomEvent.from_json(value).with_seq(offset + 1) for offset, value in kept]

    async def last_seq(self, room: str) -> int:
        return (await self.offsets(room))[1]

    async def ping(self) -> None:
        await self.connection()
        with self.down():
            await self.lifeline.round_trip()

    async def close(self) -> None:
        subscriptions, self._subscriptions = list(self._subscriptions), set()
        await asyncio.gather(*(s.close() for s in subscriptions), return_exceptions=True)
        self._closed = True
        producer, admin, reader = self._producer, self._admin, self._reader
        self._producer = self._admin = self._reader = None
        for stop in (producer.stop if producer else None, reader.stop if reader else None):
            if stop is not None:
                await stop_quietly(stop(), timeout=self.timeout)
        if admin is not None:
            await stop_quietly(admin.close(), timeout=self.timeout)
        await self.lifeline.close()

    def _in_background(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def forget(self, subscription: KafkaSubscription) -> None:
        """A closing subscription leaves: the broker no longer closes it."""
        self._subscriptions.discard(subscription)


def _topic_errors(response: Any) -> list[tuple[str, int, str]]:
    """``[(topic, error code, message), ...]`` of a CreateTopics response, whatever its version."""
    return [(entry[0], entry[1], entry[2] if len(entry) > 2 else "") for entry in response.topic_errors]
