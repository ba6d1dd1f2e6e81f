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

import asyncio
import contextlib
import functools
import logging
import re
from collections.abc import Callable, Iterator
from typing import Any

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription as NatsSubscriptionHandle
from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    DiscardPolicy,
    StorageType,
    StreamConfig,
)

from ..core.protocol import HistoryTooOld, RoomEvent
from .base import Broker, BrokerUnavailable, Subscription, broker_address, broker_down_as_unavailable
from .base import reconnect_delays as default_reconnect_delays
from .nats_subscriptions import CoreNatsSubscription, NatsSubscription

__all__ = ["CoreNatsSubscription", "NatsBroker", "NatsSubscription"]

logger = logging.getLogger("wslab.brokers.nats")

_SAFE = re.compile(r"[A-Za-z0-9_-]+")
#: What an unreachable or restarting server raises, in nats-py and below it.
_DOWN = (
    nats.errors.ConnectionClosedError,
    nats.errors.ConnectionDrainingError,
    nats.errors.ConnectionReconnectingError,
    nats.errors.NoRespondersError,
    nats.errors.TimeoutError,
    nats.errors.OutboundBufferLimitError,
    nats.errors.StaleConnectionError,
    nats.js.errors.ServiceUnavailableError,
    nats.js.errors.ServerError,
    OSError,
    asyncio.TimeoutError,
)
#: What a first connection that fails raises.
_CANNOT_CONNECT = (*_DOWN, nats.errors.NoServersError, nats.errors.Error)
#: A stream that does not exist (yet, or any more).
_NO_STREAM = (nats.js.errors.NotFoundError, nats.js.errors.NoStreamResponseError)
#: "stream name already in use with a different configuration"
_STREAM_NAME_IN_USE = 10058


def _token(room: str) -> str:
    """A subject token and stream-name part for ``room``: readable when it can be, always unique."""
    return f"r-{room}" if _SAFE.fullmatch(room) else f"h-{room.encode().hex()}"


