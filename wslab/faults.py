"""A TCP proxy that injects network faults between a client and a server on loopback.

On loopback nothing ever goes wrong, so lesson 05 puts this proxy in the path to show
what a real network does to a WebSocket connection: it can add latency, stall (read and
hold every byte without closing anything, like a hung middlebox whose TCP still
acknowledges; unlike a NAT gateway that forgot the mapping, where bytes go
unacknowledged) and cut (reset both ends, like a crashed middlebox)::

    server = await wslab.serve(echo, ping_interval=None)
    proxy = await FaultProxy.start(server.host, server.port)
    async with connect(proxy.url) as ws:  # the client talks to the proxy
        proxy.stall()                     # ws stays OPEN, its messages pile up
        proxy.resume()                    # the held bytes go out, in order

The proxy works on bytes, not frames: it knows nothing about WebSockets, exactly like
the routers and gateways it imitates. Fault settings belong to the proxy, not to one
connection, so a change applies at once to every current connection and to every new
one. It lives in the :mod:`wslab.runtime` registry like the lesson servers: running the
cell again restarts it, and :func:`wslab.stop_all` stops it.
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
from enum import Enum, StrEnum
from typing import Any

from . import net
from .events import EventLog, LogKind
from .runtime import ServerHandle, register, release

__all__ = ["DEFAULT_BUFFER_LIMIT", "FaultProxy", "Flow", "FlowStats", "Mode", "ProxyStats"]

logger = logging.getLogger("wslab.faults")

#: How many bytes a connection may hold in one direction before the proxy stops reading
#: from the sender. Enough for any lesson's messages; small enough that a client writing
#: into a stall forever cannot eat the kernel's memory.
DEFAULT_BUFFER_LIMIT = 4 * 1024 * 1024

#: SO_LINGER with a zero timeout: close() then sends RST instead of FIN.
_LINGER_RESET = struct.pack("ii", 1, 0)


class Flow(StrEnum):
    """Which way the bytes a fault applies to travel.

    Not :class:`wslab.events.LogKind`, which says what an event log line records:
    import this one as ``faults.Flow`` where both are in use.
    """

    CLIENT_TO_SERVER = "client->server"
    SERVER_TO_CLIENT = "server->client"
    BOTH = "both"

    @property
    def flows(self) -> tuple[Flow, ...]:
        """The one-way directions this value covers."""
        if self is Flow.BOTH:
            return (Flow.CLIENT_TO_SERVER, Flow.SERVER_TO_CLIENT)
        return (self,)


class Mode(StrEnum):
    """What the proxy currently does to the traffic, at a glance.

    STALLED wins over DELAYED: a stall in either direction makes the proxy STALLED (see
    :attr:`ProxyStats.client_to_server` and ``server_to_client`` for which one).
    """

    FORWARD = "forward"
    DELAYED = "delayed"
    STALLED = "stalled"
    STOPPED = "stopped"


@dataclass(frozen=True, slots=True)
class FlowStats:
    """One direction of traffic through the proxy.

    ``forwarded`` and ``dropped`` count since the proxy started, over every connection;
    ``held`` and ``paused`` describe the connections open now.
    """

    forwarded: int  #: bytes delivered to the receiving side
    held: int  #: bytes read from the sender and not yet delivered (stall, latency, slow reader)
    dropped: int  #: bytes read but never delivered: cut, stop, or the receiver went away
    paused: int  #: connections whose sender the proxy stopped reading: held buffer full
    latency: float  #: seconds added to each chunk
    stalled: bool


@dataclass(frozen=True, slots=True)
class ProxyStats:
    """A snapshot of the proxy's counters (read ``proxy.stats`` again for fresh numbers)."""

    client_to_server: FlowStats
    server_to_client: FlowStats
    connections: int  #: open now
    accepted: int  #: since the proxy started
    cut: int  #: connections reset by :meth:`FaultProxy.cut`

    def flow(self, direction: Flow) -> FlowStats:
        if direction is Flow.BOTH:
            raise ValueError("a flow has one direction")
        return self.client_to_server if direction is Flow.CLIENT_TO_SERVER else self.server_to_client


class _End(Enum):
    """How a sender's stream ended: queued behind its data, so a stall holds it too."""

    EOF = "eof"  # the sender closed cleanly (FIN): pass on a FIN
    RESET = "reset"  # the sender's socket failed (RST, error): reset the receiver


@dataclass(slots=True)
class _Fault:
    """The fault settings of one direction, shared by all connections."""

    latency: float = 0.0
    stalled: bool = False


def _close(transport: asyncio.Transport) -> None:
    """Close ``transport`` with a FIN, once its queued writes are out."""
    transport.close()


def _abort(transport: asyncio.Transport) -> None:
    """Close ``transport`` now, dropping queued writes."""
    transport.abort()


