"""Lesson 04: HTTP and WebSockets on one port, in a Starlette application served by uvicorn.

The original tutorial's point with Axum: a web app's WebSocket endpoint lives on the same
port as its HTTP routes and goes through the same middleware. :mod:`.middleware` is that
middleware (an access log that never records query strings, an Origin allow-list),
:mod:`.app` the application around the chat, :mod:`.runner` uvicorn in the kernel's loop.
"""

from .app import CONTENT_SECURITY_POLICY, create_app, page_routes
from .middleware import AccessLog, OriginGuard
from .runner import AsgiServerHandle, serve_web

__all__ = [
    "CONTENT_SECURITY_POLICY",
    "AccessLog",
    "AsgiServerHandle",
    "OriginGuard",
    "create_app",
    "page_routes",
    "serve_web",
]
