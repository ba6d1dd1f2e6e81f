"""The fault proxy's connections: two sockets and a pipe each way, sharing one :class:`Hub`.

Everything here works on bytes, below WebSockets; :mod:`wslab.faults.proxy` is the handle
that a lesson holds and that changes the hub's settings.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from enum import Enum
from typing import Any

from ..core import addresses
from ..core.connection_log import LogKind
from ..runtime.event_log import EventLog
from .stats import Flow

__all__ = ["FaultSettings", "Hub", "Link", "abort_socket", "close_socket", "reset_socket"]

logger = logging.getLogger("wslab.faults")

#: SO_LINGER with a zero timeout: close() then sends RST instead of FIN.
_LINGER_RESET = struct.pack("ii", 1, 0)


class _End(Enum):
    """How a sender's stream ended: queued behind its data, so a stall holds it too."""

    EOF = "eof"  # the sender closed cleanly (FIN): pass on a FIN
    RESET = "reset"  # the sender's socket failed (RST, error): reset the receiver


@dataclass(slots=True)
class FaultSettings:
    """The fault settings of one direction, shared by all connections."""

    latency: float = 0.0
    stalled: bool = False


def close_socket(transport: asyncio.Transport) -> None:
    """Close ``transport`` with a FIN, once its queued writes are out."""
    transport.close()


def abort_socket(transport: asyncio.Transport) -> None:
    """Close ``transport`` now, dropping queued writes."""
    transport.abort()


def reset_socket(transport: asyncio.Transport) -> None:
    """Close ``transport`` with an RST: what a peer sees when a middlebox crashes."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
    transport.abort()


class _Side(asyncio.Protocol):
    """One socket of a proxied connection: the client's, or the one to the server."""

    def __init__(self, link: Link, role: str) -> None:
        self.link = link
        self.role = role  # "client" or "server": who is at the other end of this socket
        self.transport: asyncio.Transport | None = None
        self.writable = True
        self.lost = False
        self.outgoing: _Pipe  # the bytes this socket reads
        self.incoming: _Pipe  # the bytes this socket writes

    @property
    def ready(self) -> bool:
        return self.transport is not None and self.writable and not self.lost

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.link.hub.socket_opened(self)
        self.link.side_made(self)

    def data_received(self, data: bytes) -> None:
        self.link.last_active = self.link.hub.loop.time()
        self.outgoing.feed(data)

    def eof_received(self) -> bool:
        self.outgoing.feed_end(_End.EOF)
        return True  # keep the socket: the other direction may still carry data

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.link.hub.socket_closed(self)
        self.link.side_lost(self, exc)

    def pause_writing(self) -> None:
        self.writable = False

    def resume_writing(self) -> None:
        self.writable = True
        self.incoming.poke()

    def stop_reading(self) -> None:
        if self.transport is not None and not self.lost:
            self.transport.pause_reading()

    def start_reading(self) -> None:
        if self.transport is not None and not self.lost:
            self.transport.resume_reading()


