"""Lessons 02-06's chat server: one room, usernames, fan-out through a broker.

The shape follows the original tutorial: each connection has a receiving side (read the
client's messages, publish them) and a sending side (deliver what the broker carries).
Here the sending side is one dispatch loop per server instead of one task per client:
it hands each event to every client's connection without waiting, the way
:func:`websockets.asyncio.server.broadcast` does, so one slow client never holds up the
others.

What the tutorial left open is what happens when a client cannot keep up. Its broadcast
channel dropped messages for that client, silently. Here the server watches how many
bytes wait to be sent to each client and, above ``max_backlog``, applies an
:class:`OverflowPolicy`: ``DROP`` reproduces the tutorial (and counts what it lost);
``DISCONNECT``, the default, closes the connection with 4001 so the client reconnects
and resumes from the last sequence number it saw: nothing is lost, nothing is silent.

The chat logic talks to connections through :class:`Peer`, so the same server runs on
a :mod:`websockets` server (:class:`WebsocketsPeer`) and inside a Starlette application
(:class:`wslab.servers.web.AsgiPeer`, lesson 04).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed
from websockets.frames import CloseCode
from websockets.protocol import State

from ..auth import TokenError, Tokens
from ..brokers import Broker, BrokerReset, BrokerUnavailable, MemoryBroker, Subscription
from ..heartbeat import HeartbeatPolicy, Verdict
from ..limits import TokenBucket
from ..protocol import (
    PONG,
    AppCloseCode,
    Dialect,
    EventKind,
    HistoryTooOld,
    ProtocolViolation,
    RoomEvent,
    UsernameError,
    encode,
    parse_client_message,
    parse_hello,
    render_plain,
    validate_username,
)
from ..runtime import ServerHandle, peer_name, serve

__all__ = ["ChatServer", "ChatStats", "OverflowPolicy", "Peer", "PeerClosed", "WebsocketsPeer"]

logger = logging.getLogger("wslab.chat")


class PeerClosed(Exception):
    """The connection ended, cleanly or not; for the chat, the user has gone."""


class Peer(ABC):
    """One client connection, as the chat needs it, whatever serves it."""

    #: ``host:port`` of the client, for logs.
    remote: str = "unknown"

    @abstractmethod
    async def recv(self) -> str | bytes:
        """The next message; raises :class:`PeerClosed` when the connection has ended."""

    @abstractmethod
    async def send(self, text: str) -> None:
        """Send and wait while the connection's buffer is full (backpressure)."""

    @abstractmethod
    def push(self, text: str, data: bytes) -> None:
        """Queue ``text`` (``data`` is its UTF-8 encoding) without waiting."""

    @property
    @abstractmethod
    def backlog(self) -> int:
        """Bytes accepted for this client that have not reached the network yet."""

    @property
    @abstractmethod
    def open(self) -> bool: ...

    @abstractmethod
    async def close(self, code: int, reason: str) -> None: ...

    @abstractmethod
    def abort(self) -> None:
        """Drop the connection now, without a close handshake (the peer is gone)."""

    async def __aiter__(self) -> AsyncIterator[str | bytes]:
        while True:
            try:
                yield await self.recv()
            except PeerClosed:
                return


class WebsocketsPeer(Peer):
    """A :mod:`websockets` server connection."""

    def __init__(self, connection: ServerConnection) -> None:
        self.connection = connection
        self.remote = peer_name(connection)

    async def recv(self) -> str | bytes:
        try:
            return await self.connection.recv()
        except ConnectionClosed as exc:
            raise PeerClosed(str(exc)) from exc

    async def send(self, text: str) -> None:
        try:
            await self.connection.send(text)
        except ConnectionClosed as exc:
            raise PeerClosed(str(exc)) from exc

    def push(self, text: str, data: bytes) -> None:
        # What websockets' broadcast() does for each connection: frame the bytes, write
        # them to the transport, never wait.
        self.connection.protocol.send_text(data)
        self.connection.send_data()

    @property
    def backlog(self) -> int:
        transport = self.connection.transport
        return transport.get_write_buffer_size() if transport is not None else 0

    @property
    def open(self) -> bool:
        return self.connection.protocol.state is State.OPEN

    async def close(self, code: int, reason: str) -> None:
        await self.connection.close(code, reason)

    def abort(self) -> None:
        self.connection.transport.abort()


