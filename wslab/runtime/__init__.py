"""What every asyncio shell stands on: servers that live in a kernel or a script, ports,
waits with deadlines, signals, TLS, logging and the URLs a browser can reach."""

from .closes import close_details, peer_name
from .handles import (
    Handler,
    RecordedConnection,
    ServerHandle,
    WebSocketServerHandle,
    register,
    release,
    running,
    serve,
    serve_until_signalled,
    stop,
    stop_all,
    unregister,
    wait_until,
)

__all__ = [
    "Handler",
    "RecordedConnection",
    "ServerHandle",
    "WebSocketServerHandle",
    "close_details",
    "peer_name",
    "register",
    "release",
    "running",
    "serve",
    "serve_until_signalled",
    "stop",
    "stop_all",
    "unregister",
    "wait_until",
]