class _Pipe:
    """One direction of one connection: a queue of chunks and the task that delivers them.

    Each chunk is stamped with its arrival time and leaves at ``arrival + latency`` (the
    latency in force when it leaves), measured with ``loop.time()``: a deadline, not a
    sleep per chunk, so a burst of chunks all arrive ``latency`` late, not ``n * latency``
    late. The queue is FIFO, so order is preserved whatever the latency does.
    """

    def __init__(self, link: Link, direction: Flow, source: _Side, dest: _Side) -> None:
        self.link = link
        self.hub = link.hub
        self.direction = direction
        self.fault = link.hub.faults[direction]
        self.source = source
        self.dest = dest
        self.queue: deque[tuple[float, bytes | _End]] = deque()
        self.held = 0
        self.paused = False  # we stopped reading from the source
        self.ended = False  # the end of the stream is queued
        self.done = False  # nothing more to deliver, ever
        self._wakeup: asyncio.Future[None] | None = None
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = self.hub.spawn(self._run(), f"{self.hub.name} {self.direction}")

    def feed(self, data: bytes) -> None:
        if self.ended or self.done:
            return
        self.queue.append((self.hub.loop.time(), data))
        self.held += len(data)
        if self.held >= self.hub.buffer_limit and not self.paused:
            self.paused = True
            self.source.stop_reading()
        self.poke()

    def feed_end(self, end: _End) -> None:
        if self.ended or self.done:
            return
        self.ended = True
        self.queue.append((self.hub.loop.time(), end))
        self.poke()

    def poke(self) -> None:
        """Something changed (data, settings, receiver's buffer): look at the queue again."""
        if self._wakeup is not None and not self._wakeup.done():
            self._wakeup.set_result(None)

    def abandon(self) -> None:
        """Stop for good: the receiver is gone or the connection is being torn down."""
        if self.done:
            return
        self.done = True
        self.hub.dropped[self.direction] += self.held
        self.held = 0
        self.queue.clear()
        if self.task is not None and self.task is not asyncio.current_task():
            self.task.cancel()

    async def _run(self) -> None:
        try:
            await self._forward()
        except Exception as exc:  # a bug here must not leave a connection half alive
            logger.error("%s: forwarding %s failed: %r", self.hub.name, self.direction, exc, exc_info=True)
            self.link.teardown(reset_socket, how="proxy error")

    async def _forward(self) -> None:
        loop = self.hub.loop
        while not self.done:
            while True:
                if self.queue and not self.fault.stalled and self.dest.ready:
                    arrived, item = self.queue[0]
                    due = arrived + self.fault.latency
                    if due <= loop.time():
                        self.queue.popleft()
                        break
                    await self._sleep(due)
                else:
                    await self._sleep(None)
            if isinstance(item, bytes):
                self._deliver(item)
            else:
                self.done = True
                self.link.end_delivered(self, item)

    def _deliver(self, data: bytes) -> None:
        assert self.dest.transport is not None
        self.held -= len(data)
        self.hub.forwarded[self.direction] += len(data)
        self.dest.transport.write(data)  # may call dest.pause_writing(): then we wait
        if self.paused and self.held <= self.hub.buffer_limit // 2:
            self.paused = False
            self.source.start_reading()

    async def _sleep(self, until: float | None) -> None:
        loop = self.hub.loop
        self._wakeup = loop.create_future()
        timer = loop.call_at(until, self.poke) if until is not None else None
        try:
            await self._wakeup
        finally:
            self._wakeup = None
            if timer is not None:
                timer.cancel()


class Link:
    """One client connection through the proxy: two sockets and a pipe each way."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.client = _Side(self, "client")
        self.server = _Side(self, "server")
        self.up = _Pipe(self, Flow.CLIENT_TO_SERVER, self.client, self.server)
        self.down = _Pipe(self, Flow.SERVER_TO_CLIENT, self.server, self.client)
        self.client.outgoing = self.server.incoming = self.up
        self.server.outgoing = self.client.incoming = self.down
        self.peer = "unknown"
        self.closing = False
        self.how = "closed"
        self.connector: asyncio.Task[None] | None = None
        #: When bytes last arrived from either end (``loop.time()``): the idle timeout's clock.
        self.last_active = hub.loop.time()
        self._idle_timer: asyncio.TimerHandle | None = None

    @property
    def sides(self) -> tuple[_Side, _Side]:
        return (self.client, self.server)

    def side_made(self, side: _Side) -> None:
        assert side.transport is not None
        if self.closing:  # the server's socket connected after a cut or a stop
            side.transport.abort()
        elif side is self.client:
            host, port = (side.transport.get_extra_info("peername") or ("unknown", 0))[:2]
            self.peer = addresses.host_port(host, port)
            if not self.hub.admit(self):
                return
            self.up.start()
            self.down.start()
            self.watch_idle()
            self.connector = self.hub.spawn(self._connect(), f"{self.hub.name} connect")
        else:
            self.up.poke()

    async def _connect(self) -> None:
        """Open the connection to the server; the client's first bytes wait in ``up``."""
        host, port = self.hub.target
        try:
            await self.hub.loop.create_connection(lambda: self.server, host, port)
        except OSError as exc:
            # Like a load balancer with no backend: the client's connection is reset.
            self.hub.note(f"cannot reach {addresses.host_port(host, port)} for {self.peer}: {exc}")
            self.teardown(reset_socket, how="upstream unreachable")

    def side_lost(self, side: _Side, exc: Exception | None) -> None:
        if self.closing:
            return
        # What the lost socket had sent still goes out (after any stall), then its end;
        # whatever was on its way to it has nowhere to go.
        side.outgoing.feed_end(_End.RESET if exc is not None else _End.EOF)
        side.incoming.abandon()
        if exc is not None:
            self.how = f"reset by {side.role}"
        if self.up.done and self.down.done:  # both ends went away during a stall
            self.teardown(close_socket, how=self.how)

    def end_delivered(self, pipe: _Pipe, end: _End) -> None:
        transport = pipe.dest.transport
        assert transport is not None
        if end is _End.RESET:
            self.teardown(reset_socket, how=self.how)
            return
        if transport.can_write_eof():
            transport.write_eof()
        if self.up.done and self.down.done:
            self.teardown(close_socket, how=self.how)

    def teardown(self, close: Callable[[asyncio.Transport], None], *, how: str) -> None:
        """Drop what is held and close both sockets with ``close``: one of the ``*_socket`` functions."""
        if self.closing:
            return
        self.closing = True
        self.how = how
        if self.connector is not None and self.connector is not asyncio.current_task():
            self.connector.cancel()
        if self._idle_timer is not None:
            self._idle_timer.cancel()
        for pipe in (self.up, self.down):
            pipe.abandon()
        for side in self.sides:
            if side.transport is not None and not side.lost:
                close(side.transport)
        self.hub.forget(self)

    def watch_idle(self) -> None:
        """(Re)arm the idle timer for the hub's current idle timeout; none means never."""
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
        if self.hub.idle_timeout is not None and not self.closing:
            due = self.last_active + self.hub.idle_timeout
            self._idle_timer = self.hub.loop.call_at(due, self._idle_check)

    def _idle_check(self) -> None:
        """Like nginx's ``proxy_read_timeout`` or a load balancer's idle timeout: after that
        long with no byte in either direction, close both connections (FIN, no close frame)."""
        self._idle_timer = None
        timeout = self.hub.idle_timeout
        if timeout is None or self.closing:
            return
        if self.hub.loop.time() - self.last_active < timeout:  # bytes came meanwhile
            self.watch_idle()
            return
        self.hub.idle_closed += 1
        self.hub.note(f"closed {self.peer}: idle for {timeout:g} s")
        self.teardown(close_socket, how="idle timeout")


