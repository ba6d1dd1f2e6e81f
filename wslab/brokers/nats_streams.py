"""NATS and JetStream as a room's events need them: one connection, one stream per room, consumers.

What :class:`~wslab.brokers.nats.NatsBroker` and its subscriptions
(:mod:`~wslab.brokers.nats_subscriptions`) ask of the server, in one place: both hold a
:class:`NatsStreams`, so neither needs the other's class. It owns the connection, opened
on first use and reconnected by nats-py with backoff; after a reconnection it asks each
subscription it knows to resume.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import re
from collections.abc import Callable, Iterator
from typing import Any, Protocol

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

from ..core.room_event import RoomEvent
from .base import BrokerUnavailable, broker_address, broker_down_as_unavailable

__all__ = ["NatsStreams", "Resumable"]

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


class Resumable(Protocol):
    """A subscription: it goes on after the connection comes back, and ends with the broker."""

    def resume(self) -> None: ...

    async def close(self) -> None: ...


class NatsStreams:
    """One NATS connection and the JetStream streams and consumers of a broker's rooms.

    Args: as :class:`~wslab.brokers.nats.NatsBroker`'s, which makes one.
    """

    def __init__(
        self,
        url: str,
        *,
        history: int,
        backlog: int,
        prefix: str,
        storage: str,
        timeout: float,
        reconnect_delays: Callable[[], Iterator[float]],
    ) -> None:
        if not _SAFE.fullmatch(prefix):
            raise ValueError(f"prefix {prefix!r}: letters, digits, '-' and '_' only")
        self.url = url
        self.history = history
        self.backlog = backlog
        self.prefix = prefix
        self.storage = StorageType(storage)
        self.timeout = timeout
        self.reconnect_delays = reconnect_delays
        #: ``with self.down(): ...`` turns nats-py's "cannot reach it" into BrokerUnavailable.
        self.down = functools.partial(broker_down_as_unavailable, "NATS", url, _DOWN, reason=_reason)
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._connecting = asyncio.Lock()
        self._delays: Iterator[float] | None = None
        self._streams: set[str] = set()
        #: Subscriptions to resume after a reconnection, and to close with the broker.
        self._resumables: set[Resumable] = set()
        self._closed = False

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
                        # nats-py annotates an int, and sleeps this many seconds: a float works.
                        reconnect_time_wait=0.05,  # type: ignore[arg-type]
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
        for subscription in list(self._resumables):
            subscription.resume()

    async def _on_error(self, exc: Exception) -> None:
        # Each failed reconnection attempt lands here; the disconnect was logged once already.
        logger.debug("NATS client: %r", exc)

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

    def lost(self, stream: str) -> None:
        """The server lost ``stream`` (restarted without its store): create it again on next use."""
        self._streams.discard(stream)

    def track(self, subscription: Resumable) -> None:
        """Resume ``subscription`` after each reconnection, and close it in :meth:`close`,
        unless it leaves first (:meth:`forget`)."""
        self._resumables.add(subscription)

    def forget(self, subscription: Resumable) -> None:
        """A closing subscription leaves: it is no longer resumed."""
        self._resumables.discard(subscription)

    async def read(self, room: str, start: int, end: int) -> list[RoomEvent]:
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

    async def close(self) -> None:
        """Close every subscription, then the connection; nothing reconnects it any more."""
        subscriptions, self._resumables = list(self._resumables), set()
        await asyncio.gather(*(s.close() for s in subscriptions), return_exceptions=True)
        self._closed = True
        nc, self._nc, self._js = self._nc, None, None
        if nc is not None:
            with contextlib.suppress(Exception):
                await nc.close()
