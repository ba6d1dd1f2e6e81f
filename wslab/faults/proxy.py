"""The fault proxy's handle: where it listens, what it does now, and the faults to inject."""

from __future__ import annotations

import asyncio
import logging

from ..core import addresses
from ..runtime.event_log import EventLog
from ..runtime.handles import ServerHandle, register, release
from .links import Hub, Link, abort_socket, reset_socket
from .stats import Flow, FlowStats, Mode, ProxyStats

__all__ = ["DEFAULT_BUFFER_LIMIT", "FaultProxy"]

logger = logging.getLogger("wslab.faults")

#: How many bytes a connection may hold in one direction before the proxy stops reading
#: from the sender. Enough for any lesson's messages; small enough that a client writing
#: into a stall forever cannot eat the kernel's memory.
DEFAULT_BUFFER_LIMIT = 4 * 1024 * 1024


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

    And, like every reverse proxy and load balancer, it can close connections that stay
    quiet too long: :meth:`set_idle_timeout` (or ``idle_timeout=`` at start).
    """

    scheme = "ws"

    def __init__(self, name: str, server: asyncio.Server, hub: Hub, *, log: EventLog | None = None) -> None:
        super().__init__(name, server.sockets[0].getsockname(), log=log)
        self._server = server
        self._hub = hub

    @property
    def target(self) -> tuple[str, int]:
        """The server's ``(host, port)``: where each client connection is forwarded."""
        return self._hub.target

    @property
    def buffer_limit(self) -> int:
        return self._hub.buffer_limit

    @property
    def idle_timeout(self) -> float | None:
        """Seconds a connection may stay silent before the proxy closes it; None: never."""
        return self._hub.idle_timeout

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
        idle_timeout: float | None = None,
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
            idle_timeout: close a connection after this many seconds without a byte in
                either direction (see :meth:`set_idle_timeout`); None never does.
            log: an :class:`EventLog` that records connects, disconnects and each fault.
        """
        if buffer_limit < 1:
            raise ValueError("buffer_limit must be at least 1 byte")
        await release(name, host, port)
        loop = asyncio.get_running_loop()
        hub: Hub | None = None

        def accept() -> asyncio.Protocol:
            assert hub is not None
            return Link(hub).client

        # start_serving=False: no connection may arrive before the hub exists.
        server = await loop.create_server(accept, host, port, start_serving=False)
        where = addresses.host_port(*server.sockets[0].getsockname()[:2])
        target = (target_host, target_port)
        hub = Hub(name, target, buffer_limit=buffer_limit, log=log, where=where)
        proxy = cls(name, server, hub, log=log)
        if idle_timeout is not None:
            proxy.set_idle_timeout(idle_timeout)
        await server.start_serving()
        register(proxy)
        return proxy

    # --- what a lesson reads ------------------------------------------------------------

    def url_for(self, path: str = "/", *, scheme: str = "ws") -> str:
        """The URL a client uses to reach the target through the proxy."""
        return addresses.url(scheme, self.host, self.port, "/" + path.lstrip("/"))

    @property
    def connections(self) -> int:
        """Client connections open through the proxy right now."""
        return len(self._hub.links)

    @property
    def serving(self) -> bool:
        return self._server.is_serving()

    @property
    def mode(self) -> Mode:
        faults = self._hub.faults.values()
        if self._hub.stopped:
            return Mode.STOPPED
        if any(f.stalled for f in faults):
            return Mode.STALLED
        if any(f.latency for f in faults):
            return Mode.DELAYED
        return Mode.FORWARD

    @property
    def stats(self) -> ProxyStats:
        def flow(direction: Flow) -> FlowStats:
            pipes = [link.up if direction is Flow.CLIENT_TO_SERVER else link.down for link in self._hub.links]
            fault = self._hub.faults[direction]
            return FlowStats(
                forwarded=self._hub.forwarded[direction],
                held=sum(p.held for p in pipes),
                dropped=self._hub.dropped[direction],
                paused=sum(p.paused for p in pipes),
                latency=fault.latency,
                stalled=fault.stalled,
            )

        return ProxyStats(
            client_to_server=flow(Flow.CLIENT_TO_SERVER),
            server_to_client=flow(Flow.SERVER_TO_CLIENT),
            connections=self.connections,
            accepted=self._hub.accepted,
            cut=self._hub.cut,
            idle_closed=self._hub.idle_closed,
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
            self._hub.faults[flow].latency = float(seconds)
        self._hub.note(f"latency {seconds:g} s {direction}")
        self._hub.poke_all()

    def stall(self, *, direction: Flow = Flow.BOTH) -> None:
        """Stop delivering bytes in ``direction`` without closing any socket.

        Both ends keep an open connection and see silence: only a heartbeat (a ping that
        gets no pong) can tell this from an idle peer. The proxy holds what it reads, up
        to ``buffer_limit`` bytes per connection and direction, then stops reading.
        Stalls add up: stalling one direction and then the other stalls both.
        """
        for flow in Flow(direction).flows:
            self._hub.faults[flow].stalled = True
        self._hub.note(f"stalled {direction}")
        self._hub.poke_all()

    def resume(self, *, direction: Flow = Flow.BOTH) -> None:
        """Forward normally again in ``direction``: no stall, no latency.

        Held bytes go out at once, in order, on the same connections, unless those
        connections ended meanwhile.
        """
        for flow in Flow(direction).flows:
            self._hub.faults[flow].stalled = False
            self._hub.faults[flow].latency = 0.0
        self._hub.note(f"resumed {direction}")
        self._hub.poke_all()

    def cut(self) -> int:
        """Reset both sockets of every current connection; returns how many were cut.

        Each end gets an RST (``ConnectionResetError``; a WebSocket closes with 1006), and
        held bytes are dropped. New connections are accepted and treated like the others:
        a cut does not change the mode.
        """
        links = list(self._hub.links)
        for link in links:
            link.teardown(reset_socket, how="cut by proxy")
        self._hub.cut += len(links)
        self._hub.note(f"cut {len(links)} connection(s)")
        return len(links)

    def set_idle_timeout(self, seconds: float | None) -> None:
        """Close any connection, current or new, that carries no byte in either direction for
        ``seconds``; None turns the timeout off.

        That is what reverse proxies and load balancers do: nginx's ``proxy_read_timeout``
        (60 s by default), a cloud load balancer's idle timeout. Both sockets get a FIN, no
        close frame, so a WebSocket sees 1006. Only traffic keeps a connection: a heartbeat
        whose interval is below the timeout does.
        """
        if seconds is not None and seconds <= 0:
            raise ValueError("the idle timeout must be positive (or None for none)")
        self._hub.idle_timeout = None if seconds is None else float(seconds)
        for link in self._hub.links:
            link.watch_idle()
        self._hub.note(f"idle timeout {'off' if seconds is None else f'{seconds:g} s'}")

    # --- the registry's side --------------------------------------------------------------

    async def _close(self, code: int, reason: str) -> None:
        """Stop listening and close every connection at once (TCP has no close code)."""
        self._hub.stopped = True
        self._server.close()
        # abort(), not close(): a peer that does not read must not keep a socket open
        # while its unsent bytes wait. Each end sees the connection end (FIN, or RST if
        # it had sent bytes the proxy never read).
        for link in list(self._hub.links):
            link.teardown(abort_socket, how="proxy stopped")
        tasks = list(self._hub.tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._server.wait_closed()
        # abort() closes each socket in a callback soon after: wait for them all.
        try:
            await asyncio.wait_for(self._hub.all_closed.wait(), 5)
        except TimeoutError:  # pragma: no cover - abort() always reports connection_lost
            logger.warning("%s: %d socket(s) still open after stop", self.name, len(self._hub.open_sides))

    def __repr__(self) -> str:
        route = f"{addresses.host_port(self.host, self.port)} -> {addresses.host_port(*self.target)}"
        return f"<{self.name} proxy {self.mode} {route}, {self.connections} connection(s)>"
