"""Solutions to lesson 05: the blank (the Rust tutorial's heartbeat, in Python) and the
exercises (a heartbeat for which every message counts, and the client's watchdog)."""

from __future__ import annotations

import asyncio
import time

from websockets.asyncio.client import ClientConnection
from websockets.asyncio.server import ServerConnection


async def heartbeat(connection: ServerConnection, interval: float, timeout: float) -> None:
    """Ping every ``interval``; abort the connection once no pong came for ``timeout``."""
    last_pong = time.monotonic()

    def pong_arrived(pong: asyncio.Future[float]) -> None:
        nonlocal last_pong
        if not pong.cancelled() and pong.exception() is None:  # a pong, not a closing connection
            last_pong = time.monotonic()

    while True:
        await asyncio.sleep(interval)
        if time.monotonic() - last_pong > timeout:
            connection.transport.abort()  # dead: a close handshake would wait for an answer
            return
        pong = await connection.ping()  # a future, done when the pong comes back
        pong.add_done_callback(pong_arrived)  # type: ignore[attr-defined]  # typed as a mere Awaitable


async def every_message_counts(
    connection: ServerConnection, *, interval: float = 0.3, timeout: float = 0.9
) -> None:
    """Echo; ping only a client that has been silent for ``interval``; drop it after ``timeout``."""
    last_heard = time.monotonic()

    def heard(pong: asyncio.Future[float] | None = None) -> None:
        nonlocal last_heard
        if pong is None or (not pong.cancelled() and pong.exception() is None):
            last_heard = time.monotonic()

    async def heartbeat() -> None:
        while True:
            quiet_for = time.monotonic() - last_heard
            if quiet_for > timeout:
                connection.transport.abort()  # dead: a close handshake would wait for an answer
                return
            if quiet_for >= interval:
                pong = asyncio.ensure_future(await connection.ping())  # done when the pong comes
                pong.add_done_callback(heard)
                await asyncio.sleep(interval)  # one ping per interval while the silence lasts
            else:
                await asyncio.sleep(interval - quiet_for)  # until the silence would reach `interval`

    beat = asyncio.create_task(heartbeat())
    try:
        async for message in connection:
            heard()  # any message is a sign of life, not only a pong
            await connection.send(f"Echo: {message}")
    finally:
        beat.cancel()


async def watchdog(ws: ClientConnection, timeout: float) -> list[str | bytes]:
    """Collect messages until the server has been silent for ``timeout``; then drop the connection."""
    received: list[str | bytes] = []
    while True:
        try:
            received.append(await asyncio.wait_for(ws.recv(), timeout))  # cancelling recv() loses nothing
        except TimeoutError:
            ws.transport.abort()  # the silent server would never answer a close frame
            return received
