"""Who may open a WebSocket from a browser: the Origin rule, no I/O.

A browser sends ``Origin`` (the page's scheme, host and port) with every WebSocket
handshake; the server compares it with its own origin, which the request's ``Host`` header
gives, and with an explicit allow-list. Exactly: a prefix or substring test lets in
``https://course.example.evil.example``. A client that is not a browser sends no ``Origin``,
and carries no victim's cookies, so it is let through.
"""

from __future__ import annotations

from collections.abc import Collection
from urllib.parse import urlsplit

__all__ = ["normal_origin", "origin_allowed"]


def normal_origin(origin: str) -> str:
    """``origin`` as compared: lower case, no trailing slash (browsers send neither, others may)."""
    return origin.strip().rstrip("/").lower()


def origin_allowed(origin: str | None, host: str, extra: Collection[str]) -> bool:
    """Whether a handshake with this ``Origin`` may proceed on a server reached as ``host``.

    ``extra`` holds other sites' origins, in :func:`normal_origin` form; ``"*"`` allows any.
    """
    if origin is None:
        return True  # not a browser
    return origin in extra or "*" in extra or urlsplit(origin).netloc == host
