"""Solutions to lesson 01: the blanks (the echo handler, the accept key) and the exercises."""

from __future__ import annotations

import base64
import hashlib

from websockets.asyncio.server import ServerConnection

from ..core.handshake import GUID


async def echo(connection: ServerConnection) -> None:
    """Answer each message: text as ``Echo: <text>``, binary unchanged."""
    async for message in connection:
        if isinstance(message, str):
            await connection.send(f"Echo: {message}")
        else:
            await connection.send(message)


def accept_key(key: str) -> str:
    """The ``Sec-WebSocket-Accept`` a server answers to this ``Sec-WebSocket-Key``."""
    return base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()


async def reverse(connection: ServerConnection) -> None:
    async for message in connection:
        if isinstance(message, str):
            await connection.send(message[::-1])
        else:
            await connection.send(f"{len(message)} bytes")


async def numbered_echo(connection: ServerConnection) -> None:
    count = 0  # one counter per connection: it lives in this call of the handler
    async for message in connection:
        count += 1
        await connection.send(f"{count}: {message}")


async def polite_quit(connection: ServerConnection) -> None:
    async for message in connection:
        if message == "/quit":
            await connection.close(1000, "bye")
            return
        await connection.send(f"Echo: {message}")