def _reason(exc: BaseException) -> str:
    """Why NATS is unavailable, with the usual fix where there is one."""
    if isinstance(exc, nats.errors.NoServersError):
        return "nothing answers there"
    if isinstance(exc, nats.js.errors.ServiceUnavailableError):
        return f"it answers, but not its JetStream API: was nats-server started with -js? {exc!r}"
    return repr(exc)


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
            :class:`CoreNatsSubscription`): for demonstrating what JetStream adds.
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
        if not _SAFE.fullmatch(prefix):
            raise ValueError(f"prefix {prefix!r}: letters, digits, '-' and '_' only")
        self.url = url
        self.history = history
        self.backlog = backlog
        self.prefix = prefix
        self.storage = StorageType(storage)
        self.timeout = timeout
        self.reconnect_delays = reconnect_delays
        self.jetstream = jetstream
        #: ``with self.down(): ...`` turns nats-py's "cannot reach it" into BrokerUnavailable.
        self.down = functools.partial(broker_down_as_unavailable, "NATS", url, _DOWN, reason=_reason)
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._connecting = asyncio.Lock()
        self._delays: Iterator[float] | None = None
        self._streams: set[str] = set()
        self._subscriptions: set[NatsSubscription | CoreNatsSubscription] = set()
        self._closed = False
        # Core mode only: this process's own numbering, per room.
        self._local_seq: dict[str, int] = {}

    def __repr__(self) -> str:
        mode = f"JetStream {self.storage.value}" if self.jetstream else "core NATS only"
        return f"<NatsBroker {broker_address(self.url)} {mode} prefix={self.prefix!r} history={self.history}>"

    # Names

    def stream(self, room: str) -> str:
        """The JetStream stream that keeps ``room``."""
        return f"{self.prefix}-{_token(room)}"

    def subject(self, room: str) -> str:
        """The subject ``room``'s events are published on."""
        return f"{self.prefix}.room.{_token(room)}"

    # The connection

    async def connection(self) -> tuple[Client, JetStreamContext]:
        """The shared connection, opened on first use; BrokerUnavailable while it is down."""
        if self._closed:
            raise BrokerUnavailable("this broker is closed")
        if self._nc is None:
            async with self._connecting:
                if self._nc is None:
                    await self._connect()
        assert self._nc is not None and self._js is not None
        if not self._nc.is_connected:
            raise BrokerUnavailable(f"NATS at {broker_address(self.url)} is unavailable (reconnecting)")
        return self._nc, self._js

    async def _connect(self) -> None:
        nc = Client()
        try:
            with broker_down_as_unavailable("NATS", self.url, _CANNOT_CONNECT, reason=_reason):
                # Told to reconnect forever, nats-py would also try a server that is down
                # forever the first time: two quick tries first, then "forever" (below).
                await asyncio.wait_for(
                    nc.connect(
                        self.url,
                        name="wslab",
                        connect_timeout=max(1, round(self.timeout)),
                        allow_reconnect=True,
                        max_reconnect_attempts=1,
                        reconnect_time_wait=0.05,
                        reconnect_to_server_handler=self._next_attempt,
                        disconnected_cb=self._on_disconnected,
                        reconnected_cb=self._on_reconnected,
                        error_cb=self._on_error,
                    ),
                    self.timeout,
                )
        except BaseException:
            with contextlib.suppress(Exception):
                await nc.close()
            raise
        nc.options["max_reconnect_attempts"] = -1  # read at each reconnection attempt
        self._nc, self._js = nc, nc.jetstream(timeout=self.timeout)

    def _next_attempt(self, servers: list[Any], info: dict[str, Any]) -> tuple[Any, float]:
        """nats-py's reconnect hook: the same server, after the next backoff delay."""
        if self._delays is None:
            self._delays = self.reconnect_delays()
        return None, next(self._delays)

    async def _on_disconnected(self) -> None:
        if not self._closed and self._nc is not None:  # not a first connection failing
            logger.warning("lost the connection to NATS at %s; reconnecting", broker_address(self.url))

    async def _on_reconnected(self) -> None:
        self._delays = None
        self._streams.clear()  # a restarted server may have lost them: ensure again
        logger.info("reconnected to NATS at %s", broker_address(self.url))
        for subscription in list(self._subscriptions):
            if isinstance(subscription, NatsSubscription):
                subscription.resume()

    async def _on_error(self, exc: Exception) -> None:
        # Each failed reconnection attempt lands here; the disconnect was logged once already.
        logger.debug("NATS client: %r", exc)

    async def ping(self) -> None:
        nc, js = await self.connection()
        with self.down():
            if self.jetstream:
                await js.account_info()  # JetStream answers, not only the server
            else:
                await self.barrier(nc)

    # Streams and consumers: what this broker and its subscriptions ask JetStream

    async def ensure_stream(self, room: str) -> str:
        """Create the room's stream if needed (idempotent); returns its name."""
        name = self.stream(room)
        if name in self._streams:
            return name
        _, js = await self.connection()
        config = StreamConfig(
            name=name,
            subjects=[self.subject(room)],
            max_msgs=self.history + self.backlog,
            discard=DiscardPolicy.OLD,
            storage=self.storage,
            num_replicas=1,
        )
        with self.down():
            try:
                await js.add_stream(config)
            except nats.js.errors.BadRequestError as exc:
                if exc.err_code != _STREAM_NAME_IN_USE:
                    raise
                info = await js.stream_info(name)
                if info.config.max_msgs != self.history + self.backlog:
                    logger.warning(
                        "stream %s keeps %s messages, not %d: another broker created it",
                        name,
                        info.config.max_msgs,
                        self.history + self.backlog,
                    )
        self._streams.add(name)
        return name

    async def stream_state(self, room: str) -> tuple[int, int, int]:
        """``(first seq, last seq, messages)`` of the room's stream; zeros when it has none."""
        _, js = await self.connection()
        with self.down():
            try:
                state = (await js.stream_info(self.stream(room))).state
            except _NO_STREAM:
                return 0, 0, 0
        return state.first_seq, state.last_seq, state.messages

    async def stored_payload(self, room: str, seq: int) -> bytes | None:
        """The payload stored under ``seq``, or None if the stream no longer has it."""
        _, js = await self.connection()
        with self.down():
            try:
                return (await js.get_msg(self.stream(room), seq)).data
            except (*_NO_STREAM, nats.js.errors.APIError):
                return None

    async def consumer(self, room: str, start: int, callback: Callable[[Msg], Any]) -> tuple[Any, str]:
        """A push consumer delivering the room's stream from ``start`` to ``callback``.

        Returns ``(inbox subscription, consumer name)``. No acks (the stream is the
        record, not a work queue); a memory-only consumer that the server deletes by
        itself 30 s after nobody listens to its inbox (a process that died, say).
        """
        nc, js = await self.connection()
        stream = await self.ensure_stream(room)
        inbox = nc.new_inbox()
        handle = await nc.subscribe(inbox, cb=callback)
        config = ConsumerConfig(
            deliver_subject=inbox,
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=max(1, start),
            ack_policy=AckPolicy.NONE,
            mem_storage=True,
            num_replicas=1,
            inactive_threshold=30.0,
        )
        with self.down():
            try:
                info = await js.add_consumer(stream, config)
            except BaseException:
                with contextlib.suppress(Exception):
                    await handle.unsubscribe()
                raise
        return handle, info.name

    async def drop_consumer(self, room: str, handle: NatsSubscriptionHandle | None, name: str | None) -> None:
        """Stop listening and delete the consumer; best effort (the server expires it anyway)."""
        if handle is not None:
            with contextlib.suppress(Exception):
                await handle.unsubscribe()
        if name is not None and self._nc is not None and self._nc.is_connected and self._js is not None:
            with contextlib.suppress(Exception):
                await self._js.delete_consumer(self.stream(room), name)

    # The contract

    async def publish(self, event: RoomEvent) -> RoomEvent:
        if not self.jetstream:
            return await self._publish_core(event)
        payload = event.with_seq(0).to_json().encode()
        for attempt in (1, 2):
            stream = await self.ensure_stream(event.room)
            _, js = await self.connection()
            with self.down(outcome="the event may not have been published"):
                try:
                    ack = await js.publish(self.subject(event.room), payload, stream=stream)
                except nats.js.errors.NoStreamResponseError:
                    # The server lost the stream (restarted without its store): create it again.
                    self._streams.discard(stream)
                    if attempt == 2:
                        raise BrokerUnavailable(
                            f"NATS at {broker_address(self.url)} has no JetStream stream {stream}"
                        ) from None
                    continue
            return event.with_seq(ack.seq)
        raise AssertionError("unreachable")

    async def subscribe(self, room: str) -> Subscription:
        subscription = NatsSubscription(self, room) if self.jetstream else CoreNatsSubscription(self, room)
        await subscription.start()
        self._subscriptions.add(subscription)
        return subscription

    async def history_after(self, room: str, seq: int) -> list[RoomEvent]:
        if not self.jetstream:
            last = self._local_seq.get(room, 0)
            if seq < last:
                raise HistoryTooOld(seq, last + 1)
            return []
        first, last, messages = await self.stream_state(room)
        if messages == 0 or seq >= last:
            return []
        # The stream keeps ``backlog`` more than the history it offers (see the class).
        oldest = max(first, last - self.history + 1)
        if seq + 1 < oldest:
            raise HistoryTooOld(seq, oldest)
        events = await self._read(room, seq + 1, last)
        if not events or events[0].seq > seq + 1:  # trimmed since the state was read
            raise HistoryTooOld(seq, events[0].seq if events else last + 1)
        return events

    async def _read(self, room: str, start: int, end: int) -> list[RoomEvent]:
        """The stored events ``start..end`` (fewer if trimmed meanwhile), in order."""
        events: list[RoomEvent] = []
        done = asyncio.get_running_loop().create_future()

        async def collect(msg: Msg) -> None:
            if done.done() or not msg.reply:
                return
            meta = msg.metadata
            seq = meta.sequence.stream
            if seq <= end:
                events.append(RoomEvent.from_json(msg.data).with_seq(seq))
            if seq >= end or meta.num_pending == 0:
                done.set_result(None)

        handle, name = await self.consumer(room, start, collect)
        try:
            await asyncio.wait_for(done, self.timeout + (end - start) / 5000)
        except TimeoutError as exc:
            raise BrokerUnavailable(
                f"NATS at {broker_address(self.url)} stopped answering while reading history"
            ) from exc
        finally:
            await self.drop_consumer(room, handle, name)
        return events

    async def last_seq(self, room: str) -> int:
        if not self.jetstream:
            return self._local_seq.get(room, 0)
        return (await self.stream_state(room))[1]

    async def close(self) -> None:
        subscriptions, self._subscriptions = list(self._subscriptions), set()
        await asyncio.gather(*(s.close() for s in subscriptions), return_exceptions=True)
        self._closed = True
        nc, self._nc, self._js = self._nc, None, None
        if nc is not None:
            with contextlib.suppress(Exception):
                await nc.close()

    def forget(self, subscription: NatsSubscription | CoreNatsSubscription) -> None:
        """A closing subscription leaves: the broker no longer resumes or closes it."""
        self._subscriptions.discard(subscription)

    # Core NATS only

    async def barrier(self, nc: Client) -> None:
        """Return once the server has processed everything this connection sent before.

        Not ``nc.flush()``: nats-py 2.16 writes flush's PING straight to the socket, ahead
        of commands still waiting in its buffer, so the PONG can come back before an
        earlier PUB or SUB was even sent (seen here: an event published "before" a
        subscription reached it). A request goes through that buffer, in order, and the
        server answers one that nobody listens to with "no responders" as soon as it gets
        to it: after everything before it.
        """
        with contextlib.suppress(nats.errors.NoRespondersError):
            await nc.request(f"_WSLAB.barrier.{nc.new_inbox()[7:]}", b"", timeout=self.timeout)

    async def _publish_core(self, event: RoomEvent) -> RoomEvent:
        nc, _ = await self.connection()
        seq = self._local_seq[event.room] = self._local_seq.get(event.room, 0) + 1
        numbered = event.with_seq(seq)
        with self.down():
            await nc.publish(self.subject(event.room), numbered.to_json().encode())
            await self.barrier(nc)
        return numbered
