"""Solutions to lesson 03's exercises."""

from __future__ import annotations

import random

from websockets.asyncio.client import connect


def backoff(attempt: int) -> float:
    return random.uniform(0, min(10.0, 0.1 * 2**attempt))


async def collect(url: str, name: str, n: int) -> list[str]:
    async with connect(url) as ws:
        await ws.send(name)
        await ws.recv()  # "Welcome, <name>!"
        return [await ws.recv() for _ in range(n)]
