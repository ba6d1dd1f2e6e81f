"""A broker on Redis (or Valkey): PUB/SUB carries the events, a STREAM keeps the history.

This is how Centrifugo's Redis engine works, cut down to what the chat needs. Per room::

    wslab:{lobby}:seq        a counter: the room's last sequence number
    wslab:{lobby}:history    a stream of the newest ``history`` events, entry id ``<seq>-0``
    wslab:{lobby}:events     the PUB/SUB channel every server of the room listens to

(``{lobby}`` is a Redis Cluster hash tag: a room's keys stay on one shard.)

**One Lua script per publish** increments the counter, appends the numbered event to the
stream (trimmed to exactly ``history`` entries: ``MAXLEN``, not ``~``) and PUBLISHes it.
Redis runs a script atomically, so the number is assigned exactly once, and two servers
publishing at the same moment cannot have their events delivered out of order: whichever
script runs first gets the lower number *and* publishes first. Done as three commands from
the client instead, two publishers could interleave (A: INCR 7, B: INCR 8, B: PUBLISH 8,
A: PUBLISH 7) and every subscriber would see 8 before 7.

The stream entry id *is* the sequence number (``<seq>-0``, given explicitly). So reading
"everything after seq 41" is one ``XRANGE`` from id 42, the oldest kept sequence number
is the first entry's id, and Redis itself refuses an id that is not above the last one:
an event can never be numbered twice in the history, even by a buggy publisher.

**Outages.** Every method raises :class:`~wslab.brokers.BrokerUnavailable` at once when
Redis cannot be reached (no silent retries inside redis-py). A subscription whose connection
drops resubscribes with backoff and goes on where it stopped
(:class:`~wslab.brokers.resumable.ResumableSubscription`): what Redis kept is replayed, what
fell out of the history is counted in ``lost``, and a Redis that restarted without its data
(persistence off, as :mod:`wslab.services` runs it) shows as a
:class:`~wslab.brokers.BrokerReset` followed by the room's new numbering. A publish whose
answer was lost with the connection may have run: the error says it is in doubt.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.client import PubSub
from redis.asyncio.connection import BlockingConnectionPool, ConnectionPool
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ..core.history import HistoryTooOld
from ..core.room_event import RoomEvent
from .base import Broker, BrokerUnavailable, Subscription, broker_address, broker_down_as_unavailable
from .base import reconnect_delays as default_reconnect_delays
from .resumable import BrokerState, ResumableSubscription

__all__ = ["PUBLISH_SCRIPT", "RedisBroker", "RedisSubscription"]

logger = logging.getLogger("wslab.brokers.redis")

#: What a lost or unreachable server raises, in redis-py and below it.
_DOWN = (RedisConnectionError, RedisTimeoutError, OSError, asyncio.TimeoutError)
#: What a publish that failed may or may not have done.
_IN_DOUBT = "the event was not published (or, if the connection dropped before the answer, it may have been)"


# KEYS[1] the seq counter, KEYS[2] the history stream; ARGV[1] the channel, ARGV[2] the
# event's JSON without its seq (an object: it starts with "{"), ARGV[3] the history size.
# The numbered JSON is spliced together here rather than re-encoded with cjson, so every
# field (floats included) reaches subscribers exactly as Python encoded it.
PUBLISH_SCRIPT = """
local seq = redis.call('INCR', KEYS[1])
local payload = '{"seq":' .. seq .. ',' .. string.sub(ARGV[2], 2)
redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[3], seq .. '-0', 'e', payload)
redis.call('PUBLISH', ARGV[1], payload)
return seq
"""


def _decode(payload: bytes) -> RoomEvent | None:
    """The event in a message, or None (logged) for anything else on the channel."""
    try:
        return RoomEvent.from_json(payload)
    except (ValueError, KeyError, TypeError) as exc:
        logger.warning("not a room event, skipped: %r (%r)", payload[:80], exc)
        return None


def _seq_of(entry_id: bytes | str) -> int:
    """``42`` from the stream entry id ``b"42-0"``."""
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    return int(text.split("-", 1)[0])


def _entries(entries: list[Any]) -> list[tuple[int, bytes]]:
    """``[(seq, payload), ...]`` from an XRANGE answer."""
    return [(_seq_of(entry_id), fields[b"e"]) for entry_id, fields in entries]


class RedisBroker(Broker):
    """Fan-out through Redis PUB/SUB, numbering and history in Redis: many processes, one room.

    Args:
        url: ``redis://host:port/db`` of a Redis or Valkey server.
        history: events kept per room (exactly: the stream is trimmed to this length).
        key_prefix: starts every key and channel name; two prefixes never see each
            other's rooms (the tests give each test its own).
        timeout: seconds to wait for Redis to connect or answer before
            :class:`BrokerUnavailable`.
        connections: how many connections commands (publishes, history reads) share.
        reconnect_delays: makes the delays between a subscription's reconnection
            attempts; by default :func:`~wslab.brokers.base.reconnect_delays`
            (:func:`~wslab.core.backoff.backoff_delays` capped at 2 s).
    """

    kind = "redis"

    def __init__(
        self,
        url: str,
        *,
        history: int = 1000,
        key_prefix: str = "wslab",
        timeout: float = 2.0,
        connections: int = 32,
        reconnect_delays: Callable[[], Iterator[float]] = default_reconnect_delays,
    ) -> None:
        if history < 1:
            raise ValueError("history must keep at least one event")
        self.url = url
        self.history = history
        self.key_prefix = key_prefix
        self.reconnect_delays = reconnect_delays
        self.timeout = timeout
        #: ``with self.down(): ...`` turns redis-py's "cannot reach it" into BrokerUnavailable.
        self.down = functools.partial(broker_down_as_unavailable, "Redis", url, _DOWN)
        # No retries inside redis-py: a command against a server that is down fails at
        # once, and the broker says so (BrokerUnavailable) instead of stalling the chat.
        options: dict[str, Any] = {
            "socket_connect_timeout": timeout,
            "socket_timeout": timeout,
            "retry": Retry(NoBackoff(), 0),
            "health_check_interval": 0,
        }
        # Commands share a few connections: a burst of publishes waits for one (up to
        # ``timeout``) instead of opening hundreds. Each subscription holds a connection of
        # its own for as long as it lasts, from a second, unbounded pool.
        self._client = aioredis.Redis.from_pool(
            BlockingConnectionPool.from_url(url, max_connections=connections, timeout=timeout, **options)
        )
        self._pubsub_client = aioredis.Redis.from_pool(
            ConnectionPool.from_url(url, max_connections=2**31 - 1, **options)
        )
        self._publish_script = self._client.register_script(PUBLISH_SCRIPT)
        self._subscriptions: set[RedisSubscription] = set()
        self._closed = False

    def __repr__(self) -> str:
        return f"<RedisBroker {broker_address(self.url)} prefix={self.key_prefix!r} history={self.history}>"

    # Names

    def _keys(self, room: str) -> tuple[str, str]:
        base = f"{self.key_prefix}:{{{room}}}"
        return f"{base}:seq", f"{base}:history"

    def channel(self, room: str) -> str:
        """The PUB/SUB channel of ``room``."""
        return f"{self.key_prefix}:{{{room}}}:events"

    # The contract

    async def publish(self, event: RoomEvent) -> RoomEvent:
        seq_key, history_key = self._keys(event.room)
        body = event.to_dict()
        del body["seq"]  # the script puts the number in
        unnumbered = json.dumps(body, separators=(",", ":"), ensure_ascii=False)
        with self.down(outcome=_IN_DOUBT):
            seq = await self._publish_script(
                keys=[seq_key, history_key], args=[self.channel(event.room), unnumbered, self.history]
            )
        return event.with_seq(int(seq))

    async def subscribe(self, room: str) -> Subscription:
        subscription = RedisSubscription(self, room)
        await subscription.start()
        self._subscriptions.add(subscription)
        return subscription

    async def history_after(self, room: str, seq: int) -> list[RoomEvent]:
        events, oldest = await self._read_history(room, seq)
        if events and seq + 1 < oldest:
            raise HistoryTooOld(seq, oldest)
        return [RoomEvent.from_json(payload) for _, payload in events]

    async def last_seq(self, room: str) -> int:
        seq_key, _ = self._keys(room)
        with self.down():
            value = await self._client.get(seq_key)
        return int(value or 0)

    async def ping(self) -> None:
        with self.down():
            await self._client.ping()

    async def close(self) -> None:
        self._closed = True
        subscriptions, self._subscriptions = list(self._subscriptions), set()
        await asyncio.gather(*(s.close() for s in subscriptions), return_exceptions=True)
        for client in (self._client, self._pubsub_client):
            with contextlib.suppress(RedisError, OSError):
                await client.aclose()

    # Reading the stream, each read atomic (MULTI/EXEC)

    async def _read_history(self, room: str, seq: int) -> tuple[list[tuple[int, bytes]], int]:
        """``([(seq, payload), ...] above seq, oldest kept seq)``."""
        _, history_key = self._keys(room)
        with self.down():
            async with self._client.pipeline(transaction=True) as pipe:
                pipe.xrange(history_key, "-", "+", count=1)
                pipe.xrange(history_key, f"{seq + 1}-0", "+")
                first, entries = await pipe.execute()
        return _entries(entries), _seq_of(first[0][0]) if first else 0

    async def _state(self, room: str, seq: int) -> BrokerState:
        """The room's last and oldest kept seq, and the payload kept under ``seq``."""
        seq_key, history_key = self._keys(room)
        with self.down():
            async with self._client.pipeline(transaction=True) as pipe:
                pipe.get(seq_key)
                pipe.xrange(history_key, "-", "+", count=1)
                pipe.xrange(history_key, f"{seq}-0", f"{seq}-0")
                value, first, stored = await pipe.execute()
        return BrokerState(
            last=int(value or 0),
            oldest=_seq_of(first[0][0]) if first else 0,
            stored=stored[0][1][b"e"] if seq and stored else None,
        )

    async def _newest(self, room: str) -> tuple[int, bytes | None]:
        """``(last seq, its payload or None)``."""
        seq_key, history_key = self._keys(room)
        with self.down():
            async with self._client.pipeline(transaction=True) as pipe:
                pipe.get(seq_key)
                pipe.xrevrange(history_key, "+", "-", count=1)
                value, entries = await pipe.execute()
        seq = int(value or 0)
        if entries and _seq_of(entries[0][0]) == seq:
            return seq, entries[0][1][b"e"]
        return seq, None

    def _forget(self, subscription: RedisSubscription) -> None:
        self._subscriptions.discard(subscription)