class OverflowPolicy(StrEnum):
    """What to do when a client's unsent backlog exceeds the limit."""

    #: The original tutorial's behaviour: skip messages for that client, silently to it.
    DROP = "drop"
    #: Close with 4001; the client reconnects and resumes from history.
    DISCONNECT = "disconnect"


def _reason(text: str) -> str:
    """A close reason fits in 123 bytes of UTF-8."""
    data = text.encode()
    return text if len(data) <= 123 else data[:120].decode(errors="ignore") + "..."


@dataclass(eq=False)
class _Client:
    peer: Peer
    name: str
    dialect: Dialect
    #: The last sequence number the client says it saw (json hello), or None.
    resume: int | None = None
    #: Highest sequence number handed to this client; nothing at or below is sent again.
    last_seq: int = 0
    #: While a joining client is sent its welcome and replay, live events wait here.
    pending: list[RoomEvent] | None = field(default_factory=list)
    dropped: int = 0
    evicted: bool = False
    limiter: TokenBucket | None = None
    #: When anything last arrived from this client (monotonic clock): its heartbeat.
    last_heard: float = field(default_factory=time.monotonic)
    #: This connection replaced the same user's older one: the user never left the room.
    took_over: bool = False


@dataclass
class ChatStats:
    """Counters for the server panel and the benchmarks."""

    published: int = 0
    delivered: int = 0
    dropped: int = 0
    evicted: int = 0
    rejected: int = 0
    _recent: deque[float] = field(default_factory=lambda: deque(maxlen=10_000), repr=False)

    def note_published(self) -> None:
        self.published += 1
        self._recent.append(time.monotonic())

    def rate(self, window: float = 2.0) -> float:
        """Messages per second published through this server over the last ``window`` s."""
        cutoff = time.monotonic() - window
        return sum(1 for t in self._recent if t >= cutoff) / window


class _Refused(Exception):
    """A hello the server turns down: ``code`` for the error reply, ``close`` for the close frame."""

    def __init__(self, code: str, text: str, close: int = CloseCode.POLICY_VIOLATION) -> None:
        super().__init__(text)
        self.code = code
        self.close = close


