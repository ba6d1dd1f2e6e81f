"""Lesson 04's application: the chat page, a small JSON API and the chat's WebSocket, on one port.

* ``GET /`` the browser chat page, ``/static/*`` its script and style;
* ``GET /health`` and ``GET /api/users``, a small JSON API;
* ``POST /api/token``: a short-lived token for a username (and the room's join code);
* ``/ws``: lesson 02's chat, the same :class:`~wslab.servers.chat.ChatServer` as on the
  :mod:`websockets` server, reached through :class:`~wslab.servers.asgi_peer.AsgiPeer`.

One middleware stack (:mod:`.middleware`) serves both kinds of request.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from importlib import resources

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket

from ...core.auth import Tokens
from ...core.protocol import UsernameError, validate_username
from ...runtime.event_log import EventLog
from ..asgi_peer import AsgiPeer
from ..chat import ChatServer
from .middleware import AccessLog, OriginGuard

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


def _json_api(chat: ChatServer, tokens: Tokens, join_code: str | None) -> list[Route]:
    """The small JSON API beside the page: health, who is here, and a token for a name."""

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok", "server": chat.room.server_id, "users": len(chat.room.users)})

    async def users(request: Request) -> Response:
        return JSONResponse({"users": chat.room.everyone, "count": chat.room.size, "full": chat.room.full})

    async def token(request: Request) -> Response:
        try:
            body = json.loads(await request.body() or b"{}")
        except json.JSONDecodeError:
            return JSONResponse({"error": 'send JSON: {"name": ..., "code": ...}'}, status_code=400)
        if not isinstance(body, dict):
            return JSONResponse({"error": "send a JSON object"}, status_code=400)
        if join_code is not None and str(body.get("code") or "") != join_code:
            return JSONResponse(
                {"error": "this room needs its join code", "code_required": True}, status_code=401
            )
        try:
            name = validate_username(str(body.get("name") or ""))
        except UsernameError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse({"token": tokens.issue(name), "expires_in": tokens.lifetime})

    return [
        Route("/health", health),
        Route("/api/users", users),
        Route("/api/token", token, methods=["POST"]),
    ]


def create_app(
    chat: ChatServer,
    *,
    tokens: Tokens | None = None,
    join_code: str | None = None,
    allowed_origins: Sequence[str] = (),
    log: EventLog | None = None,
) -> Starlette:
    """The lesson's web app around ``chat``.

    Args:
        chat: the chat room behind ``/ws``; its ``tokens`` are used (and set if missing).
        tokens: signs the tokens ``POST /api/token`` hands out.
        join_code: if set, ``POST /api/token`` wants it (a classroom's shared code).
        allowed_origins: other sites' origins allowed to use the API and the WebSocket,
            e.g. ``["https://course.example"]``; the app's own origin always is.
        log: an :class:`EventLog` for the access log (the notebook shows it live).
    """
    tokens = tokens or chat.room.tokens or Tokens(clock=time.time)
    chat.room.require_tokens(tokens)

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

    routes = [
        *page_routes("chat.html"),
        *_json_api(chat, tokens, join_code),
        WebSocketRoute("/ws", websocket_endpoint),
    ]
    middleware = [
        Middleware(AccessLog, log=log),
        Middleware(
            CORSMiddleware,
            allow_origins=list(allowed_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["content-type"],
        ),
        Middleware(OriginGuard, allowed=allowed_origins),
    ]
    app = Starlette(routes=routes, middleware=middleware)
    app.state.chat = chat
    app.state.tokens = tokens
    return app
