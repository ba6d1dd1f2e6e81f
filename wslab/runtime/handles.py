"""Servers that live inside a Jupyter kernel, a script, or the command line.

A notebook cell must return while its server keeps serving, and running the cell again
must not fail with "address already in use". So every server started here is registered
under a name: starting a server under a name (or on a port) that this process already
uses stops the old one first, and :func:`stop_all` ends a lesson cleanly.

The same calls work in a plain script under ``asyncio.run``; :func:`serve_until_signalled`
adds the Ctrl-C / SIGTERM handling a command-line server needs.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from websockets.asyncio.server import Server, ServerConnection
from websockets.asyncio.server import serve as websockets_serve
from websockets.exceptions import ConnectionClosed
from websockets.protocol import State

from ..core import addresses
from ..core.close_codes import CloseCode
from ..core.connection_log import LogKind
from . import waiting
from .closes import close_details, peer_name
from .event_log import EventLog
from .signals import STOP_SIGNALS, until_signalled

__all__ = [
    "Handler",
    "RecordedConnection",
    "ServerHandle",
    "WebSocketServerHandle",
    "register",
    "release",
    "running",
    "serve",
    "serve_until_signalled",
    "stop",
    "stop_all",
    "unregister",
    "wait_until",
]

Handler = Callable[[ServerConnection], Awaitable[None]]

H = TypeVar("H", bound="ServerHandle")

logger = logging.getLogger("wslab")
# A library stays silent unless its user configures logging: in a kernel, stray log
# records from background tasks would land in whichever cell happens to run.
logger.addHandler(logging.NullHandler())

_running: dict[str, ServerHandle] = {}


class RecordedConnection(ServerConnection):
    """A server connection that records each whole message it receives or sends.

    The handler still gets a real :class:`ServerConnection`, so lesson code stays plain
    websockets code; the recording happens underneath, in :meth:`recv` and :meth:`send`
    (``async for message in connection`` calls :meth:`recv`).
    """

    event_log: EventLog | None = None

    async def recv(self, decode: bool | None = None) -> Any:
        message = await super().recv(decode)
        self.record(LogKind.RECEIVED, message)
        return message

    async def send(self, message: Any, *, text: bool | None = None) -> None:
        await super().send(message, text=text)
        self.record(LogKind.SENT, message)

    def record(self, direction: LogKind, message: Any) -> None:
        """Record ``message`` (one sent without :meth:`send`, say) in the event log, if any."""
        if self.event_log is None:
            return
        peer = peer_name(self)
        if isinstance(message, str):
            self.event_log.record(direction, peer, text=message)
        elif isinstance(message, bytes | bytearray | memoryview):
            self.event_log.record(direction, peer, size=len(message))
        else:
            self.event_log.record(direction, peer, text="<fragmented message>")


def observe(handler: Handler, log: EventLog | None, *, send_buffer: int | None = None) -> Handler:
    """Wrap ``handler``: log connect and disconnect, and contain the ways a connection ends.

    A peer that vanishes or breaks the protocol raises :class:`ConnectionClosed` inside the
    handler; that is a normal end of a connection, not a server error, so it is recorded,
    not logged with a traceback. A bug in the handler closes that one connection with 1011
    and is recorded with its message; the server keeps serving everyone else.
    """

    async def observed(connection: ServerConnection) -> None:
        if send_buffer:
            sock = connection.transport.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, send_buffer)
        peer = peer_name(connection)
        path = connection.request.path if connection.request else "/"
        if isinstance(connection, RecordedConnection):
            connection.event_log = log
        if log is not None:
            log.record(LogKind.CONNECT, peer, text=None if path == "/" else path)
        try:
            await handler(connection)
        except ConnectionClosed:
            pass
        except Exception as exc:
            if log is not None:
                log.record(LogKind.NOTE, peer, text=f"handler failed: {type(exc).__name__}: {exc}")
            logger.warning(
                "handler for %s failed: %r", peer, exc, exc_info=logger.isEnabledFor(logging.DEBUG)
            )
            await connection.close(CloseCode.INTERNAL_ERROR, "internal error")
        finally:
            if connection.protocol.state is not State.CLOSED:
                await connection.close()
            code, reason, who = close_details(connection)
            if log is not None:
                log.record(LogKind.DISCONNECT, peer, code=code, reason=reason, text=who)

    observed.__name__ = getattr(handler, "__name__", "handler")
    return observed


class ServerHandle:
    """A running server: its URL, its connection count, and how to stop it.

    Subclasses say how to count connections and how to close; the registry, the
    ``on_stop`` callbacks and the address are shared.
    """

    scheme = "ws"
    path = "/"

    def __init__(self, name: str, address: tuple[Any, ...], *, log: EventLog | None = None) -> None:
        self.name = name
        self.log = log
        self._on_stop: list[Callable[[], Awaitable[None]]] = []
        self.host: str = address[0]
        self.port: int = address[1]

    @property
    def url(self) -> str:
        return addresses.url(self.scheme, self.host, self.port, self.path)

    @property
    def connections(self) -> int:
        """How many WebSocket connections are open right now."""
        raise NotImplementedError

    @property
    def serving(self) -> bool:
        raise NotImplementedError

    async def _close(self, code: int, reason: str) -> None:
        raise NotImplementedError

    async def crash(self) -> None:
        """Stop as a crashed process would: every connection dropped without a close frame (1006)."""
        raise NotImplementedError(f"{type(self).__name__} cannot play a crash")

    async def stop(self, *, code: int = CloseCode.GOING_AWAY, reason: str = "server shutting down") -> None:
        """Close every connection with ``code`` (1001 by default), then free the port."""
        await self._close(code, reason)
        callbacks, self._on_stop = self._on_stop, []
        for callback in callbacks:
            await callback()
        unregister(self)

    def on_stop(self, callback: Callable[[], Awaitable[None]]) -> None:
        """Run ``callback`` after the server has closed: release what it used (a subscription, say)."""
        self._on_stop.append(callback)

    def __repr__(self) -> str:
        state = "serving" if self.serving else "stopped"
        return f"<{self.name} server {state} at {self.url}, {self.connections} connection(s)>"


class WebSocketServerHandle(ServerHandle):
    """A :mod:`websockets` server started by :func:`serve`.

    ``drain_timeout`` bounds :meth:`stop`: clients get their close frame at once, and those
    that have not finished the closing handshake after that many seconds (a client that
    stopped reading, a dead network) are dropped, so that a process told to stop (SIGTERM)
    exits in bounded time. None waits as websockets does: ``close_timeout`` per connection.
    """

    def __init__(self, name: str, server: Server, *, log: EventLog | None = None) -> None:
        super().__init__(name, server.sockets[0].getsockname(), log=log)
        self.server = server
        self.drain_timeout: float | None = None

    @property
    def connections(self) -> int:
        return len(self.server.connections)

    @property
    def serving(self) -> bool:
        return self.server.is_serving()

    async def _close(self, code: int, reason: str) -> None:
        self.server.close(code=code, reason=reason)
        if self.drain_timeout is None:
            await self.server.wait_closed()
            return
        try:
            await asyncio.wait_for(asyncio.shield(self.server.wait_closed()), self.drain_timeout)
        except TimeoutError:
            # all_connections, not connections: those still closing are no longer "active".
            stragglers = [c for c in self.server.all_connections if c.state is not State.CLOSED]
            logger.warning("%s: dropping %d connection(s) still closing", self.name, len(stragglers))
            for connection in stragglers:
                connection.transport.abort()
            await self.server.wait_closed()

    async def crash(self) -> None:
        for connection in list(self.server.connections):
            connection.transport.abort()
        await self.stop()


async def serve(
    handler: Handler,
    *,
    name: str | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    log: EventLog | None = None,
    send_buffer: int | None = None,
    **options: Any,
) -> ServerHandle:
    """Start a WebSocket server in the running event loop and return at once.

    Args:
        handler: ``async def handler(connection)``, called once per connection.
        name: registry name; defaults to the handler's name. A server already running
            under this name, or on this host and port, in this process is stopped first.
        host: interface to bind; the default serves this machine only.
        port: 0 lets the system pick a free port (read it from ``handle.port``).
        log: an :class:`EventLog` that records connects, every message received and
            sent, disconnects and their close codes.
        send_buffer: if set, each connection's kernel send buffer (SO_SNDBUF) in bytes.
            Small buffers make a slow client visible to the server sooner (lesson 02).
        options: passed on to :func:`websockets.asyncio.server.serve` (``max_size``,
            ``ping_interval``, ``process_request``, ...).
    """
    name = name or str(getattr(handler, "__name__", "server"))
    await release(name, host, port)
    options.setdefault("logger", logging.getLogger("wslab.websockets"))
    if log is not None:
        options.setdefault("create_connection", RecordedConnection)
    server = await websockets_serve(observe(handler, log, send_buffer=send_buffer), host, port, **options)
    handle = WebSocketServerHandle(name, server, log=log)
    if options.get("ssl") is not None:
        handle.scheme = "wss"  # TLS on this port: clients must use wss:// (and trust its certificate)
    _running[name] = handle
    return handle


def register(handle: H) -> H:
    """Add a started server to this process's registry (for other kinds of servers)."""
    _running[handle.name] = handle
    return handle


