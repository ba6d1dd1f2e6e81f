"""Lesson 04's small JSON API beside the page, the join code at its door, and ``/reach``.

* ``GET /health``: for a load balancer; says how many are in, never who;
* ``GET /api/users``: who is in; in a room with a join code, only for a request that gives it
  (the ``X-Join-Code`` header);
* ``POST /api/token``: a short-lived token for a name, once the join code is right and
  there is room;
* ``GET /reach``: a page with no script, for an instructor's phone to open first.

A room of strangers may be guessed at: wrong join codes are counted per client address
(:class:`~wslab.core.join_code.JoinCodeGuard`) and, past a few a minute, refused with 429 and
``Retry-After``. Behind a proxy the address is the one it forwards, believed only from the
proxies named in ``trusted_proxies`` (:func:`~wslab.core.forwarded.client_address`).
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Callable, Collection
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from ...core.auth import Tokens
from ...core.forwarded import client_address
from ...core.join_code import CodeVerdict, JoinCodeGuard
from ...core.protocol import UsernameError, validate_username
from ..chat import ChatServer

__all__ = ["ROOM_FULL", "Door", "api_routes"]

#: What a newcomer reads when the room is at its cap.
ROOM_FULL = "the room is full, try again in a moment"
#: The header ``GET /api/users`` takes the join code in (a GET has no body, and a URL is logged).
CODE_HEADER = "x-join-code"


@dataclass(kw_only=True)
class Door:
    """Who may come in: the join code, counted per client address, and the room's cap."""

    chat: ChatServer
    guard: JoinCodeGuard
    trusted_proxies: Collection[str] = ()
    #: Seconds a newcomer to a full room is told to wait (``Retry-After``).
    room_full_retry: float = 5.0

    def client(self, request: Request) -> str:
        """The client's address: the peer's, or the one a trusted proxy forwarded."""
        peer = request.client.host if request.client else "unknown"
        return client_address(peer, request.headers.get("x-forwarded-for"), trusted=self.trusted_proxies)

    def refuse_code(self, request: Request, given: object) -> Response | None:
        """None if ``given`` opens the door; else the answer saying why not."""
        check = self.guard.check(given, self.client(request))
        if check.verdict is CodeVerdict.OK:
            return None
        if check.verdict is CodeVerdict.MISSING:
            return JSONResponse({"error": "this room needs its join code", "code_required": True}, 401)
        if check.verdict is CodeVerdict.WRONG:
            wrong = {"error": "that join code is wrong", "code_required": True, "code_wrong": True}
            return JSONResponse(wrong, 401)
        wait = math.ceil(check.retry_after)
        return JSONResponse(
            {"error": f"too many wrong join codes; try again in {wait} s", "retry_after": wait},
            429,
            headers={"retry-after": str(wait)},
        )

    def room_full(self) -> Response:
        wait = math.ceil(self.room_full_retry)
        return JSONResponse(
            {"error": ROOM_FULL, "room_full": True, "retry_after": wait},
            503,
            headers={"retry-after": str(wait)},
        )


def api_routes(door: Door, tokens: Tokens) -> list[Route]:
    """``/health``, ``/api/users``, ``/api/token`` and ``/reach`` for ``door``'s room."""
    room = door.chat.room

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok", "server": room.server_id, "users": len(room.users)})

    async def users(request: Request) -> Response:
        refused = door.refuse_code(request, request.headers.get(CODE_HEADER))
        if refused is not None:
            return refused
        return JSONResponse({"users": room.everyone, "count": room.size, "full": room.full})

    async def token(request: Request) -> Response:
        try:
            body = json.loads(await request.body() or b"{}")
        except json.JSONDecodeError:
            return JSONResponse({"error": 'send JSON: {"name": ..., "code": ...}'}, status_code=400)
        if not isinstance(body, dict):
            return JSONResponse({"error": "send a JSON object"}, status_code=400)
        refused = door.refuse_code(request, body.get("code"))
        if refused is not None:
            return refused
        try:
            name = validate_username(str(body.get("name") or ""))
        except UsernameError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        if room.full and name not in room.members:  # someone already in may always come back
            return door.room_full()
        return JSONResponse({"token": tokens.issue(name), "expires_in": tokens.lifetime})

    return [
        Route("/health", health),
        Route("/api/users", users),
        Route("/api/token", token, methods=["POST"]),
        Route("/reach", _reach(door.client)),
    ]


def _reach(client: Callable[[Request], str]) -> Callable[[Request], object]:
    async def reach(request: Request) -> Response:
        scheme = "HTTPS" if request.url.scheme == "https" else "HTTP"
        page = REACH_PAGE.format(
            scheme=scheme,
            host=html.escape(request.headers.get("host", "?")),
            client=html.escape(client(request)),
        )
        return HTMLResponse(page, headers={"Content-Security-Policy": "default-src 'none'"})

    return reach


#: ``/reach``: no script, no style sheet, nothing to load: if it shows, this device got through.
REACH_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>wslab: you reached the server</title></head>
<body>
<h1>You reached the chat server</h1>
<p>This device got here over {scheme}, at <code>{host}</code>, from the address <code>{client}</code>.</p>
<p>Other devices on this network should get here too: if one cannot, the network keeps devices
apart (client isolation), and the room needs another network (a phone's hotspot).</p>
<p><a href="./">Open the chat</a></p>
</body></html>
"""
