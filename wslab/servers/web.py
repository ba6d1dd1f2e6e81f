"""Lesson 04: HTTP and WebSockets on one port, in a Starlette application.

The original tutorial's point with Axum: a web app's WebSocket endpoint lives on the same
port as its HTTP routes and goes through the same middleware. Here that is a Starlette
app served by uvicorn, with:

* ``GET /`` the browser chat page, ``/static/*`` its script and style;
* ``GET /health`` and ``GET /api/users``, a small JSON API;
* ``POST /api/token``: a short-lived token for a username (and the room's join code);
* ``/ws``: lesson 02's chat, the same :class:`~wslab.servers.chat.ChatServer` as on the
  :mod:`websockets` server, reached through :class:`AsgiPeer`.

One middleware stack serves both kinds of request: an access log that never records
query strings, CORS for the HTTP API, and an Origin allow-list that refuses a cross-site
page's WebSocket with HTTP 403 before the upgrade.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import time
from collections.abc import Sequence
from importlib import resources
from typing import Any
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocket

from ..core.auth import Tokens
from ..core.connection_log import LogKind
from ..core.protocol import UsernameError, validate_username
from ..runtime.event_log import EventLog
from ..runtime.handles import ServerHandle, register, release, wait_until
from .asgi_peer import AsgiPeer
from .chat import ChatServer

__all__ = ["AsgiServerHandle", "create_app", "page_routes", "serve_web"]

logger = logging.getLogger("wslab.web")


class _DenialNoise(logging.Filter):
    """uvicorn's sans-I/O WebSockets log an error after every refused handshake (HTTP 403 or
    503 sent on purpose through the denial-response extension); that is not an error here."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "returned without completing handshake" not in record.getMessage()


class _NoQueryStrings(logging.Filter):
    """uvicorn logs each WebSocket request's path with its query string (``"WebSocket
    /ws?token=..." [accepted]``, at INFO), and so does the websockets protocol's debug log:
    keep the path, drop the query, as :class:`AccessLog` does."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(_without_query(arg) for arg in record.args)
        return True


def _without_query(arg: object) -> object:
    if isinstance(arg, str) and arg.startswith("/") and "?" in arg:
        return f"{arg.partition('?')[0]}?(not logged)"
    return arg


# Quiet unless the user configures logging (as the command line does): in a kernel, stray
# records from background tasks would land in whichever cell happens to run.
logging.getLogger("uvicorn").addHandler(logging.NullHandler())
logging.getLogger("uvicorn.error").addFilter(_DenialNoise())
logging.getLogger("uvicorn.error").addFilter(_NoQueryStrings())

#: The page loads nothing from anywhere else, so the policy can be this strict.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; connect-src 'self' ws: wss:; base-uri 'none'; frame-ancestors 'none'"
)


# --------------------------------------------------------------------------------------
# Middleware shared by HTTP and WebSocket requests
# --------------------------------------------------------------------------------------


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
    """

    def __init__(self, app: ASGIApp, *, allowed: Sequence[str] = ()) -> None:
        self.app = app
        self.allowed = {origin.rstrip("/").lower() for origin in allowed}

    def permits(self, scope: Scope) -> bool:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        origin = headers.get("origin")
        if origin is None:
            return True
        origin = origin.rstrip("/").lower()
        if origin in self.allowed or "*" in self.allowed:
            return True
        return urlsplit(origin).netloc == headers.get("host", "").lower()  # same origin as the page

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket" and not self.permits(scope):
            refusal = PlainTextResponse("origin not allowed\n", status_code=403)
            if "websocket.http.response" in scope.get("extensions", {}):
                await refusal(scope, receive, send)
            else:
                await send({"type": "websocket.close", "code": 1008, "reason": "origin not allowed"})
            return
        await self.app(scope, receive, send)


# --------------------------------------------------------------------------------------
# The application
# --------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------
# Serving it: in a kernel, a script or the command line
# --------------------------------------------------------------------------------------


def _server_class() -> type:
    import uvicorn

    class KernelServer(uvicorn.Server):
        """uvicorn without its signal handlers: in a Jupyter kernel, SIGINT is the
        kernel's own interrupt, and a script stops through :func:`serve_until_signalled`."""

        @contextlib.contextmanager
        def capture_signals(self):  # type: ignore[no-untyped-def]
            yield

    return KernelServer


class AsgiServerHandle(ServerHandle):
    """A uvicorn server running an ASGI app in this event loop."""

    scheme = "http"

    def __init__(
        self,
        name: str,
        server: Any,
        sock: socket.socket,
        task: asyncio.Task[None],
        chat: ChatServer | None,
        *,
        log: EventLog | None = None,
    ) -> None:
        super().__init__(name, sock.getsockname(), log=log)
        self.server = server
        self._socket = sock
        self._task = task
        self.chat = chat

    @property
    def ws_url(self) -> str:
        return self.url.replace("http", "ws", 1) + "ws"

    @property
    def connections(self) -> int:
        return (
            len(self.chat.room.users) if self.chat is not None else len(self.server.server_state.connections)
        )

    @property
    def serving(self) -> bool:
        return self.server.started and not self._task.done()

    async def _close(self, code: int, reason: str) -> None:
        if self.chat is not None:
            await self.chat.close_connections(code, reason)
        self.server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._socket.close()


async def serve_web(
    app: Starlette,
    *,
    name: str = "web",
    host: str = "127.0.0.1",
    port: int = 0,
    max_message: int = 64 * 1024,
    ping_interval: float | None = 20.0,
    ping_timeout: float | None = 20.0,
) -> AsgiServerHandle:
    """Serve ``app`` with uvicorn in the running event loop and return at once.

    Re-run safe like :func:`wslab.runtime.serve`: a server of this process already under
    ``name`` or on ``port`` is stopped first. WebSockets use uvicorn's implementation on
    top of the :mod:`websockets` sans-I/O protocol; messages over ``max_message`` bytes
    close the connection with 1009.
    """
    import uvicorn

    await release(name, host, port)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    sock.setblocking(False)
    config = uvicorn.Config(
        app,
        ws="websockets-sansio",
        ws_max_size=max_message,
        ws_ping_interval=ping_interval,
        ws_ping_timeout=ping_timeout,
        lifespan="off",
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=5,
    )
    server = _server_class()(config)
    task = asyncio.get_running_loop().create_task(server.serve(sockets=[sock]), name=f"uvicorn-{name}")
    await wait_until(lambda: server.started or task.done(), timeout=10)
    if task.done():
        sock.close()
        task.result()  # raises what stopped it
        raise RuntimeError("uvicorn stopped before it started")
    chat = getattr(app.state, "chat", None)
    handle = AsgiServerHandle(name, server, sock, task, chat)
    if chat is not None:
        await chat.attach()
        handle.on_stop(chat.detach)
    return register(handle)
