"""One exception hierarchy for everything wslab raises on purpose.

Every error a lesson, a server or a test may want to catch derives from :class:`WslabError`.
An error that ends a WebSocket connection says how, so the code that closes the connection
never has to guess: ``close_code`` is the close frame's code (1008, 1013, 4001, ...) and
``reply_code`` the short name sent in a json ``error`` reply (``"name-taken"``), where the
error has one. Both are class attributes that a subclass or an instance may override.

This module is part of the I/O-free core: it imports nothing but the standard library.
"""

from __future__ import annotations

__all__ = ["WslabError"]


class WslabError(Exception):
    """The root of wslab's exceptions.

    Attributes:
        close_code: the WebSocket close code a connection ends with because of this error,
            or None when the error does not end a connection by itself.
        reply_code: the machine-readable ``code`` of the json ``error`` reply that tells
            the client why, or None when no reply is sent.
    """

    close_code: int | None = None
    reply_code: str | None = None
