"""One client connection as the chat server needs it, whatever serves it.

The chat talks to connections through :class:`Peer`, so the same server runs on a
:mod:`websockets` server (:class:`WebsocketsPeer`) and inside a Starlette application
(:class:`wslab.servers.asgi_peer.AsgiPeer`, lesson 04).
"""

from __future__ import annotations

import sys
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import cast

from websockets.asyncio.server import ServerConnection, broadcast
from websockets.exceptions import ConnectionClosed
from websockets.frames import Frame, Opcode
from websockets.protocol import State

from ..core.connection_log import LogKind
from ..core.errors import WslabError
from ..runtime.closes import peer_name
from ..runtime.event_log import EventLog
from ..runtime.handles import RecordedConnection

__all__ = ["Peer", "PeerClosed", "Pushed", "WebsocketsPeer"]

# An alias, as websockets keeps its own: before Python 3.12, looking a member up on an
# Enum class goes through a slow attribute hook, and this one is checked per delivery.
OPEN = State.OPEN


class PeerClosed(WslabError):
    """The connection ended, cleanly or not; for the chat, the user has gone."""


@dataclass(slots=True)
class Pushed:
    """Whom :meth:`Peer.push_all` did not reach: the peers whose write raised, and those it
    skipped for having more than ``max_backlog`` bytes waiting (with that number)."""

    failed: list[Peer] = field(default_factory=list)
    slow: list[tuple[Peer, int]] = field(default_factory=list)


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

    @classmethod
    def push_all(
        cls, peers: Sequence[Peer], text: str, data: bytes, *, max_backlog: int = sys.maxsize
    ) -> Pushed:
        """:meth:`push` to each of ``peers`` (all of this class) that has at most
        ``max_backlog`` bytes waiting; says whom it skipped, and whose push failed.

        One peer failing never stops the others. A class that can reach many connections
        in one call does so here. The backlog is looked at as each peer is written to, so
        the first write never waits for a look at all the others.
        """
        pushed = Pushed()
        for peer in peers:
            try:
                if (waiting := peer.backlog) > max_backlog:
                    pushed.slow.append((peer, waiting))
                    continue
                peer.push(text, data)
            except Exception:
                pushed.failed.append(peer)
        return pushed

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

    What it sends without waiting (:meth:`push_all`) is recorded in the server's event log
    like what it sends with :meth:`send`, once per text with the number of its recipients:
    ``serve chat -v`` shows every fan-out, without a line per delivery.
    """

    def __init__(self, connection: ServerConnection) -> None:
        self.connection = connection
        self.remote = peer_name(connection)
        #: Where what push_all() sends is logged, if anywhere.
        self.event_log: EventLog | None = None
        if isinstance(connection, RecordedConnection):
            self.event_log = connection.event_log

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
        for failed in self.push_all((self,), text, data).failed:
            raise PeerClosed(f"writing to {failed.remote} failed")

    @classmethod
    def push_all(
        cls, peers: Sequence[Peer], text: str, data: bytes, *, max_backlog: int = sys.maxsize
    ) -> Pushed:
        """Frame ``data`` once, and write that frame to every connection that negotiated no
        extension: a server's frames are not masked, so without compression they are the
        same bytes for everyone. Connections with permessage-deflate, whose every frame is
        compressed with their own context, get ``data`` through websockets' ``broadcast()``.

        As ``broadcast()`` does, it never waits and skips connections that are closing. A
        write that fails on a network error closes its transport, and that connection's
        handler ends: the room hears the client has gone. A write that raises instead
        makes the peer one of those returned as failed, which the caller drops; the others
        go on. A connection whose transport holds more than ``max_backlog`` bytes is not
        written to and is returned as slow: the transport is in hand for the write anyway.
        """
        websockets = cast("Sequence[WebsocketsPeer]", peers)
        frame = Frame(Opcode.TEXT, data).serialize(mask=False)
        pushed = Pushed()
        compressed: list[WebsocketsPeer] = []
        for peer in websockets:
            connection = peer.connection
            protocol = connection.protocol
            if protocol.state is not OPEN:
                continue
            try:
                transport = connection.transport
                if (waiting := transport.get_write_buffer_size()) > max_backlog:
                    pushed.slow.append((peer, waiting))
                elif protocol.extensions or protocol.expect_continuation_frame:
                    compressed.append(peer)
                else:
                    transport.write(frame)
            except Exception:
                pushed.failed.append(peer)
        for peer in compressed:
            try:
                broadcast((peer.connection,), data, text=True, raise_exceptions=True)
            except ExceptionGroup:
                pushed.failed.append(peer)
        log = websockets[0].event_log if websockets else None
        if log is not None:
            to = websockets[0].remote if len(websockets) == 1 else f"{len(websockets)} clients"
            log.record(LogKind.SENT, to, text=text)
        return pushed

    @property
    def backlog(self) -> int:
        transport = self.connection.transport
        return transport.get_write_buffer_size() if transport is not None else 0

    @property
    def open(self) -> bool:
        return self.connection.state is OPEN

    async def close(self, code: int, reason: str) -> None:
        await self.connection.close(code, reason)

    def abort(self) -> None:
        self.connection.transport.abort()
