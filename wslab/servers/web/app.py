"""Lesson 04's application: the chat page, a small JSON API and the chat's WebSocket, on one port.

* ``GET /`` the browser chat page, ``/static/*`` its script and style;
* ``GET /health``, ``GET /api/users``, ``POST /api/token`` and ``GET /reach`` (:mod:`.api`);
* ``/ws``: lesson 02's chat, the same :class:`~wslab.servers.chat.ChatServer` as on the
  :mod:`websockets` server, reached through :class:`~wslab.servers.asgi_peer.AsgiPeer`;
* ``POST /api/stream`` and ``POST /api/send``: the same chat over plain HTTP, for networks
  that refuse WebSockets (:mod:`.stream`).

One middleware stack (:mod:`.middleware`) serves every kind of request.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Sequence
from importlib import resources

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket

from ...core.audience import AUDIENCE
from ...core.auth import Tokens
from ...core.join_code import JoinCodeGuard
from ...core.limits import AttemptLimit
from ...core.origins import origin_allowed
from ...runtime.event_log import EventLog
from ..asgi_peer import AsgiPeer
from ..chat import ChatServer
from .api import Door, api_routes
from .middleware import AccessLog, OriginGuard, OriginRule
from .stream import STREAM_PATHS, stream_routes

__all__ = ["CONTENT_SECURITY_POLICY", "create_app", "page_routes"]

#: The page loads nothing from anywhere else, so the policy can be this strict.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; connect-src 'self' ws: wss:; base-uri 'none'; frame-ancestors 'none'"
)


async def _no_favicon(request: Request) -> Response:
    return Response(status_code=204)  # no icon; say so instead of a 404 in every console


def page_routes(page: str) -> list[BaseRoute]:
    """``/``: a page from wslab's static files, under :data:`CONTENT_SECURITY_POLICY`; the files
    it loads under ``/static``; and ``/favicon.ico`` answered with nothing."""
    static = resources.files("wslab").joinpath("static")
    html = static.joinpath(page).read_text(encoding="utf-8")

    async def index(request: Request) -> Response:
        return HTMLResponse(html, headers={"Content-Security-Policy": CONTENT_SECURITY_POLICY})

    return [
        Route("/", index),
        Route("/favicon.ico", _no_favicon),
        Mount("/static", StaticFiles(directory=str(static)), name="static"),
    ]


def _chat_websocket(chat: ChatServer) -> WebSocketRoute:
    """``/ws``: the chat, refused with HTTP 503 before the upgrade when the room is full."""

    async def websocket_endpoint(websocket: WebSocket) -> None:
        if chat.room.full:
            await websocket.send_denial_response(
                PlainTextResponse(
                    f"the room is full ({chat.room.max_users} people); try again later\n", status_code=503
                )
            )
            return
        await websocket.accept()
        peer = AsgiPeer(websocket)
        try:
            await chat.serve_peer(peer)
        finally:
            await peer.finish()

    return WebSocketRoute("/ws", websocket_endpoint)


def _middleware(
    log: EventLog | None, allowed_origins: Sequence[str], origin_rule: OriginRule | None
) -> list[Middleware]:
    """One stack for every request, HTTP and WebSocket: the access log, CORS, the Origin guard."""
    return [
        Middleware(AccessLog, log=log),
        Middleware(
            CORSMiddleware,
            allow_origins=list(allowed_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["content-type", "x-join-code"],
        ),
        Middleware(
            OriginGuard, allowed=allowed_origins, rule=origin_rule or origin_allowed, http_paths=STREAM_PATHS
        ),
    ]


def create_app(
    chat: ChatServer,
    *,
    tokens: Tokens | None = None,
    join_code: str | None = None,
    allowed_origins: Sequence[str] = (),
    origin_rule: OriginRule | None = None,
    log: EventLog | None = None,
    trusted_proxies: Collection[str] = (),
    wrong_codes: tuple[float, float] = AUDIENCE.wrong_codes,
    room_full_retry: float = 5.0,
) -> Starlette:
    """The lesson's web app around ``chat``.

    Args:
        chat: the chat room behind ``/ws``; its ``tokens`` are used (and set if missing).
        tokens: signs the tokens ``POST /api/token`` hands out.
        join_code: if set, ``POST /api/token`` and ``GET /api/users`` want it (a classroom's
            shared code).
        allowed_origins: other sites' origins allowed to use the API and the WebSocket,
            e.g. ``["https://course.example"]``; the app's own origin always is.
        origin_rule: decides each handshake's ``Origin`` (:class:`OriginGuard`'s own by default).
        log: an :class:`EventLog` for the access log (the notebook shows it live).
        trusted_proxies: addresses of the proxies whose ``X-Forwarded-For`` names the client.
        wrong_codes: ``(per minute, burst)`` wrong join codes allowed per client address.
        room_full_retry: seconds a newcomer to a full room is told to wait (``Retry-After``).
    """
    tokens = tokens or chat.room.tokens or Tokens(clock=time.time)
    chat.room.require_tokens(tokens)
    limit = AttemptLimit(per_minute=wrong_codes[0], burst=wrong_codes[1], clock=time.monotonic)
    door = Door(
        chat=chat,
        guard=JoinCodeGuard(code=join_code, limit=limit),
        trusted_proxies=frozenset(trusted_proxies),
        room_full_retry=room_full_retry,
    )

    routes = [
        *page_routes("chat.html"),
        *api_routes(door, tokens),
        _chat_websocket(chat),
        *stream_routes(chat, room_full=door.room_full),
    ]
    middleware = _middleware(log, allowed_origins, origin_rule)
    app = Starlette(routes=routes, middleware=middleware)
    app.state.chat = chat
    app.state.tokens = tokens
    app.state.door = door
    return app
