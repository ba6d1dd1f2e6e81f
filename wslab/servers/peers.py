"""One client connection as the chat server needs it, whatever serves it.

The chat talks to connections through :class:`Peer`, so the same server runs on a
:mod:`websockets` server (:class:`WebsocketsPeer`) and inside a Starlette application
(:class:`wslab.servers.asgi_peer.AsgiPeer`, lesson 04).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator

from websockets.asyncio.server import ServerConnection, broadcast
from websockets.exceptions import ConnectionClosed
from websockets.protocol import State

from ..core.connection_log import LogKind
from ..core.errors import WslabError
from ..runtime.closes import peer_name
from ..runtime.handles import RecordedConnection

__all__ = ["Peer", "PeerClosed", "WebsocketsPeer"]


class PeerClosed(WslabError):
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
        """Queue ``text`` (``data`` is its UTF-8 encoding) without waiting; nothing if closing."""

    @property
    @abstractmethod
    def backlog(self) -> int:
        """Bytes accepted for this client that have not reached the network yet."""

    @property
    @abstractmethod
    def open(self) -> bool:
        """Whether messages can still be sent."""

    @abstractmethod
    async def close(self, code: int, reason: str) -> None:
        """Close with a close frame, after what is already queued."""

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
    """A :mod:`websockets` server connection.

    What it sends without waiting (:meth:`push`) is recorded in the server's event log
    like what it sends with :meth:`send`, so ``serve chat -v`` shows every delivery.
    """

    def __init__(self, connection: ServerConnection) -> None:
        self.connection = connection
        self.remote = peer_name(connection)
        self._recorded: RecordedConnection | None = None  # where what push() sends is logged
        if isinstance(connection, RecordedConnection) and connection.event_log is not None:
            self._recorded = connection

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
        # websockets' broadcast() to this one connection: it frames the bytes and writes
        # them to the transport, never waits, and skips a connection that is closing.
        if self.connection.state is not State.OPEN:
            return
        broadcast((self.connection,), data, text=True, raise_exceptions=True)
        if self._recorded is not None:
            self._recorded.record(LogKind.SENT, text)

    @property
    def backlog(self) -> int:
        transport = self.connection.transport
        return transport.get_write_buffer_size() if transport is not None else 0

    @property
    def open(self) -> bool:
        return self.connection.state is State.OPEN

    async def close(self, code: int, reason: str) -> None:
        await self.connection.close(code, reason)

    def abort(self) -> None:
        self.connection.transport.abort()