def _reset(transport: asyncio.Transport) -> None:
    """Close ``transport`` with an RST: what a peer sees when a middlebox crashes."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
    transport.abort()


class _Side(asyncio.Protocol):
    """One socket of a proxied connection: the client's, or the one to the server."""

    def __init__(self, link: _Link, role: str) -> None:
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
        self.link.proxy._sockets_opened(self)
        self.link.side_made(self)

    def data_received(self, data: bytes) -> None:
        self.outgoing.feed(data)

    def eof_received(self) -> bool:
        self.outgoing.feed_end(_End.EOF)
        return True  # keep the socket: the other direction may still carry data

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.link.proxy._sockets_closed(self)
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

    def __init__(self, link: _Link, direction: Flow, source: _Side, dest: _Side) -> None:
        self.link = link
        self.proxy = link.proxy
        self.direction = direction
        self.fault = link.proxy._faults[direction]
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
        self.task = self.proxy._spawn(self._run(), f"{self.proxy.name} {self.direction}")

    def feed(self, data: bytes) -> None:
        if self.ended or self.done:
            return
        self.queue.append((self.proxy._loop.time(), data))
        self.held += len(data)
        if self.held >= self.proxy.buffer_limit and not self.paused:
            self.paused = True
            self.source.stop_reading()
        self.poke()

    def feed_end(self, end: _End) -> None:
        if self.ended or self.done:
            return
        self.ended = True
        self.queue.append((self.proxy._loop.time(), end))
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
        self.proxy._dropped[self.direction] += self.held
        self.held = 0
        self.queue.clear()
        if self.task is not None and self.task is not asyncio.current_task():
            self.task.cancel()

    async def _run(self) -> None:
        try:
            await self._forward()
        except Exception as exc:  # a bug here must not leave a connection half alive
            logger.error("%s: forwarding %s failed: %r", self.proxy.name, self.direction, exc, exc_info=True)
            self.link.teardown(_reset, how="proxy error")

    async def _forward(self) -> None:
        loop = self.proxy._loop
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
        self.proxy._forwarded[self.direction] += len(data)
        self.dest.transport.write(data)  # may call dest.pause_writing(): then we wait
        if self.paused and self.held <= self.proxy.buffer_limit // 2:
            self.paused = False
            self.source.start_reading()

    async def _sleep(self, until: float | None) -> None:
        loop = self.proxy._loop
        self._wakeup = loop.create_future()
        timer = loop.call_at(until, self.poke) if until is not None else None
        try:
            await self._wakeup
        finally:
            self._wakeup = None
            if timer is not None:
                timer.cancel()


class _Link:
    """One client connection through the proxy: two sockets and a pipe each way."""

    def __init__(self, proxy: FaultProxy) -> None:
        self.proxy = proxy
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

    @property
    def sides(self) -> tuple[_Side, _Side]:
        return (self.client, self.server)

    def side_made(self, side: _Side) -> None:
        assert side.transport is not None
        if self.closing:  # the server's socket connected after a cut or a stop
            side.transport.abort()
        elif side is self.client:
            host, port = (side.transport.get_extra_info("peername") or ("unknown", 0))[:2]
            self.peer = net.host_port(host, port)
            if not self.proxy._accepted(self):
                return
            self.up.start()
            self.down.start()
            self.connector = self.proxy._spawn(self._connect(), f"{self.proxy.name} connect")
        else:
            self.up.poke()

    async def _connect(self) -> None:
        """Open the connection to the server; the client's first bytes wait in ``up``."""
        host, port = self.proxy.target
        try:
            await self.proxy._loop.create_connection(lambda: self.server, host, port)
        except OSError as exc:
            # Like a load balancer with no backend: the client's connection is reset.
            self.proxy._note(f"cannot reach {net.host_port(host, port)} for {self.peer}: {exc}")
            self.teardown(_reset, how="upstream unreachable")

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
            self.teardown(_close, how=self.how)

    def end_delivered(self, pipe: _Pipe, end: _End) -> None:
        transport = pipe.dest.transport
        assert transport is not None
        if end is _End.RESET:
            self.teardown(_reset, how=self.how)
            return
        if transport.can_write_eof():
            transport.write_eof()
        if self.up.done and self.down.done:
            self.teardown(_close, how=self.how)

    def teardown(self, close: Callable[[asyncio.Transport], None], *, how: str) -> None:
        """Drop what is held and ``close`` both sockets: ``_reset``, ``abort`` or ``close``."""
        if self.closing:
            return
        self.closing = True
        self.how = how
        if self.connector is not None and self.connector is not asyncio.current_task():
            self.connector.cancel()
        for pipe in (self.up, self.down):
            pipe.abandon()
        for side in self.sides:
            if side.transport is not None and not side.lost:
                close(side.transport)
        self.proxy._forget(self)