class Hub:
    """What every connection of one proxy shares: fault settings, counters, open sockets, tasks.

    :class:`~wslab.faults.FaultProxy` is the handle a lesson holds; its connections
    (:class:`Link`) work through this object, never through the handle.
    """

    def __init__(
        self, name: str, target: tuple[str, int], *, buffer_limit: int, log: EventLog | None, where: str
    ) -> None:
        self.name = name
        self.target = target
        self.buffer_limit = buffer_limit
        self.log = log
        self.where = where  # the proxy's own host:port, for its notes
        self.loop = asyncio.get_running_loop()
        self.faults = {d: FaultSettings() for d in Flow.BOTH.flows}
        self.idle_timeout: float | None = None
        self.links: set[Link] = set()
        self.tasks: set[asyncio.Task[None]] = set()
        self.forwarded = dict.fromkeys(Flow.BOTH.flows, 0)
        self.dropped = dict.fromkeys(Flow.BOTH.flows, 0)
        self.accepted = 0
        self.cut = 0
        self.idle_closed = 0
        self.stopped = False
        self.open_sides: set[_Side] = set()  # sockets not yet closed, even of forgotten links
        self.all_closed = asyncio.Event()
        self.all_closed.set()

    def spawn(self, coroutine: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        task = self.loop.create_task(coroutine, name=name)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    def admit(self, link: Link) -> bool:
        if self.stopped:
            link.teardown(reset_socket, how="proxy stopped")
            return False
        self.links.add(link)
        self.accepted += 1
        if self.log is not None:
            self.log.record(LogKind.CONNECT, link.peer)
        return True

    def socket_opened(self, side: _Side) -> None:
        self.open_sides.add(side)
        self.all_closed.clear()

    def socket_closed(self, side: _Side) -> None:
        self.open_sides.discard(side)
        if not self.open_sides:
            self.all_closed.set()

    def forget(self, link: Link) -> None:
        if link in self.links:
            self.links.discard(link)
            if self.log is not None:
                self.log.record(LogKind.DISCONNECT, link.peer, text=link.how)

    def poke_all(self) -> None:
        for link in self.links:
            link.up.poke()
            link.down.poke()

    def note(self, text: str) -> None:
        logger.debug("%s: %s", self.name, text)
        if self.log is not None:
            self.log.record(LogKind.NOTE, self.where, text=text)
