"""Solutions to lesson 03: the blanks (the tutorial's client, jittered delays, the outbox resent on
``live``) and the exercises.

Section 4's client is repeated here whole (its given parts too), so that the reference runs
on its own: a check hands it to the cells below until the learner's passes.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import random
from collections.abc import Generator
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, ConnectionClosedError

from ..runtime.closes import close_details

# Section 1: the tutorial's client, one task reading while the other writes


async def tutorial_client(url: str, name: str, stdin: asyncio.Queue[str]) -> None:
    """The Rust tutorial's client: send the name, then print what arrives while sending each typed line."""
    async with connect(url) as ws:
        response = ws.response
        assert response is not None  # set once the handshake is done, as it is inside the block
        print("connected; handshake response:", response.status_code, response.reason_phrase)
        await ws.send(name)

        async def read() -> None:
            try:
                async for message in ws:
                    print(message)
            except ConnectionClosedError as exc:
                print("error:", exc)
            code, _, who = close_details(ws, us="client", them="server")
            print(f"connection closed {who}, code {code}")

        reader = asyncio.create_task(read())
        while True:
            line = (await stdin.get()).strip()
            if line == "/quit":
                break
            if line:
                await ws.send(line)
        await ws.close()  # a close frame with code 1000
        await reader


# Section 4: delays with full jitter, and a client that reconnects, resumes and resends


def jittered_delays(first: float = 0.05, factor: float = 2, cap: float = 2.0) -> Generator[float, None, None]:
    """Reconnection delays: exponential, capped, each one at random below its ceiling (full jitter)."""
    ceiling = first
    while True:
        yield random.uniform(0, ceiling)
        ceiling = min(cap, ceiling * factor)


class ResumingClient:
    """A json chat client that reconnects, resumes after the last seq it saw, and resends its outbox."""

    def __init__(self, url: str, name: str) -> None:
        self.url, self.name = url, name
        self.events: list[dict[str, Any]] = []
        self.last: int | None = None
        self.outbox: dict[str, str] = {}
        self.refs = itertools.count(1)
        self.connection: ClientConnection | None = None

    async def run(self) -> None:
        async for connection in connect(self.url, reconnect_delays=jittered_delays):
            await self.converse(connection)

    async def converse(self, connection: ClientConnection) -> None:
        """One connection: the hello (resuming after the last seq seen), then every message."""
        resume = {} if self.last is None else {"resume": self.last}
        await connection.send(json.dumps({"type": "hello", "name": self.name, **resume}))
        try:
            async for raw in connection:
                await self.receive(connection, json.loads(raw))
        except ConnectionClosed:
            pass
        self.connection = None

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
            await self.resend(connection)

    async def resend(self, connection: ClientConnection) -> None:
        """Live again: send what the outbox still holds, oldest first, then let send() write directly."""
        sent: set[str] = set()
        while unsent := [ref for ref in self.outbox if ref not in sent]:  # what send() adds meanwhile too
            for ref in unsent:
                await connection.send(json.dumps({"type": "chat", "text": self.outbox[ref], "ref": ref}))
                sent.add(ref)
        self.connection = connection


# The exercises


def equal_jitter(attempt: int) -> float:
    ceiling = min(10.0, 0.1 * 2**attempt)
    return ceiling / 2 + random.uniform(0, ceiling / 2)  # equal jitter: never less than half


async def collect(url: str, name: str, n: int) -> list[str]:
    async with connect(url) as ws:
        await ws.send(name)
        await ws.recv()  # "Welcome, <name>!"
        return [await ws.recv(decode=True) for _ in range(n)]


class PoliteClient(ResumingClient):
    """Exercise 3: a client that stops for good when the server closes with 1008."""

    async def run(self) -> None:
        async for connection in connect(self.url, reconnect_delays=jittered_delays):
            await self.converse(connection)
            if connection.close_code == 1008:  # refused (policy): coming back would be refused again
                return