class FaultProxy(ServerHandle):
    """A TCP proxy on loopback that can delay, stall and cut the connections through it.

    Start it with :meth:`start`; point the client at :attr:`url` (or :meth:`url_for`).

    Every fault applies to all connections, current and new:

    * :meth:`set_latency` delays each chunk of bytes; order is preserved.
    * :meth:`stall` stops delivering without closing anything. The proxy keeps reading
      into a held buffer, so the sender's writes succeed and are acknowledged, as they
      would be by a hung middlebox (a dead NAT mapping acknowledges nothing); once
      ``buffer_limit`` bytes are held for one connection and direction (4 MiB by
      default) it stops reading from that sender, whose kernel buffers and then
      its writes fill up. A connection accepted while stalled is accepted and connected
      to the server as usual (the server sees a TCP connection), but its bytes are held
      like everyone's: a WebSocket opening handshake then waits, and times out.
      A FIN or a reset from a stalled sender is held behind its bytes: the other side
      learns nothing until :meth:`resume` or :meth:`cut`.
    * :meth:`cut` resets both sockets of every connection (RST), like a crashed middlebox.
    * :meth:`resume` goes back to plain forwarding; held bytes go out in order.
    """

    scheme = "ws"

    def __init__(
        self,
        name: str,
        server: asyncio.Server,
        target: tuple[str, int],
        *,
        buffer_limit: int,
        log: EventLog | None = None,
    ) -> None:
        super().__init__(name, server.sockets[0].getsockname(), log=log)
        self._server = server
        self._loop = asyncio.get_running_loop()
        self.target = target
        self.buffer_limit = buffer_limit
        self._faults = {d: _Fault() for d in Flow.BOTH.flows}
        self._links: set[_Link] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._forwarded = dict.fromkeys(Flow.BOTH.flows, 0)
        self._dropped = dict.fromkeys(Flow.BOTH.flows, 0)
        self._accepted_total = 0
        self._cut_total = 0
        self._stopped = False
        self._open_sides: set[_Side] = set()  # sockets not yet closed, even of forgotten links
        self._idle = asyncio.Event()
        self._idle.set()

    @classmethod
    async def start(
        cls,
        target_host: str,
        target_port: int,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        name: str = "proxy",
        buffer_limit: int = DEFAULT_BUFFER_LIMIT,
        log: EventLog | None = None,
    ) -> FaultProxy:
        """Listen on ``host:port`` and forward every connection to ``target_host:target_port``.

        Args:
            target_host: the server's address; each client connection opens one to it.
            target_port: the server's port.
            host: interface to bind; the default serves this machine only.
            port: 0 lets the system pick a free port (read it from ``proxy.port``).
            name: registry name: a server or proxy of this process already under this
                name, or on this host and port, is stopped first.
            buffer_limit: bytes one connection may hold in one direction before the proxy
                stops reading from the sender (see :meth:`stall`).
            log: an :class:`EventLog` that records connects, disconnects and each fault.
        """
        if buffer_limit < 1:
            raise ValueError("buffer_limit must be at least 1 byte")
        await release(name, host, port)
        loop = asyncio.get_running_loop()
        proxy: FaultProxy | None = None

        def accept() -> asyncio.Protocol:
            assert proxy is not None
            return _Link(proxy).client

        # start_serving=False: no connection may arrive before the handle exists.
        server = await loop.create_server(accept, host, port, start_serving=False)
        proxy = cls(name, server, (target_host, target_port), buffer_limit=buffer_limit, log=log)
        await server.start_serving()
        register(proxy)
        return proxy

    # --- what a lesson reads ------------------------------------------------------------

    def url_for(self, path: str = "/", *, scheme: str = "ws") -> str:
        """The URL a client uses to reach the target through the proxy."""
        return net.url(scheme, self.host, self.port, "/" + path.lstrip("/"))

    @property
    def connections(self) -> int:
        """Client connections open through the proxy right now."""
        return len(self._links)

    @property
    def serving(self) -> bool:
        return self._server.is_serving()

    @property
    def mode(self) -> Mode:
        faults = self._faults.values()
        if self._stopped:
            return Mode.STOPPED
        if any(f.stalled for f in faults):
            return Mode.STALLED
        if any(f.latency for f in faults):
            return Mode.DELAYED
        return Mode.FORWARD

    @property
    def stats(self) -> ProxyStats:
        def flow(direction: Flow) -> FlowStats:
            pipes = [link.up if direction is Flow.CLIENT_TO_SERVER else link.down for link in self._links]
            fault = self._faults[direction]
            return FlowStats(
                forwarded=self._forwarded[direction],
                held=sum(p.held for p in pipes),
                dropped=self._dropped[direction],
                paused=sum(p.paused for p in pipes),
                latency=fault.latency,
                stalled=fault.stalled,
            )

        return ProxyStats(
            client_to_server=flow(Flow.CLIENT_TO_SERVER),
            server_to_client=flow(Flow.SERVER_TO_CLIENT),
            connections=self.connections,
            accepted=self._accepted_total,
            cut=self._cut_total,
        )

    # --- faults ---------------------------------------------------------------------------

    def set_latency(self, seconds: float, *, direction: Flow = Flow.BOTH) -> None:
        """Deliver each chunk ``seconds`` after it arrived, in ``direction``.

        Applies to bytes already waiting too: raising the latency holds them longer,
        lowering it lets them go sooner. A round trip through the proxy gains twice the
        latency when both directions are delayed.
        """
        if seconds < 0:
            raise ValueError("latency cannot be negative")
        for flow in Flow(direction).flows:
            self._faults[flow].latency = float(seconds)
        self._note(f"latency {seconds:g} s {direction}")
        self._poke_all()

    def stall(self, *, direction: Flow = Flow.BOTH) -> None:
        """Stop delivering bytes in ``direction`` without closing any socket.

        Both ends keep an open connection and see silence: only a heartbeat (a ping that
        gets no pong) can tell this from an idle peer. The proxy holds what it reads, up
        to ``buffer_limit`` bytes per connection and direction, then stops reading.
        Stalls add up: stalling one direction and then the other stalls both.
        """
        for flow in Flow(direction).flows:
            self._faults[flow].stalled = True
        self._note(f"stalled {direction}")
        self._poke_all()

    def resume(self, *, direction: Flow = Flow.BOTH) -> None:
        """Forward normally again in ``direction``: no stall, no latency.

        Held bytes go out at once, in order, on the same connections, unless those
        connections ended meanwhile.
        """
        for flow in Flow(direction).flows:
            self._faults[flow].stalled = False
            self._faults[flow].latency = 0.0
        self._note(f"resumed {direction}")
        self._poke_all()

    def cut(self) -> int:
        """Reset both sockets of every current connection; returns how many were cut.

        Each end gets an RST (``ConnectionResetError``; a WebSocket closes with 1006), and
        held bytes are dropped. New connections are accepted and treated like the others:
        a cut does not change the mode.
        """
        links = list(self._links)
        for link in links:
            link.teardown(_reset, how="cut by proxy")
        self._cut_total += len(links)
        self._note(f"cut {len(links)} connection(s)")
        return len(links)

    # --- the registry's side --------------------------------------------------------------

    async def _close(self, code: int, reason: str) -> None:
        """Stop listening and close every connection at once (TCP has no close code)."""
        self._stopped = True
        self._server.close()
        # abort(), not close(): a peer that does not read must not keep a socket open
        # while its unsent bytes wait. Each end sees the connection end (FIN, or RST if
        # it had sent bytes the proxy never read).
        for link in list(self._links):
            link.teardown(_abort, how="proxy stopped")
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._server.wait_closed()
        # abort() closes each socket in a callback soon after: wait for them all.
        try:
            await asyncio.wait_for(self._idle.wait(), 5)
        except TimeoutError:  # pragma: no cover - abort() always reports connection_lost
            logger.warning("%s: %d socket(s) still open after stop", self.name, len(self._open_sides))

    def __repr__(self) -> str:
        route = f"{net.host_port(self.host, self.port)} -> {net.host_port(*self.target)}"
        return f"<{self.name} proxy {self.mode} {route}, {self.connections} connection(s)>"

    # --- internals --------------------------------------------------------------------------

    def _spawn(self, coroutine: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        task = self._loop.create_task(coroutine, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _accepted(self, link: _Link) -> bool:
        if self._stopped:
            link.teardown(_reset, how="proxy stopped")
            return False
        self._links.add(link)
        self._accepted_total += 1
        if self.log is not None:
            self.log.record(LogKind.CONNECT, link.peer)
        return True

    def _sockets_opened(self, side: _Side) -> None:
        self._open_sides.add(side)
        self._idle.clear()

    def _sockets_closed(self, side: _Side) -> None:
        self._open_sides.discard(side)
        if not self._open_sides:
            self._idle.set()

    def _forget(self, link: _Link) -> None:
        if link in self._links:
            self._links.discard(link)
            if self.log is not None:
                self.log.record(LogKind.DISCONNECT, link.peer, text=link.how)

    def _poke_all(self) -> None:
        for link in self._links:
            link.up.poke()
            link.down.poke()

    def _note(self, text: str) -> None:
        logger.debug("%s: %s", self.name, text)
        if self.log is not None:
            self.log.record(LogKind.NOTE, net.host_port(self.host, self.port), text=text)
