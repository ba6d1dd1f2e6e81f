"""The chat's view of a Starlette WebSocket: lesson 04's ``/ws`` reaches the same
:class:`~wslab.servers.chat.ChatServer` as a :mod:`websockets` server does, through this peer."""

from __future__ import annotations

import asyncio
import contextlib

from starlette.websockets import WebSocket, WebSocketDisconnect

from ..core import addresses
from .outbox import CloseFrame, OutboxPeer
from .peers import PeerClosed

__all__ = ["AsgiPeer"]


class AsgiPeer(OutboxPeer):
    """A Starlette :class:`WebSocket` as a chat :class:`~wslab.servers.chat.Peer`.

    ASGI gives an application no view of the socket's buffer, so the backlog lives here:
    an :class:`~wslab.servers.outbox.Outbox` drained by one writer task, which awaits each
    send (uvicorn applies flow control). :attr:`backlog` counts the bytes still in it.
    """

    def __init__(self, websocket: WebSocket) -> None:
        self.websocket = websocket
        client = websocket.client
        self.remote = addresses.host_port(client.host, client.port) if client else "unknown"
        super().__init__()
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

    async def close(self, code: int, reason: str) -> None:
        """Close after what is already queued has gone out (as a WebSocket close does)."""
        if not self.open:
            return
        self._outbox.close(code, reason)
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.shield(self._writer)

    def abort(self) -> None:
        # ASGI offers no way to drop a socket: stop writing and let the server's own
        # keepalive (uvicorn's ws_ping_timeout) reap the transport.
        self._closed = True
        self._writer.cancel()

    async def _write(self) -> None:
        try:
            while (item := await self._outbox.take()) is not None:
                if isinstance(item, CloseFrame):
                    await self.websocket.close(item.code, item.reason)
                    return
                await self.websocket.send_text(item)
        except Exception:  # the client went away mid-send: nothing left to write to
            pass
        finally:
            self._closed = True
            self._outbox.finish()

    async def finish(self) -> None:
        """Stop the writer once the chat is done with this connection."""
        if not self._writer.done():
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
