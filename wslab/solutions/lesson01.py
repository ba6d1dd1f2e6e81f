"""Solutions to lesson 01's exercises."""

from __future__ import annotations

from websockets.asyncio.server import ServerConnection


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
