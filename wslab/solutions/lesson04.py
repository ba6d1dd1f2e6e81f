"""Solutions to lesson 04: the blanks (a pure ASGI middleware, the Origin rule) and the exercises."""

from __future__ import annotations

from http import HTTPStatus
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class ScopeLog:
    """Pure ASGI middleware: note every HTTP request and WebSocket handshake, and its outcome."""

    def __init__(self, app: ASGIApp, *, seen: list[str]) -> None:
        self.app = app
        self.seen = seen  # a list the notes go to

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):  # e.g. "lifespan": not a request
            await self.app(scope, receive, send)
            return

        async def send_and_note(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.seen.append(f"{scope['type']:<9} {scope['path']:<4} -> HTTP {message['status']}")
            elif message["type"] == "websocket.accept":
                self.seen.append(f"{scope['type']:<9} {scope['path']:<4} -> accepted")
            await send(message)

        await self.app(scope, receive, send_and_note)


def origin_allowed(origin: str | None, host: str, extra: set[str]) -> bool:
    """No Origin (not a browser), the page's own origin, or one listed exactly."""
    if origin is None:
        return True  # not a browser: it carries no victim's cookies
    return origin in extra or urlsplit(origin).netloc == host


class CountWebSockets:
    """Exercise 1: pure ASGI middleware; ``open`` is the number of WebSockets open now."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.open = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            await self.app(scope, receive, send)
            return
        accepted = False

        async def send_and_count(message: Message) -> None:
            nonlocal accepted
            if message["type"] == "websocket.accept":
                accepted = True
                self.open += 1
            await send(message)

        try:
            await self.app(scope, receive, send_and_count)
        finally:
            if accepted:  # a refused handshake was never counted
                self.open -= 1


def origin_guard(connection, request):
    """Exercise 2: the Origin rule as a ``websockets`` ``process_request``."""
    if origin_allowed(request.headers.get("Origin"), request.headers.get("Host", ""), set()):
        return None  # go on with the WebSocket handshake
    return connection.respond(HTTPStatus.FORBIDDEN, "origin not allowed\n")
