"""Lessons 02-06's chat server: the asyncio shell around :class:`wslab.room.ChatRoom`.

The room decides; this module only carries out its decisions on real connections and a
real broker: it reads each connection's messages and feeds them to the room, publishes
what the room says to publish, pushes what the broker delivers to whoever the room says,
and closes whom the room sends away. Every recipient of a fan-out is written to on its
own, as :func:`websockets.asyncio.server.broadcast` does: one client failing never stops
the delivery to the others. A big fan-out yields to the event loop every
:data:`PUSHES_PER_TURN` writes, so new connections keep being accepted while it runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.frames import CloseCode

from ..brokers import Broker, BrokerReset, BrokerUnavailable, MemoryBroker, Subscription
from ..core.auth import Tokens
from ..core.close_codes import AppCloseCode
from ..core.heartbeat import HeartbeatPolicy
from ..core.protocol import HistoryTooOld, RoomEvent, ServerMessage
from ..core.room import (
    Action,
    ChatRoom,
    ChatStats,
    Close,
    FanOut,
    Member,
    OverflowPolicy,
    PresencePolicy,
    Publish,
    RoomReset,
    Send,
)
from ..runtime.handles import ServerHandle, serve
from .peers import Peer, PeerClosed, WebsocketsPeer

__all__ = [
    "PUSHES_PER_TURN",
    "ChatServer",
    "ChatStats",
    "OverflowPolicy",
    "Peer",
    "PeerClosed",
    "PresencePolicy",
    "WebsocketsPeer",
]

logger = logging.getLogger("wslab.chat")

#: Writes a fan-out makes before it lets the event loop run other work (accepting and
#: handshaking new connections, reading clients): 100 messages to 10,000 people are a
#: million writes, seconds of work that must not hold up a handshake past its timeout.
PUSHES_PER_TURN = 500

Listener = Callable[[RoomEvent], None]


class ChatServer:
    """A chat room served over WebSockets: :meth:`serve` it, or hand it connections.

    Args:
        broker: carries room events between servers; an in-process one by default.
        room: the name of the room this server's clients talk in.
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
        heartbeat: if set, every ``interval`` json clients get ``{"type": "ping"}``, and a
            client not heard from for ``timeout`` is dropped (browsers cannot send
            protocol pings). Plain-dialect clients are left to the transport's keepalive.
        presence: when joins and leaves are coalesced and presence goes by counts
            (:class:`wslab.presence.PresencePolicy`; past 50 people, one announcement each
            per 0.5 s tick, by default).
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
        presence: PresencePolicy | None = None,
    ) -> None:
        self.broker = broker if broker is not None else MemoryBroker()
        #: Every decision: admission, catch-up, fan-out, limits, heartbeat verdicts, stats.
        self.room = ChatRoom(
            name=room,
            server_id=server_id,
            overflow=overflow,
            max_backlog=max_backlog,
            max_waiting=max_pending,
            max_users=max_users,
            rate=rate,
            tokens=tokens,
            heartbeat=heartbeat,
            presence=presence,
            clock=time.monotonic,
        )
        self.send_buffer = send_buffer
        self.hello_timeout = hello_timeout
        self._listeners: list[Listener] = []
        self._subscription: Subscription | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._background: set[asyncio.Task[Any]] = set()
        #: Servers attached (see :meth:`attach`) that have not detached yet.
        self._attached = 0
        self._pushed = 0  # writes since the fan-out last let the event loop run

    # What the room knows, under the names the lessons use

    server_id = property(lambda self: self.room.server_id)
    stats: ChatStats = property(lambda self: self.room.stats)  # type: ignore[assignment]
    overflow = property(lambda self: self.room.overflow)
    max_backlog = property(lambda self: self.room.max_backlog)
    max_users = property(lambda self: self.room.max_users)
    rate = property(lambda self: self.room.rate)
    tokens = property(lambda self: self.room.tokens)
    heartbeat = property(lambda self: self.room.heartbeat)
    #: The newest room events this server delivered, for live views (bounded).
    transcript = property(lambda self: self.room.transcript)
    #: Seconds of silence after which each dead client was dropped (newest last).
    dead_after = property(lambda self: self.room.dead_after)

    @property
    def users(self) -> list[str]:
        """Who is connected to this server, in order of arrival."""
        return self.room.users

    @property
    def everyone(self) -> list[str]:
        """Who is in the whole room: this server's users, then those other servers announced."""
        return self.room.everyone

    @property
    def full(self) -> bool:
        return self.room.full

    def backlogs(self) -> dict[str, int]:
        """Bytes waiting to be sent, per connected user."""
        return {name: member.connection.backlog for name, member in self.room.members.items()}

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener`` with every room event this server delivers; returns an unsubscriber."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    # Lifecycle: serve() starts a websockets server; attach()/detach() bracket any server

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
            handle = await serve(self.serve_websocket, name=name, host=host, port=port, **options)
        except BaseException:
            await self.detach()
            raise
        handle.on_stop(self.detach)
        return handle

    async def attach(self) -> None:
        """A server starts delivering this chat: subscribe to the room if it is the first."""
        self._attached += 1
        if self._subscription is None:
            self._subscription = subscription = await self.broker.subscribe(self.room.name)
            self._tasks.append(asyncio.create_task(self._dispatch(subscription), name="chat-dispatch"))
            self._tasks.append(asyncio.create_task(self._presence_ticks(), name="chat-presence"))
            if self.heartbeat is not None:
                self._tasks.append(asyncio.create_task(self._beat(self.heartbeat), name="chat-heartbeat"))

    async def detach(self) -> None:
        """A server stopped (its clients are closed): unsubscribe once the last one has."""
        self._attached -= 1
        if self._attached > 0 or self._subscription is None:
            return
        subscription, self._subscription = self._subscription, None
        await subscription.close()
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def close_connections(
        self, code: int = CloseCode.GOING_AWAY, reason: str = "server shutting down"
    ) -> None:
        """Close every client's connection (a server that is not :mod:`websockets` needs this)."""
        peers = [member.connection for member in self.room.members.values()]
        await asyncio.gather(*(peer.close(code, reason) for peer in peers), return_exceptions=True)

    def abort_connections(self) -> None:
        """Drop every client's connection without a close frame, as a crashed process would."""
        for member in list(self.room.members.values()):
            member.connection.abort()

    async def disconnect(
        self, name: str, *, code: int = AppCloseCode.TOO_SLOW, reason: str = "disconnected"
    ) -> bool:
        """Close ``name``'s connection (an instructor's kick, a test's network failure).

        The default code, 4001, tells a client to reconnect and resume; 1008 would tell
        it to stay away. Returns False if nobody of that name is connected here.
        """
        actions = self.room.disconnect(name, code, reason)
        if actions is None:
            return False
        for action in actions:
            await self._perform(action)
        return True

    # One connection: admit, catch up, relay, leave

    async def serve_websocket(self, connection: ServerConnection) -> None:
        """Serve one :mod:`websockets` connection (the handler :meth:`serve` registers)."""
        await self.serve_peer(WebsocketsPeer(connection))

    async def serve_peer(self, peer: Peer) -> None:
        """Serve one connection: hello, welcome, catch-up, then relay until the client leaves."""
        member = await self._admit(peer)
        if member is None:
            return
        try:
            await self._catch_up(member)
            for action in self.room.joined(member):
                await self._perform(action)
            async for message in peer:
                for action in self.room.receive(member, message):
                    await self._perform(action)
        except PeerClosed:
            pass
        except BrokerUnavailable as exc:
            # Without the broker this server can neither number nor deliver messages: send
            # the client away to try again (1013). Closing, rather than answering an error,
            # keeps each client's messages in order: nothing after a failed one is published,
            # and the client resends them, in order, once it is back and live.
            logger.warning("%s: %s", member.name, exc)
            with contextlib.suppress(PeerClosed):
                await peer.close(CloseCode.TRY_AGAIN_LATER, "message broker unavailable; try again")
        finally:
            for action in self.room.gone(member):
                await self._perform(action)

    async def _admit(self, peer: Peer) -> Member | None:
        try:
            async with asyncio.timeout(self.hello_timeout):  # no extra task per newcomer, as wait_for makes
                first = await peer.recv()
        except TimeoutError:
            await peer.close(CloseCode.POLICY_VIOLATION, "send your username first")
            return None
        except PeerClosed:
            return None
        member, actions = self.room.admit(peer, first)
        for action in actions:
            await self._perform(action)
        return member

    async def _catch_up(self, member: Member) -> None:
        """Welcome, replay what a resuming client missed, then switch it to live delivery."""
        welcome, replay_after = self.room.welcome(member, await self.broker.last_seq(self.room.name))
        await self._send(member, welcome)
        if replay_after is not None:
            for message in self.room.replay(member, await self._history(member, replay_after)):
                await self._send(member, message)
        live = False
        while not live:  # events that arrived meanwhile; no await between the last check and live
            messages, live = self.room.catch_up(member)
            for message in messages:
                await self._send(member, message)

    async def _history(self, member: Member, after: int) -> list[RoomEvent]:
        try:
            return await self.broker.history_after(self.room.name, after)
        except HistoryTooOld as exc:
            lost, after = self.room.history_lost(member, exc)
            await self._send(member, lost)
            return await self.broker.history_after(self.room.name, after)

    # Carrying out the room's decisions

    async def _send(self, member: Member, message: ServerMessage) -> None:
        text = Send(member, message).text()
        if text is not None:
            await member.connection.send(text)

    async def _perform(self, action: Action) -> None:
        """Carry out ``action``, waiting for it (in a connection's own task)."""
        match action:
            case Send(to, message):
                await self._send(to, message)
            case Publish(event):
                self.room.published(await self.broker.publish(event))
            case Close():
                await self._close(action)

    async def _close(self, action: Close) -> None:
        peer = action.member.connection
        if action.abort:
            logger.info("%s silent: dropped", action.member.name)
            peer.abort()
            return
        with contextlib.suppress(PeerClosed):
            await peer.close(action.code, action.reason)

    async def _carry_out(self, plan: FanOut) -> None:
        """Push a fan-out, isolating every recipient; its other actions run in the background.

        Every :data:`PUSHES_PER_TURN` writes it lets the event loop turn once: the plan
        was decided at once, so the order of events per client stays the room's.
        """
        for delivery in plan.deliveries.values():
            text, data = delivery.text, delivery.data
            for member in delivery.to:
                try:
                    member.connection.push(text, data)
                except Exception as exc:  # one client's failure never touches another's delivery
                    self._push_failed(member, exc)
                self._pushed += 1
                if self._pushed >= PUSHES_PER_TURN:
                    self._pushed = 0
                    await asyncio.sleep(0)
        for action in plan.actions:
            self._in_background(self._perform_quietly(action))

    def _push_failed(self, member: Member, exc: Exception) -> None:
        logger.warning("sending to %s failed (%s: %s): dropping it", member.name, type(exc).__name__, exc)
        with contextlib.suppress(Exception):
            member.connection.abort()

    async def _perform_quietly(self, action: Action) -> None:
        # A leave the broker never got: a broker outage must not hide the disconnect.
        with contextlib.suppress(PeerClosed, BrokerUnavailable, OSError):
            await self._perform(action)

    def _in_background(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # What the broker delivers, and the heartbeat

    async def _dispatch(self, subscription: Subscription) -> None:
        async for item in subscription:
            try:
                if isinstance(item, BrokerReset):
                    logger.warning(
                        "room %s reset by its broker: new numbering after %s", item.room, item.last_seq
                    )
                    await self._carry_out(self.room.reset(RoomReset(item.room, item.last_seq)))
                    continue
                await self._carry_out(self.room.fan_out(item, _backlog))
            except Exception:  # one bad event must not end delivery for everyone
                logger.exception("delivering %r failed", item)
                continue
            for listener in tuple(self._listeners):
                try:
                    listener(item)
                except Exception:  # nor one broken view
                    logger.exception("a listener failed on seq %s", item.seq)

    async def _beat(self, policy: HeartbeatPolicy) -> None:
        while True:
            await asyncio.sleep(policy.interval)
            await self._carry_out(self.room.heartbeat_tick(self.room.clock(), time.time()))

    async def _presence_ticks(self) -> None:
        """A big room's joins and leaves, announced once per tick (a small room's never wait)."""
        interval = self.room.presence.policy.tick
        while True:
            await asyncio.sleep(interval)
            for action in self.room.tick(self.room.clock()):
                await self._perform_quietly(action)


def _backlog(member: Member) -> int:
    return member.connection.backlog
