"""The lessons' servers, asyncio shells over :mod:`wslab.core`: the echo handler (lesson 01),
the chat server (``chat.py``, with ``peers.py``, lessons 02-06), HTTP and WebSockets on one
port (``web/``, lesson 04, and its audience mode), the fleet dashboard (``dashboard.py``, ``fleet_feed.py``,
lesson 07) and a small load balancer (``balancer.py``, lesson 08).

Each name below loads its module on first use (starlette and uvicorn only for the web ones);
:func:`echo` is imported at once, since its module has its name.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..imports import lazy_exports
from .echo import echo

if TYPE_CHECKING:
    from .balancer import Balancer
    from .chat import ChatServer
    from .chat_cluster import start_chat_servers
    from .dashboard import serve_dashboard
    from .fleet_feed import FleetFeed
    from .web.app import create_app
    from .web.audience import serve_audience
    from .web.middleware import OriginGuard
    from .web.runner import serve_web

__all__ = [
    "Balancer",
    "ChatServer",
    "FleetFeed",
    "OriginGuard",
    "create_app",
    "echo",
    "serve_audience",
    "serve_dashboard",
    "serve_web",
    "start_chat_servers",
]

lazy_exports(
    globals(),
    {
        "Balancer": ".balancer",
        "ChatServer": ".chat",
        "FleetFeed": ".fleet_feed",
        "OriginGuard": ".web.middleware",
        "create_app": ".web.app",
        "serve_audience": ".web.audience",
        "serve_dashboard": ".dashboard",
        "serve_web": ".web.runner",
        "start_chat_servers": ".chat_cluster",
    },
)
