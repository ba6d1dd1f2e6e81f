"""Addresses: a free port to listen on, and ``host:port`` written the one right way.

Part of the I/O-free side of wslab apart from :func:`free_port`, which asks the kernel.
"""

from __future__ import annotations

import socket

__all__ = ["free_port", "host_port", "url"]


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now, on ``host``.

    Only a hint: another program may take it before the caller binds it, so whoever binds it
    must be ready to pick again (a child-process server does, see :mod:`wslab.services`).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def host_port(host: str, port: int) -> str:
    """``host:port``, with an IPv6 host in brackets (``[::1]:9001``) so the port stays readable."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def url(scheme: str, host: str, port: int, path: str = "") -> str:
    """``scheme://host:port`` then ``path`` as given: ``url("ws", "::1", 9001, "/")`` is ``ws://[::1]:9001/``."""
    return f"{scheme}://{host_port(host, port)}{path}"
