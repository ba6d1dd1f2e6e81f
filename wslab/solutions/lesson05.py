"""Solution to lesson 05's exercise: the tutorial's heartbeat around the echo loop."""

from __future__ import annotations

import asyncio

from websockets.asyncio.server import ServerConnection

from ..heartbeat import HeartbeatPolicy
from ..keepalive import keep_alive


async def heartbeat_echo(connection: ServerConnection) -> None:
    beat = asyncio.create_task(keep_alive(connection, HeartbeatPolicy(interval=0.3, timeout=0.9)))
    try:
        async for message in connection:
            await connection.send(f"Echo: {message}")
    finally:
        beat.cancel()
