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
from collections.abc import Callable, Iterator

from ..core.history import HistoryTooOld
from ..core.room_event import RoomEvent
from .base import Broker, Subscription, broker_address
from .base import reconnect_delays as default_reconnect_delays
from .kafka_subscriptions import KafkaSubscription
from .kafka_topics import KafkaTopics

__all__ = ["KafkaBroker"]


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
        #: The clients, the lifeline and the rooms' topics.
        self.topics = KafkaTopics(url, prefix=prefix, timeout=timeout, reconnect_delays=reconnect_delays)
        self.url = url
        self.bootstrap = self.topics.bootstrap
        self.history = history

    def __repr__(self) -> str:
        return (
            f"<KafkaBroker {broker_address(self.url)} prefix={self.topics.prefix!r} history={self.history}>"
        )

    # The contract

    async def publish(self, event: RoomEvent) -> RoomEvent:
        partition = await self.topics.ensure_topic(event.room)
        producer = await self.topics.producer()
        # seq 0 on the wire: the offset, known once the broker appended it, is the number.
        payload = event.with_seq(0).to_json().encode()
        with self.topics.down(outcome="the event may not have been published"):
            # Bounded: a producer dropped with a broker that went away may never settle its sends.
            async with asyncio.timeout(2 * self.topics.timeout):
                sent = await producer.send_and_wait(partition.topic, payload, partition=partition.partition)
        return event.with_seq(sent.offset + 1)

    async def subscribe(self, room: str) -> Subscription:
        subscription = KafkaSubscription(self.topics, room)
        await subscription.start()
        self.topics.track(subscription)
        return subscription

    async def history_after(self, room: str, seq: int) -> list[RoomEvent]:
        start, end = await self.topics.offsets(room)
        if seq >= end or start >= end:
            return []
        oldest = max(start + 1, end - self.history + 1)
        if seq + 1 < oldest:
            raise HistoryTooOld(seq, oldest)
        kept = await self.topics.read(room, seq, end)
        if not kept or kept[0][0] > seq:  # trimmed since the offsets were read
            raise HistoryTooOld(seq, kept[0][0] + 1 if kept else end + 1)
        return [RoomEvent.from_json(value).with_seq(offset + 1) for offset, value in kept]

    async def last_seq(self, room: str) -> int:
        return (await self.topics.offsets(room))[1]

    async def ping(self) -> None:
        await self.topics.connection()
        with self.topics.down():
            await self.topics.lifeline.round_trip()

    async def close(self) -> None:
        await self.topics.close()