class RedisSubscription(ResumableSubscription):
    """One room's events from one Redis PUB/SUB connection, resuming after an outage.

    Counters as for every :class:`~wslab.brokers.resumable.ResumableSubscription`:
    ``reconnects``, ``recovered``, ``lost``, ``resets``.
    """

    broker_name = "Redis"
    retry_on = (BrokerUnavailable, RedisError)

    def __init__(self, broker: RedisBroker, room: str) -> None:
        super().__init__(room, delays=broker.reconnect_delays)
        self.broker = broker
        self.channel = broker.channel(room)
        self._pubsub: PubSub | None = None
        self._reader: asyncio.Task[None] | None = None
        self._closed = False

    def __repr__(self) -> str:
        return f"<RedisSubscription {self.channel} last_seq={self.last_seq} reconnects={self.reconnects}>"

    async def start(self) -> None:
        """Subscribe: on return, every event published from now on will be yielded."""
        # Read the room's sequence *before* subscribing: an event numbered after it either
        # arrives on the channel or, if the connection drops first, from the history.
        self.last_seq, self._last_payload = await self.broker._newest(self.room)
        self._pubsub = await self._connect()
        self._reader = asyncio.create_task(self._read(), name=f"redis-subscription {self.room}")

    async def _connect(self) -> PubSub:
        """A PUB/SUB connection subscribed to the room's channel, confirmed by Redis."""
        pubsub = self.broker._pubsub_client.pubsub()
        try:
            with self.broker.down(outcome=f"cannot subscribe to room {self.room!r}"):
                await pubsub.subscribe(self.channel)
                async with asyncio.timeout(self.broker.timeout):
                    while True:  # the confirmation is the first reply; nothing can precede it
                        reply = await pubsub.get_message(timeout=self.broker.timeout)
                        if reply is not None and reply["type"] == "subscribe":
                            return pubsub
        except BaseException:
            with contextlib.suppress(Exception):
                await pubsub.aclose()
            raise

    # What the resubscribe loop needs

    async def _reattach(self) -> None:
        self._pubsub = await self._connect()

    async def _read_state(self) -> BrokerState:
        return await self.broker._state(self.room, self.last_seq)

    async def _catch_up(self, after: int, last: int) -> None:
        kept, _ = await self.broker._read_history(self.room, after)
        for _, payload in kept:
            event = _decode(payload)
            if event is not None and self._offer(event, payload):
                self.recovered += 1

    async def _detach(self) -> None:
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            with contextlib.suppress(Exception):
                await pubsub.aclose()

    # Reading

    def _offer(self, event: RoomEvent, payload: bytes) -> bool:
        """Queue the event unless it was already yielded (seq not above the last)."""
        if event.seq <= self.last_seq:
            return False
        self.last_seq, self._last_payload = event.seq, payload
        self.put(event)
        return True

    async def _fill_gap(self, seq: int) -> None:
        """Before a live event numbered past ``last_seq + 1``, yield the ones between from history.

        Only events published while :meth:`start` was subscribing can be missing so (a
        dropped connection is resumed by the resubscribe loop), but then they are, and the
        subscription yields every event after the room's sequence at its start.
        """
        try:
            kept, _ = await self.broker._read_history(self.room, self.last_seq)
        except BrokerUnavailable:
            return  # the connection will fail too, and the resubscribe loop will fill it
        for kept_seq, kept_payload in kept:
            event = _decode(kept_payload) if kept_seq < seq else None
            if event is not None:
                self._offer(event, kept_payload)

    async def _read(self) -> None:
        try:
            while True:
                if self._pubsub is None and not await self._resubscribe():
                    return  # closing
                assert self._pubsub is not None
                try:
                    reply = await self._pubsub.get_message(timeout=None)
                except (*_DOWN, RedisError) as exc:
                    if self._closing:
                        return
                    logger.warning("room %s: lost the Redis connection (%s); reconnecting", self.room, exc)
                    await self._detach()
                    continue
                if reply is None:
                    continue
                if reply["type"] == "message":
                    payload = reply["data"]
                    event = _decode(payload)
                    if event is not None:
                        if event.seq > self.last_seq + 1:
                            await self._fill_gap(event.seq)
                        self._offer(event, payload)
                elif reply["type"] == "unsubscribe":
                    return  # close() asked; everything published before it has been read
        finally:
            await self._detach()
            self.end()

    async def close(self) -> None:
        """Stop; events published before this call are still yielded, then iteration ends.

        Redis answers UNSUBSCRIBE after every message it already sent on this connection,
        so reading up to that answer delivers everything published before the close.
        """
        if self._closed:
            return
        self._closed = self._closing = True
        self.broker._forget(self)
        reader = self._reader
        if reader is None:
            self.end()
            return
        pubsub = self._pubsub
        if pubsub is not None and not reader.done():
            try:
                await pubsub.unsubscribe(self.channel)
                await asyncio.wait_for(asyncio.shield(reader), self.broker.timeout)
            except (*_DOWN, RedisError):
                pass
        if not reader.done():
            reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await reader
