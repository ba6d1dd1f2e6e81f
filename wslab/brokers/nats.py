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
  raises :class:`~wslab.protocol.HistoryTooOld` when ``seq + 1`` is older than the newest
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
reconnects by itself, waiting :func:`~wslab.protocol.backoff_delays` (capped at 2 s)
between attempts. Then each subscription replaces its consumer with one that starts
right after the last event it yielded: what it missed is replayed from the stream, in
order, each event once, then it is live again. What that recovers depends on what the
server kept:

* the server stayed up, or restarted with its store (file storage, the default here):
  every missed event still in the stream;
* events that fell out of the stream while away (more than ``history + backlog``):
  lost; logged, counted in ``lost``, and visible as a jump in ``seq``;
* the server restarted without its store (memory storage, or a new store directory):
  the room starts again at seq 1. The subscription notices (the stream is behind what it
  saw, or holds another message under that number), logs a warning, counts it in
  ``resets``, yields nothing from before, and follows the new sequence from its start;
* a publish during the outage raises ``BrokerUnavailable``: not stored, never seen. One
  whose acknowledgement is lost (the connection drops while waiting) may have been
  stored: the error says it is in doubt.

File storage is written without an fsync per message: it survives the server process
stopping or being killed, not the machine losing power.

For lesson 06's at-most-once demonstration, ``NatsBroker(url, jetstream=False)`` is the
same API on core NATS alone, honestly limited: see :class:`CoreNatsSubscription`.
"""

from __future__ import annotations

import asyncio
import contextlib
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

from ..protocol import HistoryTooOld, RoomEvent
from .base import Broker, BrokerUnavailable, QueuedSubscription, Subscription
from .base import reconnect_delays as default_reconnect_delays

__all__ = ["NatsBroker"]

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
#: A stream that does not exist (yet, or any more).
_NO_STREAM = (nats.js.errors.NotFoundError, nats.js.errors.NoStreamResponseError)
#: "stream name already in use with a different configuration"
_STREAM_NAME_IN_USE = 10058


def _token(room: str) -> str:
    """A subject token and stream-name part for ``room``: readable when it can be, always unique."""
    return f"r-{room}" if _SAFE.fullmatch(room) else f"h-{room.encode().hex()}"


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
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._connecting = asyncio.Lock()
        self._delays: Iterator[float] | None = None
        self._streams: set[str] = set()
        self._subscriptions: set[_NatsSubscriptionBase] = set()
        self._closed = False
        # Core mode only: this process's own numbering, per room.
        self._local_seq: dict[str, int] = {}

    def __repr__(self) -> str:
        mode = f"JetStream {self.storage.value}" if self.jetstream else "core NATS only"
        return f"<NatsBroker {self.url} {mode} prefix={self.prefix!r} history={self.history}>"

    # Names

    def stream(self, room: str) -> str:
        return f"{self.prefix}-{_token(room)}"

    def subject(self, room: str) -> str:
        return f"{self.prefix}.room.{_token(room)}"

    # The connection

    async def _connection(self) -> tuple[Client, JetStreamContext]:
        """The shared connection, opened on first use; BrokerUnavailable while it is down."""
        if self._closed:
            raise BrokerUnavailable("this broker is closed")
        if self._nc is None:
            async with self._connecting:
                if self._nc is None:
                    await self._connect()
        assert self._nc is not None and self._js is not None
        if not self._nc.is_connected:
            raise BrokerUnavailable(f"NATS at {self.url} is unavailable (reconnecting)")
        return self._nc, self._js

    async def _connect(self) -> None:
        nc = Client()
        try:
            # Told to reconnect forever, nats-py would also try a server that is down forever
            # the first time: two quick tries first, then "forever" (below).
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
        except (*_DOWN, nats.errors.NoServersError, nats.errors.Error) as exc:
            with contextlib.suppress(Exception):
                await nc.close()
            reason = "nothing answers there" if isinstance(exc, nats.errors.NoServersError) else repr(exc)
            raise BrokerUnavailable(f"cannot connect to NATS at {self.url}: {reason}") from exc
        nc.options["max_reconnect_attempts"] = -1  # read at each reconnection attempt
        self._nc, self._js = nc, nc.jetstream(timeout=self.timeout)

    def _next_attempt(self, servers: list[Any], info: dict[str, Any]) -> tuple[Any, float]:
        """nats-py's reconnect hook: the same server, after the next backoff delay."""
        if self._delays is None:
            self._delays = self.reconnect_delays()
        return None, next(self._delays)

    async def _on_disconnected(self) -> None:
        if not self._closed and self._nc is not None:  # not a first connection failing
            logger.warning("lost the connection to NATS at %s; reconnecting", self.url)

    async def _on_reconnected(self) -> None:
        self._delays = None
        self._streams.clear()  # a restarted server may have lost them: ensure again
        logger.info("reconnected to NATS at %s", self.url)
        for subscription in list(self._subscriptions):
            subscription.resume()

    async def _on_error(self, exc: Exception) -> None:
        # Each failed reconnection attempt lands here; the disconnect was logged once already.
        logger.debug("NATS client: %r", exc)

    def _unavailable(self, exc: BaseException) -> BrokerUnavailable:
        if isinstance(exc, nats.js.errors.ServiceUnavailableError):
            return BrokerUnavailable(
                f"NATS at {self.url} answers, but not its JetStream API: was nats-server started "
                f"with -js? (or JetStream is still starting) {exc!r}"
            )
        return BrokerUnavailable(f"NATS at {self.url} is unavailable: {exc!r}")

    # Streams

    async def _ensure_stream(self, room: str) -> str:
        """Create the room's stream if needed (idempotent); returns its name."""
        name = self.stream(room)
        if name in self._streams:
            return name
        _, js = await self._connection()
        config = StreamConfig(
            name=name,
            subjects=[self.subject(room)],
            max_msgs=self.history + self.backlog,
            discard=DiscardPolicy.OLD,
            storage=self.storage,
            num_replicas=1,
        )
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
        except _DOWN as exc:
            raise self._unavailable(exc) from exc
        self._streams.add(name)
        return name

    async def _stream_state(self, room: str) -> tuple[int, int, int]:
        """``(first seq, last seq, messages)`` of the room's stream; zeros when it has none."""
        _, js = await self._connection()
        try:
            state = (await js.stream_info(self.stream(room))).state
        except _NO_STREAM:
            return 0, 0, 0
        except _DOWN as exc:
            raise self._unavailable(exc) from exc
        return state.first_seq, state.last_seq, state.messages

    async def _stored_payload(self, room: str, seq: int) -> bytes | None:
        """The payload stored under ``seq``, or None if the stream no longer has it."""
        _, js = await self._connection()
        try:
            return (await js.get_msg(self.stream(room), seq)).data
        except (*_NO_STREAM, nats.js.errors.APIError):
            return None
        except _DOWN as exc:
            raise self._unavailable(exc) from exc

    async def _consumer(self, room: str, start: int, callback: Callable[[Msg], Any]) -> tuple[Any, str]:
        """A push consumer delivering the room's stream from ``start`` to ``callback``.

        Returns ``(inbox subscription, consumer name)``. No acks (the stream is the
        record, not a work queue); a memory-only consumer that the server deletes by
        itself 30 s after nobody listens to its inbox (a process that died, say).
        """
        nc, js = await self._connection()
        stream = await self._ensure_stream(room)
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
        try:
            info = await js.add_consumer(stream, config)
        except BaseException as exc:
            with contextlib.suppress(Exception):
                await handle.unsubscribe()
            if isinstance(exc, _DOWN):
                raise self._unavailable(exc) from exc
            raise
        return handle, info.name

    async def _drop_consumer(
        self, room: str, handle: NatsSubscriptionHandle | None, name: str | None
    ) -> None:
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
            stream = await self._ensure_stream(event.room)
            _, js = await self._connection()
            try:
                ack = await js.publish(self.subject(event.room), payload, stream=stream)
            except nats.js.errors.NoStreamResponseError:
                # The server lost the stream (restarted without its store): create it again.
                self._streams.discard(stream)
                if attempt == 2:
                    raise BrokerUnavailable(f"NATS at {self.url} has no JetStream stream {stream}") from None
                continue
            except _DOWN as exc:
                raise BrokerUnavailable(
                    f"NATS at {self.url} is unavailable; the event may not have been published: {exc!r}"
                ) from exc
            return event.with_seq(ack.seq)
        raise AssertionError("unreachable")

    async def subscribe(self, room: str) -> Subscription:
        subscription: _NatsSubscriptionBase = (
            NatsSubscription(self, room) if self.jetstream else CoreNatsSubscription(self, room)
        )
        await subscription.start()
        self._subscriptions.add(subscription)
        return subscription

    async def history_after(self, room: str, seq: int) -> list[RoomEvent]:
        if not self.jetstream:
            last = self._local_seq.get(room, 0)
            if seq < last:
                raise HistoryTooOld(seq, last + 1)
            return []
        first, last, messages = await self._stream_state(room)
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

        handle, name = await self._consumer(room, start, collect)
        try:
            await asyncio.wait_for(done, self.timeout + (end - start) / 5000)
        except TimeoutError as exc:
            raise BrokerUnavailable(f"NATS at {self.url} stopped answering while reading history") from exc
        finally:
            await self._drop_consumer(room, handle, name)
        return events

    async def last_seq(self, room: str) -> int:
        if not self.jetstream:
            return self._local_seq.get(room, 0)
        return (await self._stream_state(room))[1]

    async def close(self) -> None:
        subscriptions, self._subscriptions = list(self._subscriptions), set()
        await asyncio.gather(*(s.close() for s in subscriptions), return_exceptions=True)
        self._closed = True
        nc, self._nc, self._js = self._nc, None, None
        if nc is not None:
            with contextlib.suppress(Exception):
                await nc.close()

    def _forget(self, subscription: _NatsSubscriptionBase) -> None:
        self._subscriptions.discard(subscription)

    # Core NATS only

    async def _barrier(self, nc: Client) -> None:
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
        nc, _ = await self._connection()
        seq = self._local_seq[event.room] = self._local_seq.get(event.room, 0) + 1
        numbered = event.with_seq(seq)
        try:
            await nc.publish(self.subject(event.room), numbered.to_json().encode())
            await self._barrier(nc)
        except _DOWN as exc:
            raise self._unavailable(exc) from exc
        return numbered


