"""A broker on NATS JetStream: one stream per room, and the stream's sequence *is* the seq.

Core NATS alone cannot keep the chat's contract. It delivers "only to subscribers
connected at the moment of publication - at most once, never replayed", keeps no
history, and has no counter that two publishers could share, so nothing on it can number
a room's events once and in the same order for every server. (Centrifugo's NATS broker
has the same limit: its ``History()`` returns "not available".) Numbering per publishing
process would give two servers' events the same numbers; an elected sequencer would be a
consensus protocol of our own. Both are out.

JetStream, the persistence layer built into ``nats-server`` (``-js``), has exactly what
is missing. Per room::

    stream   wslab-r-lobby         subjects [wslab.room.r-lobby], at most ``history + backlog``
                                   messages, discarding the oldest; file storage by default
    subject  wslab.room.r-lobby    what publishers send to

* **publish** is a JetStream publish: the server stores the message and answers with its
  stream sequence number. One stream has one writer (its leader), which assigns numbers
  in the order it stores messages, once each: that number is the event's ``seq``, the
  same for every subscriber and every server. (Measured on a 2-core machine: about
  0.2 ms per publish, file or memory storage alike.)
* **subscribe** creates an ephemeral push consumer on the stream that starts right after
  the stream's last message and delivers to a private inbox; every message arrives with
  its stream sequence in its metadata, in stream order.
* **history_after** reads the stream from ``seq + 1`` with a short-lived consumer, and
  raises :class:`~wslab.core.history.HistoryTooOld` when ``seq + 1`` is older than the newest
  ``history`` messages: that bound is exact.

Why the stream keeps ``backlog`` (10,000 by default) messages more than the history it
offers: a consumer delivers *from the stream*, so the stream is also every live
subscriber's buffer. A subscriber that falls further behind than the stream reaches
loses what was trimmed before it got there (logged, counted in ``lost``). With exactly
``history`` kept, a burst of a thousand messages faster than one Python process reads
them was enough to lose some on this machine. Redis has the same limit elsewhere: its
output buffer per subscriber (32 MB by default), past which it drops the connection.

The payload on the wire is the event's JSON with ``"seq": 0``: the number is not known
until the server stores the message, and it travels in the message's metadata instead.

**Outages.** Methods raise :class:`~wslab.brokers.BrokerUnavailable` while the server
cannot be reached (a publish is never queued in the client to go out later). The client
reconnects by itself with backoff; then each subscription resumes
(:class:`~wslab.brokers.resumable.ResumableSubscription`) with a new consumer that starts
right after the last event it yielded: what the stream kept is replayed, what fell out of it
(more than ``history + backlog``) is counted in ``lost``, and a server that came back
without its store (memory storage, a new store directory) shows as a
:class:`~wslab.brokers.BrokerReset` followed by the room's new numbering. A publish whose
acknowledgement is lost may have been stored: the error says it is in doubt.

File storage is written without an fsync per message: it survives the server process
stopping or being killed, not the machine losing power.

For lesson 06's at-most-once demonstration, ``NatsBroker(url, jetstream=False)`` is the
same API on core NATS alone, honestly limited: see :class:`CoreNatsSubscription`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import nats.js.errors

from ..core.history import HistoryTooOld
from ..core.room_event import RoomEvent
from .base import Broker, BrokerUnavailable, Subscription, broker_address
from .base import reconnect_delays as default_reconnect_delays
from .nats_streams import NatsStreams
from .nats_subscriptions import CoreNatsSubscription, NatsSubscription

__all__ = ["NatsBroker"]


class NatsBroker(Broker):
    """Fan-out, numbering and history in NATS JetStream: many processes, one room.

    Args:
        url: ``nats://host:port`` of a ``nats-server`` started with ``-js``.
        history: events per room that :meth:`history_after` offers (exactly).
        backlog: how far a live subscriber may fall behind before it loses events. A
            JetStream consumer delivers from the stream itself, so the stream is every
            subscriber's buffer: it keeps ``history + backlog`` messages (``max_msgs``).
            (Redis's equivalent is its 32 MB output buffer per subscriber.)
        prefix: starts every stream name and subject; two prefixes never share a room.
        storage: ``"file"`` (survives a server restart) or ``"memory"``.
        timeout: seconds to wait for the server to connect or answer.
        reconnect_delays: makes the delays between reconnection attempts.
        jetstream: False for core NATS only, at most once and with no history (see
            :class:`~wslab.brokers.nats_subscriptions.CoreNatsSubscription`): for
            demonstrating what JetStream adds.
    """

    kind = "nats"

    def __init__(
        self,
        url: str,
        *,
        history: int = 1000,
        backlog: int = 10_000,
        prefix: str = "wslab",
        storage: str = "file",
        timeout: float = 2.0,
        reconnect_delays: Callable[[], Iterator[float]] = default_reconnect_delays,
        jetstream: bool = True,
    ) -> None:
        if history < 1:
            raise ValueError("history must keep at least one message")
        #: The connection, the rooms' streams and their consumers.
        self.streams = NatsStreams(
            url,
            history=history,
            backlog=backlog,
            prefix=prefix,
            storage=storage,
            timeout=timeout,
            reconnect_delays=reconnect_delays,
        )
        self.url = url
        self.history = history
        self.jetstream = jetstream
        # Core mode only: this process's own numbering, per room.
        self._local_seq: dict[str, int] = {}

    def __repr__(self) -> str:
        streams = self.streams
        mode = f"JetStream {streams.storage.value}" if self.jetstream else "core NATS only"
        return (
            f"<NatsBroker {broker_address(self.url)} {mode} prefix={streams.prefix!r} history={self.history}>"
        )

    async def ping(self) -> None:
        nc, js = await self.streams.connection()
        with self.streams.down():
            if self.jetstream:
                await js.account_info()  # JetStream answers, not only the server
            else:
                await self.streams.barrier(nc)

    # The contract

    async def publish(self, event: RoomEvent) -> RoomEvent:
        if not self.jetstream:
            return await self._publish_core(event)
        payload = event.with_seq(0).to_json().encode()
        for attempt in (1, 2):
            stream = await self.streams.ensure_stream(event.room)
            _, js = await self.streams.connection()
            with self.streams.down(outcome="the event may not have been published"):
                try:
                    ack = await js.publish(self.streams.subject(event.room), payload, stream=stream)
                except nats.js.errors.NoStreamResponseError:
                    # The server lost the stream (restarted without its store): create it again.
                    self.streams.lost(stream)
                    if attempt == 2:
                        raise BrokerUnavailable(
                            f"NATS at {broker_address(self.url)} has no JetStream stream {stream}"
                        ) from None
                    continue
            return event.with_seq(ack.seq)
        raise AssertionError("unreachable")

    async def subscribe(self, room: str) -> Subscription:
        kind = NatsSubscription if self.jetstream else CoreNatsSubscription
        subscription = kind(self.streams, room)
        await subscription.start()
        self.streams.track(subscription)
        return subscription

    async def history_after(self, room: str, seq: int) -> list[RoomEvent]:
        if not self.jetstream:
            last = self._local_seq.get(room, 0)
            if seq < last:
                raise HistoryTooOld(seq, last + 1)
            return []
        first, last, messages = await self.streams.stream_state(room)
        if messages == 0 or seq >= last:
            return []
        # The stream keeps ``backlog`` more than the history it offers (see the class).
        oldest = max(first, last - self.history + 1)
        if seq + 1 < oldest:
            raise HistoryTooOld(seq, oldest)
        events = await self.streams.read(room, seq + 1, last)
        if not events or events[0].seq > seq + 1:  # trimmed since the state was read
            raise HistoryTooOld(seq, events[0].seq if events else last + 1)
        return events

    async def last_seq(self, room: str) -> int:
        if not self.jetstream:
            return self._local_seq.get(room, 0)
        return (await self.streams.stream_state(room))[1]

    async def close(self) -> None:
        await self.streams.close()

    async def _publish_core(self, event: RoomEvent) -> RoomEvent:
        nc, _ = await self.streams.connection()
        seq = self._local_seq[event.room] = self._local_seq.get(event.room, 0) + 1
        numbered = event.with_seq(seq)
        with self.streams.down():
            await nc.publish(self.streams.subject(event.room), numbered.to_json().encode())
            await self.streams.barrier(nc)
        return numbered