def unregister(handle: ServerHandle) -> None:
    """Take a stopped server out of the registry, if it is the one registered under its name."""
    if _running.get(handle.name) is handle:
        del _running[handle.name]


async def release(name: str, host: str, port: int) -> None:
    """Stop this process's own servers that would clash with a new one."""
    for handle in list(_running.values()):
        if handle.name == name or (port and handle.port == port and host in (handle.host, "0.0.0.0", "::")):
            await handle.stop(code=CloseCode.SERVICE_RESTART, reason="server restarting")


def running() -> list[ServerHandle]:
    """The servers started here that are still registered."""
    return list(_running.values())


async def stop(name: str) -> bool:
    """Stop the server registered under ``name``; False if there was none."""
    handle = _running.get(name)
    if handle is None:
        return False
    await handle.stop()
    return True


async def stop_all() -> int:
    """Stop every server started in this process; returns how many were running."""
    # Newest first: what was started on top of something (a proxy in front of a server, a
    # chat process on a broker) goes before what it depends on, so no polite close waits
    # on a network or a broker that is already gone.
    handles = list(_running.values())
    for handle in reversed(handles):
        await handle.stop()
    return len(handles)


async def serve_until_signalled(
    handle: ServerHandle,
    *,
    signals: tuple[signal.Signals, ...] = STOP_SIGNALS,
    on_ready: Callable[[], None] | None = None,
    code: int = CloseCode.GOING_AWAY,
    reason: str = "server shutting down",
) -> signal.Signals:
    """Keep a script's server running until Ctrl-C or SIGTERM, then stop it: every client
    gets ``code`` (1001 going away; 1012 service restart says "come back at once").

    ``on_ready`` runs once the signal handlers are in place: announce the server there,
    so that whoever reads the announcement can already stop it cleanly.
    """
    try:
        return await until_signalled(signals, on_ready=on_ready)
    finally:
        await handle.stop(code=code, reason=reason)


async def wait_until(predicate: Callable[[], bool], *, timeout: float = 5.0, interval: float = 0.01) -> None:
    """Wait until ``predicate()`` is true, checking every ``interval`` seconds.

    For lessons and tests that must wait for something another task does (a handler
    finishing, a message arriving): a condition with a deadline, never a guessed sleep.

    Raises:
        TimeoutError: if the condition still does not hold after ``timeout`` seconds.
    """
    clock = asyncio.get_running_loop().time
    if not await waiting.run_async(waiting.poll(predicate, timeout=timeout, interval=interval, clock=clock)):
        raise TimeoutError(f"condition not met within {timeout:g} s")
