"""Lessons 02-06's chat server: the asyncio shell around :class:`wslab.core.ChatRoom`.

The room decides; this module only carries out its decisions on real connections and a
real broker. Each input goes to the room once (a first message, a client's message, a
broker event, a timer's tick, a connection that ended) and the actions it returns are
carried out in order, as websockets' connections do with their protocol's output: send,
close, publish, fetch history (whose answer goes back to the room as the next input).
Every recipient of a fan-out is written to on its own, as
:func:`websockets.asyncio.server.broadcast` does: one client failing never stops the
delivery to the others. What lesson 02 shows (one text per rendition, handed to each
connection without waiting) is what runs, with one addition for speed
(:meth:`~wslab.servers.peers.WebsocketsPeer.push_all`): without compression, each text is
framed once and the same bytes go to every connection. A big fan-out yields to
the event loop every :data:`PUSHES_PER_TURN` writes, so new connections keep being
accepted while it runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any

from websockets.asyncio.server import ServerConnection

from ..brokers.base import Broker, BrokerUnavailable, Subscription
from ..brokers.memory import MemoryBroker
from ..core.actions import (
    Action,
    CheckBroker,
    CheckInDoubt,
    Close,
    FanOut,
    FetchHistory,
    GoLive,
    OverflowPolicy,
    Publish,
    Send,
)
from ..core.auth import Tokens
from ..core.close_codes import AppCloseCode, CloseCode
from ..core.heartbeat import HeartbeatPolicy
from ..core.history import HistoryTooOld
from ..core.member import Member
from ..core.presence import PresencePolicy
from ..core.room import ChatRoom
from ..core.room_event import BrokerReset, EventKind, RoomEvent
from ..runtime.handles import ServerHandle, serve
from .peers import Peer, PeerClosed, WebsocketsPeer

__all__ = ["PUSHES_PER_TURN", "ChatServer"]

logger = logging.getLogger("wslab.chat")

#: Writes a fan-out makes before it lets the event loop run other work (accepting and
#: handshaking new connections, reading clients): 100 messages to 10,000 people are a
#: million writes, seconds of work that must not hold up a handshake past its timeout.
PUSHES_PER_TURN = 500

Listener = Callable[[RoomEvent], None]


class ChatServer:
    """A chat room served over WebSockets: :meth:`serve` it, or hand it connections.

    What it knows is its :attr:`room`'s: ``chat.room.users``, ``chat.room.stats``, ...

    Args:
        broker: carries room events between servers; an in-process one by default.
        room_name: the room this server's clients talk in.
        server_id: names this server in events (``via``), to show where messages passed.
        overflow: what happens to a client whose backlog exceeds ``max_backlog``.
        max_backlog: bytes allowed to wait for a client before ``overflow`` applies.
        send_buffer: if set, the kernel send buffer (SO_SNDBUF) of each connection, in
            bytes; a small one makes a slow client show up as backlog sooner.
        hello_timeout: seconds a new connection has to send its username.
        max_waiting: live events held for a client while it is sent its replay; past
            that, the client counts as too slow as well.
        max_users: refuse newcomers (close 1013, try again later) when this many are in.
        rate: ``(messages per second, burst)`` allowed per connection; more closes it
            with 1008. None for no limit.
        tokens: if set, a json hello must carry a token for its name (see
            :mod:`wslab.core.auth`); a plain-dialect client is then refused.
        heartbeat: if set, every ``interval`` json clients get ``{"type": "ping"}``, and a
            client not heard from for ``timeout`` is dropped (browsers cannot send
            protocol pings). Plain-dialect clients are left to the transport's keepalive.
        presence: when joins and leaves are coalesced and presence goes by counts
            (:class:`~wslab.core.presence.PresencePolicy`; past 50 people, one announcement
            each per 0.5 s tick, by default).
    """

    def __init__(
        self,
        *,
        broker: Broker | None = None,
        room_name: str = "lobby",
        server_id: str = "chat",
        overflow: OverflowPolicy | str = OverflowPolicy.DISCONNECT,
        max_backlog: int = 1 << 20,
        send_buffer: int | None = None,
        hello_timeout: float = 10.0,
        max_waiting: int = 10_000,
        max_users: int | None = None,
        rate: tuple[float, float] | None = None,
        tokens: Tokens | None = None,
        heartbeat: HeartbeatPolicy | None = None,
        presence: PresencePolicy | None = None,
    ) -> None:
        self.broker = broker if broker is not None else MemoryBroker()
        #: Every decision and what it is decided from: who is in, the transcript, limits, stats.
        self.room = ChatRoom(
            name=room_name,
            server_id=server_id,
            overflow=overflow,
            max_backlog=max_backlog,
            max_waiting=max_waiting,
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

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener`` with every room event this server delivers; returns an unsubscriber."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    # Lifecycle: serve() starts a websockets server; attach()/detach() bracket any server

    async def serve(
        self, *, name: str = "chat", host: str = "127.0.0.1", port: int = 0, **options: Any
    ) -> ServerHandle:
        """Start this chat server under ``name`` with :func:`wslab.serve`; stops with it.

        The connections' ``write_limit`` defaults to half of ``max_backlog``: a replay,
        which awaits each send, then never fills a buffer past the eviction threshold.
        The listen ``backlog`` defaults to the system's largest (asyncio's is 100): when a
        crowd connects at once, the kernel holds them until they are accepted instead of
        dropping their SYNs, which clients resend only after 1, 3, 7... seconds.
        """
        options.setdefault("write_limit", max(1024, self.room.max_backlog // 2))
        options.setdefault("backlog", socket.SOMAXCONN)
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
            # Where the subscription starts is where the room's picture starts (before any fan-out).
            self.room.subscribed(await self.broker.last_seq(self.room.name))
            self._tasks.append(asyncio.create_task(self._dispatch(subscription), name="chat-dispatch"))
            self._tasks.append(asyncio.create_task(self._presence_ticks(), name="chat-presence"))
            if self.room.heartbeat is not None:
                beat = self._beat(self.room.heartbeat)
                self._tasks.append(asyncio.create_task(beat, name="chat-heartbeat"))

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

    async def disconnect(
        self, name: str, *, code: int = AppCloseCode.TOO_SLOW, reason: str = "disconnected"
    ) -> bool:
        """Close ``name``'s connection on this server (a test's network failure, lesson 04).

        The default code, 4001, tells a client to reconnect and resume; 1008 would tell
        it to stay away. Returns False if nobody of that name is connected here. To send
        someone away for good, and tell them why, :meth:`kick` them.
        """
        actions = self.room.disconnect(name, code, reason)
        if actions is None:
            return False
        await self._carry_out(actions)
        return True

    # Moderation: published through the broker, so every server applies it (wslab.core.moderation)

    async def kick(self, name: str, *, reason: str = "") -> None:
        """Send ``name`` away, on whichever server they are: they read ``reason`` in an error
        reply, then their connection closes with 4003 (their client does not reconnect), and
        every server refuses that name for ``room.moderation.bar`` seconds. The room reads
        ``name was removed by the instructor``, without the reason.

        Raises :class:`~wslab.core.moderation.ModerationError` if nobody of that name is in.
        """
        await self._carry_out(self.room.moderate(EventKind.KICK, name, reason))

    async def mute(self, name: str) -> None:
        """``name`` stays and reads, but each message they send is answered ``error: muted``."""
        await self._carry_out(self.room.moderate(EventKind.MUTE, name))

    async def unmute(self, name: str) -> None:
        """Let ``name`` write again."""
        await self._carry_out(self.room.moderate(EventKind.UNMUTE, name))

    async def clear(self) -> None:
        """Remove the room's messages from every screen: pages, clients and views all start
        again from a ``clear`` event."""
        await self._carry_out(self.room.moderate(EventKind.CLEAR))

    # One connection: its hello, its messages, its end

    async def serve_websocket(self, connection: ServerConnection) -> None:
        """Serve one :mod:`websockets` connection (the handler :meth:`serve` registers)."""
        await self.serve_peer(WebsocketsPeer(connection))

    async def serve_peer(self, peer: Peer) -> None:
        """Serve one connection: hand the room its hello, each message, and its end."""
        first = await self._first_message(peer)
        if first is None:
            return
        try:
            await self._carry_out(self.room.hello(peer, first))
            async for message in peer:
                await self._carry_out(self.room.receive(peer, message))
        except PeerClosed:
            pass
        except BrokerUnavailable as exc:
            # Without the broker this server can neither number nor deliver messages: send
            # the client away to try again (1013). Closing, rather than answering an error,
            # keeps each client's messages in order: nothing after a failed one is published,
            # and the client resends them, in order, once it is back and live.
            logger.warning("%s: %s", peer.remote, exc)
            with contextlib.suppress(PeerClosed):
                await peer.close(CloseCode.TRY_AGAIN_LATER, "message broker unavailable; try again")
        finally:
            await self._carry_out(self.room.gone(peer))

    async def _first_message(self, peer: Peer) -> str | bytes | None:
        try:
            async with asyncio.timeout(self.hello_timeout):  # no extra task per newcomer, as wait_for makes
                return await peer.recv()
        except TimeoutError:
            await peer.close(CloseCode.POLICY_VIOLATION, "send your username first")
        except PeerClosed:
            pass
        return None

    # Carrying out the room's decisions

    async def _carry_out(self, actions: list[Action]) -> None:
        """Carry out ``actions`` in order, waiting for each; what they bring back goes first."""
        todo = deque(actions)
        while todo:
            todo.extendleft(reversed(await self._perform(todo.popleft())))

    async def _perform(self, action: Action) -> list[Action]:
        """Carry out ``action`` (in a connection's own task); returns the room's answer to it, if any."""
        match action:
            case Send(to):
                text = action.text()
                if text is not None:
                    await to.connection.send(text)
            case Publish(event):
                self.room.published(await self.broker.publish(event))
            case Close():
                await self._close(action)
            case FetchHistory(member, after):
                return await self._history(member, after)
            case GoLive(member):
                return self.room.go_live(member)
            case CheckBroker():
                if self._subscription is not None:
                    self._subscription.recheck()
            case CheckInDoubt(after):
                try:
                    kept = await self.broker.history_after(self.room.name, after)
                except HistoryTooOld:
                    kept = []
                return self.room.in_doubt_checked(kept)
        return []

    async def _history(self, member: Member, after: int | None) -> list[Action]:
        name = self.room.name
        last_seq = await self.broker.last_seq(name)
        try:
            history = [] if after is None else await self.broker.history_after(name, after)
        except HistoryTooOld as lost:
            return self.room.history_arrived(member, last_seq, lost)
        return self.room.history_arrived(member, last_seq, history)

    async def _close(self, action: Close) -> None:
        peer = action.member.connection
        if action.abort:
            logger.info("%s silent: dropped", action.member.name)
            peer.abort()
            return
        with contextlib.suppress(PeerClosed):
            await peer.close(action.code, action.reason)

    async def _push(self, plan: FanOut) -> None:
        """Push a fan-out, isolating every recipient; its other actions run in the background.

        Each text goes to its recipients in one call per :data:`PUSHES_PER_TURN` of them
        (websockets' ``broadcast()``), and every :data:`PUSHES_PER_TURN` writes the event
        loop turns once: the plan was decided at once, so the order of events per client
        stays the room's. The clients skipped for their backlog go back to the room
        (:meth:`ChatRoom.too_slow`), which decides what becomes of them.
        """
        slow: list[tuple[Member, int]] = []
        for delivery in plan.deliveries.values():
            to, start = delivery.to, 0
            while start < len(to):
                chunk = to[start : start + PUSHES_PER_TURN - self._pushed]
                start += len(chunk)
                slow += self._push_to(chunk, delivery.text, delivery.data)
                self._pushed += len(chunk)
                if self._pushed >= PUSHES_PER_TURN:
                    self._pushed = 0
                    await asyncio.sleep(0)
        actions = (plan.actions + self.room.too_slow(plan, slow)) if slow else plan.actions
        for action in actions:
            self._in_background(self._carry_out_quietly([action]))

    def _push_to(self, members: list[Member], text: str, data: bytes) -> list[tuple[Member, int]]:
        """Write to ``members``; returns those skipped for their backlog, with its size."""
        peers = [member.connection for member in members]
        kinds = {type(peer) for peer in peers}  # one, unless servers of two kinds serve this chat
        slow: list[tuple[Peer, int]] = []
        for kind in kinds:
            same = peers if len(kinds) == 1 else [peer for peer in peers if type(peer) is kind]
            pushed = kind.push_all(same, text, data, max_backlog=self.room.max_backlog)
            for peer in pushed.failed:  # one client's failure never touches another's
                logger.warning("sending to %s failed: dropping it", peer.remote)
                with contextlib.suppress(Exception):
                    peer.abort()
            slow += pushed.slow
        if not slow:
            return []
        member_of = {member.connection: member for member in members}
        return [(member_of[peer], waiting) for peer, waiting in slow]

    async def _carry_out_quietly(self, actions: list[Action]) -> None:
        # A leave the broker never got: a broker outage must not hide the disconnect.
        with contextlib.suppress(PeerClosed, BrokerUnavailable, OSError):
            await self._carry_out(actions)

    def _in_background(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # What the broker delivers, and the timers

    async def _dispatch(self, subscription: Subscription) -> None:
        async for item in subscription:
            try:
                if isinstance(item, BrokerReset):
                    logger.warning(
                        "room %s reset by its broker: new numbering after %s", item.room, item.last_seq
                    )
                    await self._push(self.room.reset(item))
                    continue
                await self._push(self.room.fan_out(item))
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
            await self._push(self.room.heartbeat_tick(self.room.clock(), time.time()))

    async def _presence_ticks(self) -> None:
        """A big room's joins and leaves, announced once per tick (a small room's never wait)."""
        interval = self.room.presence.policy.tick
        while True:
            await asyncio.sleep(interval)
            for action in self.room.tick(self.room.clock()):
                await self._carry_out_quietly([action])
