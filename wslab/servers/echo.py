"""Lesson 01's echo server: text comes back as ``Echo: <text>``, binary comes back as is.

Pings need no code here: the websockets library answers every ping with a pong itself,
as RFC 6455 requires, before the handler ever sees a message. Logging needs none either:
:func:`wslab.serve` records traffic underneath the handler.
"""

from __future__ import annotations

from websockets.asyncio.server import ServerConnection


def echo_reply(message: str | bytes) -> str | bytes:
    """What the echo server answers to ``message``."""
    return f"Echo: {message}" if isinstance(message, str) else message


async def echo(connection: ServerConnection) -> None:
    """Answer every message with :func:`echo_reply`, until the client leaves."""
    async for message in connection:
        await connection.send(echo_reply(message))
