"""Solutions to lesson 03's exercises, and section 4's client with exercise 3's answer."""

from __future__ import annotations

import contextlib
import itertools
import json
import random
from collections.abc import Generator
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed


def backoff(attempt: int) -> float:
    ceiling = min(10.0, 0.1 * 2**attempt)
    return ceiling / 2 + random.uniform(0, ceiling / 2)  # equal jitter: never less than half


async def collect(url: str, name: str, n: int) -> list[str]:
    async with connect(url) as ws:
        await ws.send(name)
        await ws.recv()  # "Welcome, <name>!"
        return [await ws.recv(decode=True) for _ in range(n)]


def jittered_delays(first: float = 0.05, factor: float = 2, cap: float = 2.0) -> Generator[float, None, None]:
    """Reconnection delays: exponential, capped, each one at random below its ceiling (full jitter)."""
    ceiling = first
    while True:
        yield random.uniform(0, ceiling)
        ceiling = min(cap, ceiling * factor)


class ResumingClient:
    """Section 4's client; exercise 3: it stops for good when the server closes with 1008."""

    def __init__(self, url: str, name: str) -> None:
        self.url, self.name = url, name
        self.events: list[dict[str, Any]] = []
        self.last: int | None = None
        self.outbox: dict[str, str] = {}
        self.refs = itertools.count(1)
        self.connection: ClientConnection | None = None

    async def run(self) -> None:
        async for connection in connect(self.url, reconnect_delays=lambda: jittered_delays()):
            resume = {} if self.last is None else {"resume": self.last}
            await connection.send(json.dumps({"type": "hello", "name": self.name, **resume}))
            try:
                async for raw in connection:
                    await self.receive(connection, json.loads(raw))
            except ConnectionClosed:
                pass
            self.connection = None
            if connection.close_code == 1008:  # the answer: refused (policy), so do not come back
                return

    async def send(self, text: str) -> None:
        ref = f"{self.name}-{next(self.refs)}"
        self.outbox[ref] = text
        if self.connection is not None:
            with contextlib.suppress(ConnectionClosed):
                await self.connection.send(json.dumps({"type": "chat", "text": text, "ref": ref}))

    def texts(self, author: str | None = None) -> list[str]:
        return [e["text"] for e in self.events if e["type"] == "chat" and author in (None, e["name"])]

    async def receive(self, connection: ClientConnection, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "ack":
            text = self.outbox.pop(message["ref"], None)
            message, kind = {"type": "chat", "name": self.name, "text": text, "seq": message["seq"]}, "chat"
        if kind in ("chat", "join", "leave"):
            if message["seq"] > (self.last or 0):
                self.events.append(message)
                self.last = message["seq"]
        elif kind == "welcome" and self.last is None:
            self.last = message["seq"]
        elif kind == "live":
            sent: set[str] = set()
            while unsent := [ref for ref in self.outbox if ref not in sent]:
                for ref in unsent:
                    await connection.send(json.dumps({"type": "chat", "text": self.outbox[ref], "ref": ref}))
                    sent.add(ref)
            self.connection = connection
