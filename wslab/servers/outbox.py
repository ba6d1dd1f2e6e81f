"""What waits for one connection's writer: its messages, then the close that follows them.

A server whose framework hides the socket's buffer (ASGI does) keeps the backlog itself:
:class:`~wslab.servers.asgi_peer.AsgiPeer` for a WebSocket, and
:class:`~wslab.servers.web.stream.StreamPeer` for the page's HTTP fallback, each drained by one
writer that awaits every send (the server applies flow control).
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass

from .peers import Peer, PeerClosed

__all__ = ["CloseFrame", "Outbox", "OutboxPeer"]


@dataclass(frozen=True)
class CloseFrame:
    """The close to send once every message before it has gone."""

    code: int
    reason: str


class Outbox:
    """Messages for one writer, in order, then at most one :class:`CloseFrame`."""

    def __init__(self) -> None:
        self._items: deque[tuple[str, int]] = deque()
        self._queued = 0
        self._wake = asyncio.Event()
        self._flushed = asyncio.Event()
        self._flushed.set()
        self._done = False
        #: Set by :meth:`close`: nothing is queued after it.
        self.close_frame: CloseFrame | None = None

    @property
    def backlog(self) -> int:
        """Bytes queued and not yet taken by the writer."""
        return self._queued

    @property
    def accepting(self) -> bool:
        return not self._done and self.close_frame is None

    def push(self, text: str, size: int) -> None:
        """Queue ``text`` (``size`` bytes once encoded); nothing once closing or done."""
        if not self.accepting:
            return
        self._items.append((text, size))
        self._queued += size
        self._flushed.clear()
        self._wake.set()

    def close(self, code: int, reason: str) -> None:
        """Send ``(code, reason)`` after what is queued; later pushes are dropped."""
        if self.accepting:
            self.close_frame = CloseFrame(code, reason)
            self._wake.set()

    async def take(self) -> str | CloseFrame | None:
        """The next message; then the close frame, if one was asked for; None once :meth:`finish` ran."""
        while not self._items:
            self._flushed.set()
            if self._done:
                return None
            if self.close_frame is not None:
                return self.close_frame
            self._wake.clear()
            await self._wake.wait()
        text, size = self._items.popleft()
        self._queued -= size
        return text

    async def flushed(self) -> None:
        """Until the writer has taken everything queued (or the outbox is done)."""
        await self._flushed.wait()

    def finish(self) -> None:
        """The writer is gone: drop what is queued, wake whoever waits."""
        self._done = True
        self._items.clear()
        self._queued = 0
        self._flushed.set()
        self._wake.set()


class OutboxPeer(Peer):
    """A peer whose messages wait in an :class:`Outbox` until its writer sends them.

    What the chat sees of it is the same for a WebSocket and for the HTTP fallback: pushes
    queue, a send waits until the outbox is flushed, the backlog is the outbox's.
    """

    def __init__(self) -> None:
        self._outbox = Outbox()
        self._closed = False

    def push(self, text: str, data: bytes) -> None:
        if not self._closed:
            self._outbox.push(text, len(data))

    async def send(self, text: str) -> None:
        if self._closed:
            raise PeerClosed("closed")
        self.push(text, text.encode())
        await self._outbox.flushed()
        if self._closed:
            raise PeerClosed("closed")

    @property
    def backlog(self) -> int:
        return self._outbox.backlog

    @property
    def open(self) -> bool:
        return not self._closed and self._outbox.accepting
