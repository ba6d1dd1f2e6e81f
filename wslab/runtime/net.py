"""A free port to listen on, asked of the kernel (addresses are :mod:`wslab.core.addresses`)."""

from __future__ import annotations

import socket

__all__ = ["free_port"]


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now, on ``host``.

    Only a hint: another program may take it before the caller binds it, so whoever binds it
    must be ready to pick again (a child-process server does, see :mod:`wslab.services`).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port