class _NatsSubscriptionBase(QueuedSubscription):
    def __init__(self, broker: NatsBroker, room: str) -> None:
        self.broker = broker
        self.room = room
        super().__init__()
        #: The sequence number of the last event yielded (or of the room when subscribing).
        self.last_seq = 0
        self.reconnects = 0
        self.recovered = 0
        self.lost = 0
        self.resets = 0
        self._closed = False

    async def start(self) -> None:
        raise NotImplementedError

    def resume(self) -> None:
        """The connection is back (called by the broker)."""


class NatsSubscription(_NatsSubscriptionBase):
    """One room's events from a JetStream consumer; after an outage, a new consumer resumes.

    Counters for lessons and tests as for :class:`~wslab.brokers.redis.RedisSubscription`:
    ``reconnects``, ``recovered``, ``lost``, ``resets``.
    """

    def __init__(self, broker: NatsBroker, room: str) -> None:
        super().__init__(broker, room)
        self._handle: NatsSubscriptionHandle | None = None
        self._consumer_name: str | None = None
        #: Counts consumers: messages of a replaced one are ignored (they carry the stream's
        #: subject, not the inbox's, so the generation tells them apart).
        self._generation = 0
        #: The payload of the last event yielded: tells a server that lost its store apart.
        self._last_payload: bytes | None = None
        #: Stream sequence at the last (re)start: events up to it count as recovered.
        self._replay_until = 0
        self._advanced = asyncio.Event()
        self._resuming: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return f"<NatsSubscription {self.broker.stream(self.room)} last_seq={self.last_seq}>"

    async def start(self) -> None:
        await self.broker._ensure_stream(self.room)
        _, last, _ = await self.broker._stream_state(self.room)
        self.last_seq = last
        self._last_payload = await self.broker._stored_payload(self.room, last) if last else None
        await self._attach(last + 1)

    async def _attach(self, start: int) -> None:
        """Listen to a new consumer starting at ``start``, replacing the current one."""
        old_handle, old_name = self._handle, self._consumer_name
        self._handle = self._consumer_name = None
        self._generation += 1
        generation = self._generation
        await self.broker._drop_consumer(self.room, old_handle, old_name)

        async def on_message(msg: Msg) -> None:
            if generation == self._generation:
                await self._on_message(msg)

        self._handle, self._consumer_name = await self.broker._consumer(self.room, start, on_message)

    async def _on_message(self, msg: Msg) -> None:
        if self._closed or not msg.reply:
            return  # a status message
        seq = msg.metadata.sequence.stream
        if seq <= self.last_seq:
            return
        if seq > self.last_seq + 1:
            if self._resuming is not None and not self._resuming.done():
                return  # a new consumer is on its way; it starts at the right place
            first, _, _ = await self.broker._stream_state(self.room)
            if first <= self.last_seq + 1:
                # Still in the stream, so this client dropped them (too slow): start over there.
                # In a task of its own: replacing the consumer ends the task running this callback.
                logger.warning(
                    "room %s: missed seq %d..%d; reading them again", self.room, self.last_seq + 1, seq - 1
                )
                self._resuming = asyncio.get_running_loop().create_task(self._reread(self.last_seq + 1))
                return
            self.lost += seq - self.last_seq - 1
            logger.warning(
                "room %s: events %d..%d fell out of the stream before they could be delivered",
                self.room,
                self.last_seq + 1,
                seq - 1,
            )
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

    def resume(self) -> None:
        if self._closed:
            return
        if self._resuming is not None and not self._resuming.done():
            self._resuming.cancel()  # a re-read started before the outage: _resume does it again
        self._resuming = asyncio.get_running_loop().create_task(self._resume())

    async def _reread(self, start: int) -> None:
        try:
            await self._attach(start)
        except BrokerUnavailable as exc:  # the reconnect's _resume will start over
            logger.debug("room %s: cannot re-read yet: %s", self.room, exc)

    async def _resume(self) -> None:
        """After a reconnect: check what the server kept, then replay from the last seq yielded."""
        for delay in self.broker.reconnect_delays():
            if self._closed:
                return
            try:
                await self.broker._ensure_stream(self.room)
                first, last, messages = await self.broker._stream_state(self.room)
                was = self.last_seq
                stored = await self.broker._stored_payload(self.room, was) if was and was <= last else None
                if last < was or (
                    stored is not None and self._last_payload is not None and stored != self._last_payload
                ):
                    self.resets += 1
                    logger.warning(
                        "room %s: NATS lost the room's stream (restarted without its store?): it is at "
                        "seq %d, this subscription had reached %d. Events published before the restart "
                        "are gone; continuing with the new sequence from its start.",
                        self.room,
                        last,
                        was,
                    )
                    self.last_seq, self._last_payload = 0, None
                elif messages and first > was + 1:
                    self.lost += first - was - 1
                    logger.warning(
                        "room %s: events %d..%d fell out of the stream while disconnected",
                        self.room,
                        was + 1,
                        first - 1,
                    )
                self._replay_until = last
                start = self.last_seq + 1
                await self._attach(start)
            except BrokerUnavailable as exc:
                logger.debug("room %s: cannot resume yet: %s", self.room, exc)
                await asyncio.sleep(delay)
                continue
            except (nats.errors.Error, nats.js.errors.Error) as exc:  # JetStream still starting, say
                logger.warning("room %s: cannot resume yet: %r", self.room, exc)
                await asyncio.sleep(delay)
                continue
            self.reconnects += 1
            logger.info("room %s: consuming again from seq %d", self.room, start)
            return

    async def close(self) -> None:
        """Stop; events published before this call are still yielded, then iteration ends."""
        if self._closed:
            return
        self.broker._forget(self)
        with contextlib.suppress(Exception):  # unreachable, or not caught up in time
            _, last, _ = await self.broker._stream_state(self.room)
            async with asyncio.timeout(self.broker.timeout):
                while self.last_seq < last:
                    self._advanced.clear()
                    await self._advanced.wait()
        self._closed = True
        if self._resuming is not None:
            self._resuming.cancel()
        await self.broker._drop_consumer(self.room, self._handle, self._consumer_name)
        self._handle = self._consumer_name = None
        self.end()


