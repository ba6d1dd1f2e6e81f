"""Audience mode: the chat app with :data:`~wslab.core.audience.AUDIENCE`'s limits, served for a room.

``python -m wslab serve web --public`` and lesson 04's class room both start it here, so a
class gets the same room either way: 200 people, the application heartbeat on, a six-digit
join code whose wrong guesses are limited per address.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Sequence

from ...core.audience import AUDIENCE, AudienceLimits
from ...core.auth import Tokens
from ...runtime.event_log import EventLog
from ..chat import ChatServer
from .app import create_app
from .runner import AsgiServerHandle, serve_web

__all__ = ["serve_audience"]


async def serve_audience(
    limits: AudienceLimits = AUDIENCE,
    *,
    public: bool,
    join_code: str | None,
    host: str | None = None,
    port: int = 0,
    name: str = "class",
    log: EventLog | None = None,
    tls: tuple[str, str] | None = None,
    allowed_origins: Sequence[str] = (),
    trusted_proxies: Collection[str] = (),
) -> AsgiServerHandle:
    """A chat room for an audience, served at once; its :class:`ChatServer` is the handle's ``chat``.

    Args:
        limits: the room's size, rates, message size, heartbeat and wrong-code limit.
        public: bind every interface (phones on the network can join), else this machine only.
        join_code: what people must enter; None for an open room.
        host: overrides where ``public`` binds.
        tls: ``(certificate file, key file)`` to serve ``https://`` and ``wss://``.
    """
    chat = ChatServer(
        server_id=name,
        max_users=limits.max_users,
        rate=limits.rate,
        heartbeat=limits.heartbeat,
        tokens=Tokens(clock=time.time),
    )
    app = create_app(
        chat,
        join_code=join_code,
        allowed_origins=allowed_origins,
        log=log,
        trusted_proxies=trusted_proxies,
        wrong_codes=limits.wrong_codes,
    )
    where = host if host is not None else "0.0.0.0" if public else "127.0.0.1"
    return await serve_web(app, name=name, host=where, port=port, max_message=limits.max_message, tls=tls)
