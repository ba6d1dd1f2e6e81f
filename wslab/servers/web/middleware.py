"""The middleware lesson 04's app puts in front of every request, HTTP and WebSocket alike.

:class:`AccessLog` logs each request and connection without its query string;
:class:`OriginGuard` refuses a cross-site page's WebSocket with HTTP 403 before the upgrade.
Both are plain ASGI middleware: they work in front of any ASGI app.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ...core.connection_log import LogKind
from ...core.origins import normal_origin, origin_allowed
from ...runtime.event_log import EventLog

__all__ = ["AccessLog", "OriginGuard", "OriginRule"]

#: ``rule(origin, host, extra)``: may a handshake with this ``Origin`` proceed on a server
#: reached as ``host``, given the other sites' origins in ``extra``?
OriginRule = Callable[[str | None, str, set[str]], bool]

logger = logging.getLogger("wslab.web")


def _client(scope: Scope) -> str:
    client = scope.get("client")
    return f"{client[0]}:{client[1]}" if client else "unknown"


class AccessLog:
    """Logs every HTTP request and WebSocket connection: method, path, outcome, time.

    Only the path is logged, never the query string: tokens and other secrets put in
    URLs are exactly what ends up in logs. (The page sends its token inside the first
    WebSocket message instead.)
    """

    def __init__(self, app: ASGIApp, *, log: EventLog | None = None) -> None:
        self.app = app
        self.log = log

    def _record(self, scope: Scope, text: str) -> None:
        if scope.get("query_string"):
            text += "  (query string not logged)"
        logger.info("%s %s", _client(scope), text)
        if self.log is not None:
            self.log.record(LogKind.NOTE, _client(scope), text=text)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            started = time.perf_counter()
            status: list[int] = []

            async def send_http(message: Message) -> None:
                if message["type"] == "http.response.start":
                    status.append(message["status"])
                await send(message)

            try:
                await self.app(scope, receive, send_http)
            finally:
                took = (time.perf_counter() - started) * 1000
                self._record(
                    scope,
                    f"HTTP {scope['method']} {scope['path']} {status[0] if status else 500} {took:.1f} ms",
                )
        elif scope["type"] == "websocket":
            outcome: list[str] = []

            async def send_ws(message: Message) -> None:
                kind = message["type"]
                if kind == "websocket.accept":
                    outcome.append("accepted")
                    self._record(scope, f"WS {scope['path']} accepted")
                elif kind == "websocket.http.response.start":
                    outcome.append(str(message["status"]))
                    self._record(scope, f"WS {scope['path']} refused: HTTP {message['status']}")
                elif kind == "websocket.close" and not outcome:
                    outcome.append("403")
                    self._record(scope, f"WS {scope['path']} refused: HTTP 403")
                elif kind == "websocket.close":
                    outcome.append(f"closed {message.get('code', 1000)}")
                await send(message)

            await self.app(scope, receive, send_ws)
        else:
            await self.app(scope, receive, send)


class OriginGuard:
    """Refuses WebSocket handshakes from pages of other sites, with HTTP 403.

    Browsers attach cookies to a WebSocket handshake whatever page opens it, and the
    same-origin policy does not apply to WebSockets: without this check, any site a user
    visits could open a connection as that user (cross-site WebSocket hijacking). A
    browser always sends ``Origin``; clients that are not browsers usually send none, and
    are let through (they carry no victim's cookies).

    Behind jupyter-server-proxy the page's origin is the Jupyter server's and the proxy forwards
    ``Host``: the rule holds as it is. Locally an in-notebook client needs ``notebook_origins()``.

    The decision is ``rule`` (:func:`wslab.core.origins.origin_allowed` unless given: lesson 04
    passes the learner's), applied to the normalised ``Origin``, ``Host`` and ``allowed``.
    ``http_paths`` are HTTP routes that stand in for the WebSocket (the page's plain-HTTP
    fallback): the same rule guards them.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        allowed: Sequence[str] = (),
        rule: OriginRule = origin_allowed,
        http_paths: Sequence[str] = (),
    ) -> None:
        self.app = app
        self.allowed = {normal_origin(origin) for origin in allowed}
        self.rule = rule
        self.http_paths = frozenset(http_paths)

    def permits(self, scope: Scope) -> bool:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        origin = headers.get("origin")
        host = headers.get("host", "").lower()
        return bool(self.rule(None if origin is None else normal_origin(origin), host, self.allowed))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket" and not self.permits(scope):
            refusal = PlainTextResponse("origin not allowed\n", status_code=403)
            if "websocket.http.response" in scope.get("extensions", {}):
                await refusal(scope, receive, send)
            else:
                await send({"type": "websocket.close", "code": 1008, "reason": "origin not allowed"})
            return
        if scope["type"] == "http" and scope["path"] in self.http_paths and not self.permits(scope):
            await PlainTextResponse("origin not allowed\n", status_code=403)(scope, receive, send)
            return
        await self.app(scope, receive, send)
