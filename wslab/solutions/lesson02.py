"""Solutions to lesson 02's exercises."""

from __future__ import annotations

import asyncio
import contextlib
import json
import unicodedata
from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed


def find_gaps(seqs: list[int]) -> list[tuple[int, int]]:
    gaps: list[tuple[int, int]] = []
    last: int | None = None
    for seq in seqs:
        if last is not None and seq > last + 1:
            gaps.append((last + 1, seq - 1))
        if last is None or seq > last:
            last = seq
    return gaps


def validate(name: str, taken: set[str]) -> str:
    name = name.strip()
    if not name:
        raise ValueError("a username cannot be empty")
    if len(name) > 32:
        raise ValueError("a username has at most 32 characters")
    if any(unicodedata.category(ch) == "Cc" for ch in name):
        raise ValueError("a username cannot contain control characters")
    if name.casefold() in {other.casefold() for other in taken}:
        raise ValueError(f"the username {name!r} is already taken")
    return name


# Exercise 3: the tutorial's room, where a lagging client is closed with 4001 instead of going deaf


class Lagged(Exception):
    """tokio's ``Err(RecvError::Lagged(n))``: ``n`` values were overwritten before this receiver read them."""

    def __init__(self, n: int) -> None:
        super().__init__(f"lagged: {n} values skipped")
        self.n = n


class BroadcastChannel:
    """``tokio::sync::broadcast``: one ring of ``capacity`` slots, shared by every receiver."""

    def __init__(self, capacity: int = 256) -> None:
        self.capacity = capacity
        self.ring: list[Any] = [None] * capacity
        self.tail = 0  # how many values were ever sent; the next goes to ring[tail % capacity]
        self.sent = asyncio.Event()

    def send(self, value: Any) -> None:  # never waits: when the ring is full, the oldest is overwritten
        self.ring[self.tail % self.capacity] = value
        self.tail += 1
        self.sent.set()
        self.sent = asyncio.Event()

    def subscribe(self) -> Receiver:
        return Receiver(self)


class Receiver:
    def __init__(self, channel: BroadcastChannel) -> None:
        self.channel = channel
        self.next = channel.tail  # a new receiver sees only values sent after subscribe()

    async def recv(self) -> Any:
        channel = self.channel
        while self.next == channel.tail:
            await channel.sent.wait()
        oldest = channel.tail - channel.capacity
        if self.next < oldest:
            skipped, self.next = oldest - self.next, oldest
            raise Lagged(skipped)
        value = channel.ring[self.next % channel.capacity]
        self.next += 1
        return value


channel = BroadcastChannel(256)


async def chat_4001(connection: ServerConnection) -> None:
    receiver = channel.subscribe()
    name = str(await connection.recv()).strip()
    await connection.send(f"Welcome, {name}!")
    channel.send(("system", f">>> {name} joined the chat"))

    async def forward() -> None:
        try:
            while True:
                author, text = await receiver.recv()
                if author != name:
                    await connection.send(f"[{author}] {text}")
        except Lagged as lagged:  # told, at last: close so the client knows, instead of going deaf
            await connection.close(4001, f"too slow: {lagged.n} messages lost")
        except ConnectionClosed:
            pass

    forwarder = asyncio.create_task(forward())
    try:
        async for message in connection:
            text = str(message).strip()
            if text:
                channel.send((name, text))
    finally:
        forwarder.cancel()
        channel.send(("system", f">>> {name} left the chat"))


# Exercise 4: section 3's resuming room, telling a client which events are gone


class ResumingRoom:
    """The room's rules, no I/O: number each event, keep a bounded history, find who fell behind."""

    def __init__(self, history: int = 10_000, max_lag: int = 256) -> None:
        self.seq = 0
        self.history: list[tuple[int, str]] = []
        self.keep, self.max_lag = history, max_lag
        self.cursors: dict[Any, list[int]] = {}

    def publish(self, **event: Any) -> list[Any]:
        self.seq += 1
        self.history.append((self.seq, json.dumps({**event, "seq": self.seq})))
        del self.history[: -self.keep]
        behind = [c for c, (last, came) in self.cursors.items() if self.seq - max(last, came) > self.max_lag]
        for client in behind:
            del self.cursors[client]
        return behind

    def after(self, seq: int) -> list[tuple[int, str]]:
        oldest = self.seq - len(self.history) + 1
        return self.history[max(0, seq + 1 - oldest) :]


class ResumingChat(ResumingRoom):
    """Section 3's room on real connections, plus the answer: ``history-lost`` before the replay."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.new_event = asyncio.Event()
        self.closing: set[asyncio.Task[None]] = set()

    def announce(self, **event: Any) -> None:
        for connection in self.publish(**event):
            closing = asyncio.create_task(connection.close(4001, "too slow: resume from your last seq"))
            self.closing.add(closing)
            closing.add_done_callback(self.closing.discard)
        self.new_event.set()
        self.new_event = asyncio.Event()

    async def forward(self, connection: ServerConnection) -> None:
        with contextlib.suppress(ConnectionClosed):
            while connection in self.cursors:
                new_event = self.new_event
                for seq, text in self.after(self.cursors[connection][0]):
                    await connection.send(text)
                    if connection not in self.cursors:
                        return
                    self.cursors[connection][0] = seq
                await new_event.wait()

    async def handle(self, connection: ServerConnection) -> None:
        hello = json.loads(await connection.recv())
        name, start = hello["name"], hello.get("resume", self.seq)
        await connection.send(json.dumps({"type": "welcome", "seq": self.seq}))
        self.announce(type="join", name=name)
        oldest = self.seq - len(self.history) + 1  # the answer: compare with the oldest kept, once
        lost = (
            {"type": "history-lost", "first": start + 1, "last": oldest - 1} if start + 1 < oldest else None
        )
        self.cursors[connection] = [max(start, oldest - 1), self.seq]
        forwarder = asyncio.create_task(self.forward(connection))
        try:
            if lost is not None:  # written before the forward loop first runs: it comes first
                await connection.send(json.dumps(lost))
            async for message in connection:
                text = json.loads(message).get("text", "").strip()
                if text:
                    self.announce(type="chat", name=name, text=text)
        except ConnectionClosed:
            pass
        finally:
            forwarder.cancel()
            self.cursors.pop(connection, None)
            self.announce(type="leave", name=name)
