"""The chat's view of a Starlette WebSocket: lesson 04's ``/ws`` reaches the same
:class:`~wslab.servers.chat.ChatServer` as a :mod:`websockets` server does, through this peer."""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque

from starlette.websockets import WebSocket, WebSocketDisconnect

from ..core import addresses
from .peers import Peer, PeerClosed

__all__ = ["AsgiPeer"]


class AsgiPeer(Peer):
    """A Starlette :class:`WebSocket` as a chat :class:`~wslab.servers.chat.Peer`.

    ASGI gives an application no view of the socket's buffer, so the backlog lives here:
    an outbox drained by one writer task, which awaits each send (uvicorn applies flow
    control). :attr:`backlog` counts the bytes still in the outbox.
    """

    def __init__(self, websocket: WebSocket) -> None:
        self.websocket = websocket
        client = websocket.client
        self.remote = addresses.host_port(client.host, client.port) if client else "unknown"
        self._outbox: deque[tuple[str, int]] = deque()
        self._queued = 0
        self._wake = asyncio.Event()
        self._flushed = asyncio.Event()
        self._flushed.set()
        self._closed = False
        self._close_frame: tuple[int, str] | None = None
        self._writer = asyncio.get_running_loop().create_task(self._write(), name=f"ws-writer-{self.remote}")

    async def recv(self) -> str | bytes:
        if self._closed:
            raise PeerClosed("closed")
        try:
            message = await self.websocket.receive()
        except (WebSocketDisconnect, RuntimeError) as exc:
            self._closed = True
            raise PeerClosed(str(exc)) from exc
        if message["type"] == "websocket.disconnect":
            self._closed = True
            raise PeerClosed(f"closed with {message.get('code')}")
        text = message.get("text")
        return text if text is not None else message.get("bytes") or b""

    def push(self, text: str, data: bytes) -> None:
        if self._closed or self._close_frame is not None:
            return
        self._outbox.append((text, len(data)))
        self._queued += len(data)
        self._flushed.clear()
        self._wake.set()

    async def send(self, text: str) -> None:
        if self._closed:
            raise PeerClosed("closed")
        self.push(text, text.encode())
        await self._flushed.wait()
        if self._closed:
            raise PeerClosed("closed")

    @property
    def backlog(self) -> int:
        return self._queued

    @property
    def open(self) -> bool:
        return not self._closed and self._close_frame is None

    async def close(self, code: int, reason: str) -> None:
        """Close after what is already queued has gone out (as a WebSocket close does)."""
        if self._closed or self._close_frame is not None:
            return
        self._close_frame = (code, reason)
        self._wake.set()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.shield(self._writer)

    def abort(self) -> None:
        # ASGI offers no way to drop a socket: stop writing and let the server's own
        # keepalive (uvicorn's ws_ping_timeout) reap the transport.
        self._closed = True
        self._writer.cancel()

    async def _write(self) -> None:
        try:
            while True:
                while not self._outbox:
                    self._flushed.set()
                    if self._close_frame is not None:
                        await self.websocket.close(*self._close_frame)
                        return
                    self._wake.clear()
                    await self._wake.wait()
                text, size = self._outbox.popleft()
                await self.websocket.send_text(text)
                self._queued -= size
        except Exception:  # the client went away mid-send: nothing left to write to
            pass
        finally:
            self._closed = True
            self._outbox.clear()
            self._queued = 0
            self._flushed.set()

    async def finish(self) -> None:
        """Stop the writer once the chat is done with this connection."""
        if not self._writer.done():
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
