"""The chat page's fallback for networks that refuse WebSockets: the same chat over plain HTTP.

Some networks (a corporate proxy, a filtering gateway) pass ordinary HTTP but not the
WebSocket upgrade. The page then carries the very same protocol over two kinds of request:

* ``POST /api/stream``: the body is the hello the page would send first on a WebSocket; the
  answer is a ``text/event-stream`` (lesson 07's Server-Sent Events) that stays open: first a
  ``session`` event naming this connection, then every message the WebSocket would carry, one
  event each, with ``id:`` its sequence number; a ``close`` event (code and reason) ends it.
* ``POST /api/send``: ``{"session": ..., "messages": [...]}``, what the page would send on the
  WebSocket, in order.

The page reads the stream with ``fetch``, not ``EventSource``: ``EventSource`` can neither
POST nor set a header, so its token would have to travel in the URL, where logs keep it.
A client that reconnects with ``Last-Event-ID`` and no ``resume`` in its hello resumes from
that id, as lesson 07's stream does. For the chat (:class:`~wslab.servers.chat.ChatServer`)
a stream is one more :class:`~wslab.servers.peers.Peer`: same room, same rules, same limits.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from collections.abc import AsyncIterator, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from ...core import sse
from ...core.fleet import parse_seq
from ..chat import ChatServer
from ..outbox import CloseFrame, OutboxPeer
from ..peers import PeerClosed

__all__ = ["STREAM_PATHS", "StreamPeer", "stream_routes"]

#: The routes that stand in for the WebSocket: the app's Origin guard covers them as it does ``/ws``.
STREAM_PATHS = ("/api/stream", "/api/send")

#: Messages a stream holds from ``/api/send`` before the chat has read them; more is 429.
MAX_INBOX = 64
#: Bytes of one ``/api/send`` body: a batch of chat messages, well under this.
MAX_SEND_BODY = 64 * 1024
#: The types whose ``seq`` the page records: the ``id:`` a reconnect sends back.
_NUMBERED = frozenset({"chat", "join", "leave", "ack"})
_STREAM_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}  # nginx: pass each event on


class StreamPeer(OutboxPeer):
    """One page's chat over HTTP: what it posts arrives by :meth:`deliver`, what the chat sends
    leaves by :meth:`events`, the stream's body."""

    def __init__(self, remote: str, hello: str) -> None:
        self.remote = remote
        #: Names this connection in ``/api/send``; a secret, like a session cookie.
        self.session = secrets.token_urlsafe(18)
        self._inbox: asyncio.Queue[str | None] = asyncio.Queue(maxsize=MAX_INBOX + 1)
        self._inbox.put_nowait(hello)
        super().__init__()
        self._ended = asyncio.Event()

    async def recv(self) -> str | bytes:
        if self._closed:
            raise PeerClosed("closed")
        item = await self._inbox.get()
        if item is None:
            self._closed = True
            raise PeerClosed("the stream ended")
        return item

    def deliver(self, messages: list[str]) -> bool:
        """Queue what the page posted, in order; False when it cannot be taken (closed, full)."""
        if not self.open or self._inbox.qsize() + len(messages) > MAX_INBOX:
            return False
        for message in messages:
            self._inbox.put_nowait(message)
        return True

    async def close(self, code: int, reason: str) -> None:
        """End the stream with a ``close`` event, after what is queued."""
        if self.open:
            self._outbox.close(code, reason)
            await self._ended.wait()

    def abort(self) -> None:
        self._closed = True
        self._outbox.finish()  # the stream ends without a close event, as a dropped socket would

    async def events(self) -> AsyncIterator[str]:
        """The response body: the session, then each message, then the close."""
        try:
            yield sse.format_event(json.dumps({"session": self.session}), event="session")
            while (item := await self._outbox.take()) is not None:
                if isinstance(item, CloseFrame):
                    close = json.dumps({"code": item.code, "reason": item.reason})
                    yield sse.format_event(close, event="close")
                    return
                yield sse.format_event(item, id=_seq_of(item))
        finally:
            self._end()

    def _end(self) -> None:
        self._closed = True
        self._outbox.finish()
        self._ended.set()
        while not self._inbox.empty():  # what was posted after the end is moot
            self._inbox.get_nowait()
        self._inbox.put_nowait(None)


def _seq_of(text: str) -> int | None:
    with contextlib.suppress(ValueError, AttributeError):
        data = json.loads(text)
        if data.get("type") in _NUMBERED and isinstance(data.get("seq"), int):
            return int(data["seq"])
    return None


async def _body(request: Request, limit: int) -> Any:
    """The request's JSON, read up to ``limit`` bytes; ValueError says what is wrong with it."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise ValueError(f"the body is over {limit} bytes")
    try:
        return json.loads(body or b"null")
    except json.JSONDecodeError:
        raise ValueError("send JSON") from None


def _hello(data: Any, last_event_id: str | None) -> str:
    """The hello as the chat reads it; ``Last-Event-ID`` stands in for a missing ``resume``."""
    if isinstance(data, dict) and data.get("resume") is None:
        resume = parse_seq(last_event_id)
        if resume is not None:
            data = {**data, "resume": resume}
    return json.dumps(data)


def stream_routes(chat: ChatServer, *, room_full: Callable[[], Response]) -> list[Route]:
    """``/api/stream`` and ``/api/send`` for ``chat``; ``room_full()`` answers a stream when it is full."""
    sessions: dict[str, StreamPeer] = {}
    tasks: set[asyncio.Task[None]] = set()

    async def serve(peer: StreamPeer) -> None:
        try:
            await chat.serve_peer(peer)
        finally:
            sessions.pop(peer.session, None)
            peer.abort()  # if the chat let go without a close, the stream must still end

    async def stream(request: Request) -> Response:
        if chat.room.full:
            return room_full()
        try:
            hello = _hello(await _body(request, MAX_SEND_BODY), request.headers.get("last-event-id"))
        except ValueError as exc:
            return JSONResponse({"error": f"{exc}: the hello, as on a WebSocket"}, status_code=400)
        client = request.client
        peer = StreamPeer(f"{client.host}:{client.port}" if client else "unknown", hello)
        sessions[peer.session] = peer
        task = asyncio.get_running_loop().create_task(serve(peer), name=f"stream-{peer.remote}")
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        return StreamingResponse(peer.events(), media_type="text/event-stream", headers=_STREAM_HEADERS)

    async def send(request: Request) -> Response:
        try:
            data = await _body(request, MAX_SEND_BODY)
        except ValueError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        if not isinstance(data, dict) or not isinstance(data.get("messages"), list):
            return JSONResponse({"error": 'send {"session": ..., "messages": [...]}'}, status_code=400)
        peer = sessions.get(str(data.get("session")))
        if peer is None:
            return JSONResponse({"error": "no such stream: open a new one"}, status_code=404)
        if not peer.deliver([json.dumps(message) for message in data["messages"]]):
            return JSONResponse({"error": "too many messages waiting; slow down"}, status_code=429)
        return Response(status_code=204)

    opened, sent = STREAM_PATHS
    return [Route(opened, stream, methods=["POST"]), Route(sent, send, methods=["POST"])]
