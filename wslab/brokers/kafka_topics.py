"""Kafka as a room's events need it: the clients, a topic of one partition per room, the log.

What :class:`~wslab.brokers.kafka.KafkaBroker` and its subscriptions
(:mod:`~wslab.brokers.kafka_subscriptions`) ask of the broker, in one place: both hold a
:class:`KafkaTopics`, so neither needs the other's class. Its clients are made while the
broker answers and dropped when it goes away (the :class:`~.kafka_lifeline.Lifeline` says so).
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import re
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, Protocol
from urllib.parse import urlsplit

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError

from .base import BrokerUnavailable, broker_address, broker_down_as_unavailable
from .kafka_clients import quiet_client_logs, stop_quietly
from .kafka_lifeline import Lifeline

__all__ = ["FETCH_MAX_WAIT_MS", "Closing", "KafkaTopics"]

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


class Closing(Protocol):
    """A subscription, which ends with its broker."""

    async def close(self) -> None: ...


class KafkaTopics:
    """The clients of one Kafka broker, and the rooms' topics on it.

    Args: as :class:`~wslab.brokers.kafka.KafkaBroker`'s, which makes one.
    """

    def __init__(
        self,
        url: str,
        *,
        prefix: str,
        timeout: float,
        reconnect_delays: Callable[[], Iterator[float]],
    ) -> None:
        if not re.fullmatch(r"[A-Za-z0-9._-]+", prefix):
            raise ValueError(f"prefix {prefix!r}: letters, digits, '.', '-' and '_' only")
        self.url = url
        self.host, self.port = _address(url)
        self.bootstrap = f"{self.host}:{self.port}"
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
        #: Subscriptions to close with the broker.
        self._subscriptions: set[Closing] = set()
        self._background: set[asyncio.Task[None]] = set()
        self._closed = False

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
        """``(log start, end)`` offsets of the room's partition: the kept records are ``start..end-1``.

        The end the broker lists is checked by reading from the last offset it lists: tansu 0.6
        lists the last *batch*'s first offset + 1, so a batch of several records (concurrent
        publishes, which the producer sends together) would put the end, and the room's last
        seq, too early. The fetch's high watermark is right.
        """
        partition = await self.ensure_topic(room)
        reader = await self._started("_reader", self.consumer)
        with self.down():
            async with asyncio.timeout(self.timeout):
                start = (await reader.beginning_offsets([partition]))[partition]
                listed = (await reader.end_offsets([partition]))[partition]
        if listed <= start:
            return start, listed
        records, highwater = await self._fetch(partition, listed - 1, listed)
        return start, max(listed, highwater or 0, records[-1][0] + 1 if records else 0)

    async def read(self, room: str, start: int, end: int) -> list[tuple[int, bytes]]:
        """``[(offset, value), ...]`` of the kept records ``start..end-1`` (fewer if trimmed)."""
        if start >= end:
            return []
        partition = await self.ensure_topic(room)
        records, _ = await self._fetch(partition, start, end)
        return [record for record in records if record[0] < end]

    async def _fetch(
        self, partition: TopicPartition, start: int, end: int
    ) -> tuple[list[tuple[int, bytes]], int | None]:
        """The kept records from ``start`` until at least ``end - 1`` (perhaps more), and the
        partition's high watermark as the fetch answered it."""
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
                            records += [(r.offset, r.value) for r in batch.get(partition, [])]
                except BaseException:
                    self._reader = None  # start afresh next time: its position is unknown
                    self._in_background(stop_quietly(reader.stop(), timeout=self.timeout))
                    raise
            return records, reader.highwater(partition)

    async def stored(self, room: str, seq: int) -> bytes | None:
        """The payload kept under ``seq``, or None if the log no longer has it."""
        kept = await self.read(room, seq - 1, seq) if seq > 0 else []
        return kept[0][1] if kept and kept[0][0] == seq - 1 else None

    async def close(self) -> None:
        """Close every subscription, then the clients and the lifeline."""
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

    def track(self, subscription: Closing) -> None:
        """Close ``subscription`` in :meth:`close`, unless it leaves first (:meth:`forget`)."""
        self._subscriptions.add(subscription)

    def forget(self, subscription: Closing) -> None:
        """A closing subscription leaves: the broker no longer closes it."""
        self._subscriptions.discard(subscription)


def _topic_errors(response: Any) -> list[tuple[str, int, str]]:
    """``[(topic, error code, message), ...]`` of a CreateTopics response, whatever its version."""
    return [(entry[0], entry[1], entry[2] if len(entry) > 2 else "") for entry in response.topic_errors]