class CoreNatsSubscription(_NatsSubscriptionBase):
    """Core NATS only (``jetstream=False``): what at-most-once means, for lesson 06.

    Each publishing process numbers its own events, so two servers' events share numbers
    and their order is whatever the network made of it; nothing is kept, so
    ``history_after`` can only say that everything is gone; a subscriber that was
    disconnected never sees what was published meanwhile. Not for a real chat: the
    contract tests do not pass on it, and that is the lesson.
    """

    def __init__(self, broker: NatsBroker, room: str) -> None:
        super().__init__(broker, room)
        self._handle: NatsSubscriptionHandle | None = None

    async def start(self) -> None:
        logger.warning(
            "core NATS only: at most once, numbered per publishing process, no history. "
            "Use JetStream (the default) for a chat."
        )
        nc, _ = await self.broker._connection()
        self._handle = await nc.subscribe(self.broker.subject(self.room), cb=self._on_message)
        await self.broker._barrier(nc)

    async def _on_message(self, msg: Msg) -> None:
        if not self._closed:
            with contextlib.suppress(ValueError, KeyError, TypeError):
                self.put(RoomEvent.from_json(msg.data))

    async def close(self) -> None:
        if self._closed:
            return
        self.broker._forget(self)
        if self._handle is not None and self.broker._nc is not None and self.broker._nc.is_connected:
            with contextlib.suppress(Exception):
                await self.broker._barrier(self.broker._nc)
        self._closed = True
        if self._handle is not None:
            with contextlib.suppress(Exception):
                await self._handle.unsubscribe()
        self.end()