class ChatServer:
    """A chat room served over WebSockets; pass :meth:`handler` to a server, or call :meth:`serve`.

    Args:
        broker: carries room events between servers; an in-process one by default.
        room: the room this server's clients talk in.
        server_id: names this server in events (``via``), to show where messages passed.
        overflow: what happens to a client whose backlog exceeds ``max_backlog``.
        max_backlog: bytes allowed to wait for a client before ``overflow`` applies.
        send_buffer: if set, the kernel send buffer (SO_SNDBUF) of each connection, in
            bytes; a small one makes a slow client show up as backlog sooner.
        hello_timeout: seconds a new connection has to send its username.
        max_pending: live events held for a client while it is sent its replay; past
            that, the client counts as too slow as well.
        max_users: refuse newcomers (close 1013, try again later) when this many are in.
        rate: ``(messages per second, burst)`` allowed per connection; more closes it
            with 1008. None for no limit.
        tokens: if set, a json hello must carry a token for its name (see
            :mod:`wslab.auth`); a plain-dialect client is then refused.
        heartbeat: if set, every ``interval`` the server sends json clients
            ``{"type": "ping"}``, and drops a client it has not heard from (any message,
            ``pong`` included) for ``timeout``, announcing its leave. This is the
            application-level heartbeat browsers need: they cannot send protocol pings.
            Plain-dialect clients are left to the transport's keepalive.
    """

    def __init__(
        self,
        *,
        broker: Broker | None = None,
        room: str = "lobby",
        server_id: str = "chat",
        overflow: OverflowPolicy | str = OverflowPolicy.DISCONNECT,
        max_backlog: int = 1 << 20,
        send_buffer: int | None = None,
        hello_timeout: float = 10.0,
        max_pending: int = 10_000,
        max_users: int | None = None,
        rate: tuple[float, float] | None = None,
        tokens: Tokens | None = None,
        heartbeat: HeartbeatPolicy | None = None,
    ) -> None:
        self.heartbeat = heartbeat
        #: Seconds of silence after which each dead client was dropped (newest last).
        self.dead_after: deque[float] = deque(maxlen=1000)
        self._heartbeat_task: asyncio.Task[None] | None = None
        self.broker = broker if broker is not None else MemoryBroker()
        self.room = room
        self.server_id = server_id
        self.overflow = OverflowPolicy(overflow)
        self.max_backlog = max_backlog
        self.send_buffer = send_buffer
        self.hello_timeout = hello_timeout
        self.max_pending = max_pending
        self.max_users = max_users
        self.rate = rate
        self.tokens = tokens
        self.stats = ChatStats()
        #: The newest room events this server delivered, for live views (bounded).
        self.transcript: deque[RoomEvent] = deque(maxlen=200)
        self._listeners: list[Callable[[RoomEvent], None]] = []
        self._clients: dict[str, _Client] = {}
        self._subscription: Subscription | None = None
        self._dispatcher: asyncio.Task[None] | None = None
        #: Servers attached (see :meth:`attach`) that have not stopped yet.
        self._serving = 0

    # Lifecycle

    async def start(self) -> None:
        """Subscribe to the room; idempotent."""
        if self._dispatcher is None:
            self._subscription = await self.broker.subscribe(self.room)
            self._dispatcher = asyncio.create_task(self._dispatch(self._subscription), name="chat-dispatch")
        if self.heartbeat is not None and self._heartbeat_task is None:
            self._heartbeat_task = asyncio.create_task(self._beat(self.heartbeat), name="chat-heartbeat")

    async def stop(self) -> None:
        """Unsubscribe (clients are closed by the WebSocket server stopping)."""
        if self._subscription is not None:
            await self._subscription.close()
        for task in (self._dispatcher, self._heartbeat_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._subscription = self._dispatcher = self._heartbeat_task = None

    async def serve(
        self, *, name: str = "chat", host: str = "127.0.0.1", port: int = 0, **options: Any
    ) -> ServerHandle:
        """Start this chat server under ``name`` with :func:`wslab.runtime.serve`; stops with it.

        The connections' ``write_limit`` defaults to half of ``max_backlog``: a replay,
        which awaits each send, then never fills a buffer past the eviction threshold.
        """
        options.setdefault("write_limit", max(1024, self.max_backlog // 2))
        options.setdefault("send_buffer", self.send_buffer)
        # Attached before serve(), which first stops a server already running under this
        # name or port: if that one serves this chat too, its detach must not unsubscribe
        # the chat the new server relies on.
        await self.attach()
        try:
            handle = await serve(self.handler, name=name, host=host, port=port, **options)
        except BaseException:
            await self.detach()
            raise
        handle.on_stop(self.detach)
        return handle

    async def attach(self) -> None:
        """A server starts delivering this chat: subscribe if it is the first."""
        self._serving += 1
        await self.start()

    async def detach(self) -> None:
        """A server stopped: unsubscribe once the last one has."""
        self._serving -= 1
        if self._serving == 0:
            await self.stop()

    @property
    def users(self) -> list[str]:
        """Who is connected to this server, in order of arrival."""
        return list(self._clients)

    @property
    def full(self) -> bool:
        return self.max_users is not None and len(self._clients) >= self.max_users

    def backlogs(self) -> dict[str, int]:
        """Bytes waiting to be sent, per connected user."""
        return {name: client.peer.backlog for name, client in self._clients.items()}

    async def close_all(self, code: int = CloseCode.GOING_AWAY, reason: str = "server shutting down") -> None:
        """Close every client's connection (a server that is not :mod:`websockets` needs this)."""
        clients = list(self._clients.values())
        await asyncio.gather(*(c.peer.close(code, reason) for c in clients), return_exceptions=True)

    # One connection

    async def handler(self, connection: ServerConnection) -> None:
        """The :mod:`websockets` handler."""
        await self.handle(WebsocketsPeer(connection))

    async def handle(self, peer: Peer) -> None:
        """Serve one connection: hello, welcome, catch-up, then relay until the client leaves."""
        client = await self._admit(peer)
        if client is None:
            return
        try:
            await self._catch_up(client)
            await self.broker.publish(
                RoomEvent(EventKind.JOIN, client.name, room=self.room, via=self.server_id)
            )
            await self._relay(client)
        except PeerClosed:
            pass
        except BrokerUnavailable as exc:
            # Without the broker this server can neither number nor deliver messages: send
            # the client away to try again (1013). Closing, rather than answering an error,
            # keeps each client's messages in order: nothing after a failed one is published.
            logger.warning("%s: %s", client.name, exc)
            with contextlib.suppress(PeerClosed, ConnectionClosed):
                await client.peer.close(CloseCode.TRY_AGAIN_LATER, "message broker unavailable; try again")
        finally:
            if self._clients.get(client.name) is client:
                del self._clients[client.name]
            if not client.evicted:
                await self._announce_leave(client)

    async def _admit(self, peer: Peer) -> _Client | None:
        """Read the hello and check it; on failure, say why and close (1008, or 1013 when full)."""
        try:
            first = await asyncio.wait_for(peer.recv(), self.hello_timeout)
        except TimeoutError:
            await peer.close(CloseCode.POLICY_VIOLATION, "send your username first")
            return None
        except PeerClosed:
            return None
        dialect = Dialect.JSON if isinstance(first, str) and first.lstrip().startswith("{") else Dialect.PLAIN
        try:
            client = self._check_hello(peer, first)
        except (ProtocolViolation, UsernameError, TokenError, _Refused) as exc:
            self.stats.rejected += 1
            code = getattr(exc, "code", "bad-hello" if isinstance(exc, ProtocolViolation) else "bad-token")
            reply = encode("error", code=code, text=str(exc)) if dialect is Dialect.JSON else f"error: {exc}"
            with contextlib.suppress(PeerClosed):
                await peer.send(reply)
            await peer.close(getattr(exc, "close", CloseCode.POLICY_VIOLATION), _reason(str(exc)))
            return None
        self._clients[client.name] = client  # claims the name; live events queue in client.pending
        return client

    def _check_hello(self, peer: Peer, first: str | bytes) -> _Client:
        hello = parse_hello(first)
        if self.tokens is not None:
            if hello.dialect is Dialect.PLAIN:
                raise _Refused("token-required", "this server needs the json hello with a token")
            self.tokens.verify(hello.token, hello.name.strip())
        holder = self._clients.get(hello.name.strip())
        took_over = holder is not None and hello.resume is not None and self.tokens is not None
        if took_over:
            # A reconnect that proved the name: the old connection is a leftover (its network
            # died before the server noticed), so the new one takes its place, in silence:
            # for the room, this user never left.
            self._forget(holder)
            asyncio.get_running_loop().create_task(
                holder.peer.close(AppCloseCode.REPLACED, "replaced by a newer connection")
            )
        name = validate_username(hello.name, taken=self._clients)
        if self.full:
            raise _Refused(
                "room-full",
                f"the room is full ({self.max_users} people); try again later",
                CloseCode.TRY_AGAIN_LATER,
            )
        limiter = TokenBucket(*self.rate) if self.rate else None
        return _Client(peer, name, hello.dialect, resume=hello.resume, limiter=limiter, took_over=took_over)

    async def _catch_up(self, client: _Client) -> None:
        """Welcome, replay what a resuming client missed, then switch it to live delivery."""
        snapshot = await self.broker.last_seq(self.room)
        resume = client.resume
        peer = client.peer
        if client.dialect is Dialect.PLAIN:
            await peer.send(f"Welcome, {client.name}!")
            client.last_seq = snapshot
        else:
            # What the client should expect: pings this often, and how fast it may send.
            extras: dict[str, Any] = {}
            if self.heartbeat is not None:
                extras["heartbeat"] = {"interval": self.heartbeat.interval, "timeout": self.heartbeat.timeout}
            if self.rate is not None:
                extras["rate"] = list(self.rate)
            await peer.send(
                encode(
                    "welcome",
                    name=client.name,
                    seq=snapshot,
                    users=self.users,
                    server=self.server_id,
                    **extras,
                )
            )
            client.last_seq = snapshot if resume is None else min(resume, snapshot)
            if resume is not None:
                for event in await self._history(client, resume):
                    await self._send_now(client, event)
        pending = client.pending or []
        while pending:
            await self._send_now(client, pending.pop(0))
        client.pending = None  # no await since the last check: nothing can slip in between
        if client.dialect is Dialect.JSON:
            # Tells a resuming client that replay is over: unacknowledged messages can be resent.
            await peer.send(encode("live", seq=client.last_seq))

    async def _history(self, client: _Client, resume: int) -> list[RoomEvent]:
        try:
            return await self.broker.history_after(self.room, resume)
        except HistoryTooOld as exc:
            await client.peer.send(
                encode("history-lost", first=exc.wanted_after + 1, last=exc.oldest - 1, text=str(exc))
            )
            client.last_seq = exc.oldest - 1
            return await self.broker.history_after(self.room, exc.oldest - 1)

    async def _relay(self, client: _Client) -> None:
        """Publish what the client says; answer malformed messages with an error reply."""
        async for message in client.peer:
            client.last_heard = time.monotonic()
            try:
                said = parse_client_message(message, client.dialect)
            except ProtocolViolation as exc:
                said, problem = None, exc
            else:
                problem = None
            if said is PONG:
                continue  # heartbeats never count against the rate limit
            if client.limiter is not None and not client.limiter.allow():
                rate, burst = self.rate or (0, 0)
                await client.peer.close(
                    CloseCode.POLICY_VIOLATION,
                    f"rate limit: at most {rate:g} messages/s (bursts of {burst:g})",
                )
                return
            if problem is not None:
                await client.peer.send(self._error_reply(client, message, problem))
                continue
            if said is None:
                continue
            text, ref = said
            # Without the broker this raises BrokerUnavailable, and handle() sends the client
            # away (1013): the messages it has in flight stay unacknowledged, and it resends
            # them, in order, once it is back and live.
            await self.broker.publish(
                RoomEvent(EventKind.CHAT, client.name, text, room=self.room, via=self.server_id, ref=ref)
            )
            self.stats.note_published()

    @staticmethod
    def _error_reply(client: _Client, message: str | bytes, problem: ProtocolViolation) -> str:
        """The answer to a malformed message; it names the message's ``ref`` when it had one,
        so the client can drop it from its outbox instead of resending it forever."""
        if client.dialect is Dialect.PLAIN:
            return f"error: {problem}"
        ref = None
        with contextlib.suppress(ValueError, TypeError, AttributeError):
            ref = json.loads(message).get("ref")
        return encode("error", code="bad-message", text=str(problem), **({"ref": str(ref)} if ref else {}))

    async def _beat(self, policy: HeartbeatPolicy) -> None:
        """The application heartbeat: ping every json client, drop the silent ones."""
        while True:
            await asyncio.sleep(policy.interval)
            now = time.monotonic()
            ping = encode("ping", t=round(time.time(), 3))
            data = ping.encode()
            for client in list(self._clients.values()):
                if client.dialect is not Dialect.JSON or client.evicted:
                    continue
                if policy.verdict(last_heard=client.last_heard, now=now) is Verdict.DEAD:
                    self._drop_dead(client, now - client.last_heard)
                elif client.pending is None and client.peer.open:
                    client.peer.push(ping, data)

    def _forget(self, client: _Client) -> None:
        """Take a client out of the room now; its handler's cleanup will not announce a leave."""
        client.evicted = True
        if self._clients.get(client.name) is client:
            del self._clients[client.name]

    async def disconnect(
        self, name: str, *, code: int = AppCloseCode.TOO_SLOW, reason: str = "disconnected"
    ) -> bool:
        """Close ``name``'s connection (an instructor's kick, a test's network failure).

        The default code, 4001, tells a client to reconnect and resume; 1008 would tell
        it to stay away. Returns False if nobody of that name is connected here.
        """
        client = self._clients.get(name)
        if client is None:
            return False
        self._forget(client)
        await self._announce_leave(client)
        with contextlib.suppress(PeerClosed, ConnectionClosed):
            await client.peer.close(code, reason)
        return True

    def _drop_dead(self, client: _Client, silence: float) -> None:
        """Remove a client that stopped answering, announce its leave, and drop its connection."""
        self._forget(client)
        self.dead_after.append(silence)
        logger.info("%s silent for %.1f s: dropped", client.name, silence)
        client.peer.abort()
        asyncio.get_running_loop().create_task(self._announce_leave(client))

    async def _announce_leave(self, client: _Client) -> None:
        with contextlib.suppress(Exception):  # a broker outage must not hide the disconnect
            await self.broker.publish(
                RoomEvent(EventKind.LEAVE, client.name, room=self.room, via=self.server_id)
            )

    # Delivery

    def _payload(
        self, client: _Client, event: RoomEvent, cache: dict[Any, tuple[str, bytes]]
    ) -> tuple[str, bytes] | None:
        """What ``client`` should receive for ``event`` (text and its UTF-8), or None for nothing.

        ``cache`` holds each rendering once per event: a thousand recipients cost one
        ``json.dumps`` and one ``encode``.
        """
        own = event.kind is EventKind.CHAT and event.name == client.name
        if own:
            if client.dialect is Dialect.PLAIN:
                return None  # never back to the sender
            key: Any = "ack"
        else:
            key = client.dialect
        cached = cache.get(key)
        if cached is None:
            if key == "ack":
                text = encode("ack", seq=event.seq, ref=event.ref)
            elif key is Dialect.PLAIN:
                text = render_plain(event)
            else:
                text = event.to_wire()
            cached = cache[key] = (text, text.encode())
        return cached

    async def _send_now(self, client: _Client, event: RoomEvent) -> None:
        """Send one event during catch-up, awaiting the connection (backpressure applies)."""
        if event.seq <= client.last_seq:
            return
        payload = self._payload(client, event, {})
        client.last_seq = event.seq
        if payload is not None:
            await client.peer.send(payload[0])
            self.stats.delivered += 1

    def on_event(self, listener: Callable[[RoomEvent], None]) -> Callable[[], None]:
        """Call ``listener`` with every room event this server delivers; returns an unsubscriber."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    async def _dispatch(self, subscription: Subscription) -> None:
        async for event in subscription:
            if isinstance(event, BrokerReset):  # the chat room learns to handle it (issue 11)
                continue
            try:
                self.deliver(event)
                self.transcript.append(event)
                for listener in tuple(self._listeners):
                    listener(event)
            except Exception:  # one bad event or view must not end delivery for everyone
                logger.exception("delivering seq %s failed", event.seq)

    def deliver(self, event: RoomEvent) -> None:
        """Hand ``event`` to every live client now, without waiting on any of them."""
        cache: dict[Any, tuple[str, bytes]] = {}
        delivered = 0
        for client in list(self._clients.values()):
            if client.pending is not None:
                if len(client.pending) < self.max_pending:
                    client.pending.append(event)
                elif not client.evicted:
                    self._overflow(client)
                continue
            if event.seq <= client.last_seq or client.evicted or not client.peer.open:
                continue
            if client.peer.backlog > self.max_backlog:
                self._overflow(client)
                if self.overflow is OverflowPolicy.DROP:
                    client.last_seq = event.seq
                continue
            client.last_seq = event.seq
            payload = self._payload(client, event, cache)
            if payload is not None:
                client.peer.push(*payload)
                delivered += 1
        self.stats.delivered += delivered

    def _overflow(self, client: _Client) -> None:
        if self.overflow is OverflowPolicy.DROP:
            client.dropped += 1
            self.stats.dropped += 1
            return
        client.evicted = True
        self.stats.evicted += 1
        if self._clients.get(client.name) is client:
            del self._clients[client.name]  # frees the name for the reconnect
        reason = _reason(
            f"too slow: {client.peer.backlog} bytes waiting; reconnect with resume={client.last_seq}"
        )
        asyncio.get_running_loop().create_task(self._evict(client, reason))

    async def _evict(self, client: _Client, reason: str) -> None:
        # The user has left the room now; the close frame waits behind the backlog.
        await self._announce_leave(client)
        with contextlib.suppress(PeerClosed, ConnectionClosed):
            await client.peer.close(AppCloseCode.TOO_SLOW, reason)
