"""Solutions to lesson 02: the blanks (the tutorial's chat, the resuming room's rules) and the exercises.

The lesson's given code (the model of tokio's broadcast channel, the resuming room's
connections) is repeated here, so that each reference runs on its own: a check hands it to
the cells below until the learner's answer passes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import unicodedata
from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

# Section 1: the model of tokio::sync::broadcast, and the tutorial's chat on it


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
    """One receiver's position in the ring."""

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


class TutorialChat:
    """The Rust tutorial's chat server: one broadcast channel, two loops per connection."""

    def __init__(self, capacity: int = 256) -> None:
        self.channel = BroadcastChannel(capacity)
        self.peers: dict[ServerConnection, str] = {}
        self.deaf: dict[str, Exception] = {}

    async def forward(self, connection: ServerConnection, receiver: Receiver, name: str) -> None:
        """The forward loop: each message from the channel to this client, except its own."""
        try:
            while True:
                author, text = await receiver.recv()
                if author != name:  # the tutorial's echo filter: by name
                    await connection.send(f"[{author}] {text}")
        except ConnectionClosed:  # the client is gone: nothing to forward to
            pass
        except Exception as error:  # any Err from recv ends the loop, as `while let Ok` does: Lagged
            self.deaf[name] = error

    async def handle(self, connection: ServerConnection) -> None:
        """One connection: the username first, the join, the receive loop; the leave at the end."""
        receiver = self.channel.subscribe()  # the tutorial subscribes right after accept()
        name = str(await connection.recv()).strip()
        self.peers[connection] = name
        await connection.send(f"Welcome, {name}!")
        self.channel.send(("system", f">>> {name} joined the chat"))
        forwarder = asyncio.create_task(self.forward(connection, receiver, name))
        try:
            async for message in connection:
                if text := str(message).strip():
                    self.channel.send((name, text))
        finally:  # a close, or a connection that dropped: clean up either way
            forwarder.cancel()
            del self.peers[connection]
            self.channel.send(("system", f">>> {name} left the chat"))


# Section 3: the resuming room's rules, without I/O, and its connections


class ResumingRoom:
    """The room's rules, no I/O: number each event, keep a bounded history, find who fell behind."""

    def __init__(self, history: int = 10_000, max_lag: int = 256) -> None:
        self.seq = 0
        self.history: list[tuple[int, str]] = []
        self.keep, self.max_lag = history, max_lag
        self.cursors: dict[Any, list[int]] = {}
        self.refs: dict[tuple[str, str], int] = {}

    def join(self, client: Any, resume: int | None = None) -> None:
        self.cursors[client] = [self.seq if resume is None else resume, self.seq]

    def publish(self, **event: Any) -> int:
        """Number an event and keep it, as wire text, in the bounded history; returns its seq."""
        self.seq += 1
        self.history.append((self.seq, json.dumps({**event, "seq": self.seq})))
        del self.history[: -self.keep]  # bounded: the oldest go
        return self.seq

    def after(self, seq: int) -> list[tuple[int, str]]:
        """The kept events numbered above ``seq``, oldest first: what a client resuming after ``seq`` gets."""
        oldest = self.seq - len(self.history) + 1  # the seq of history[0]
        return self.history[max(0, seq + 1 - oldest) :]

    def behind(self) -> list[Any]:
        """The clients more than ``max_lag`` events behind, taken out of ``cursors``: they must go."""
        gone = [
            client
            for client, (last, came) in self.cursors.items()
            if self.seq - max(last, came) > self.max_lag
        ]
        for client in gone:
            del self.cursors[client]
        return gone

    def say(self, name: str, text: str, ref: str | None = None) -> int:
        """A client's message, published once per ``ref``; returns its seq (the first one, for a resend)."""
        if ref is not None and (name, ref) in self.refs:
            return self.refs[name, ref]  # a resend: acknowledged again, never published twice
        seq = self.publish(type="chat", name=name, text=text)
        if ref is not None:
            self.refs[name, ref] = seq
            if len(self.refs) > self.keep:  # bounded like the history: forget the oldest
                del self.refs[next(iter(self.refs))]
        return seq


class ResumingChat(ResumingRoom):
    """The room on real connections: the tutorial's two loops per connection, around the history."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.new_event = asyncio.Event()
        self.closing: set[asyncio.Task[None]] = set()

    def wake(self) -> None:
        """After a publish: close whoever is now too far behind, with 4001; wake every forward loop."""
        for connection in self.behind():
            closing = asyncio.create_task(connection.close(4001, "too slow: resume from your last seq"))
            self.closing.add(closing)
            closing.add_done_callback(self.closing.discard)
        self.new_event.set()
        self.new_event = asyncio.Event()

    async def forward(self, connection: ServerConnection) -> None:
        """History to this client, in order, from its cursor."""
        with contextlib.suppress(ConnectionClosed):
            while connection in self.cursors:
                new_event = self.new_event
                for seq, text in self.after(self.cursors[connection][0]):
                    await connection.send(text)
                    if connection not in self.cursors:  # sent away meanwhile
                        return
                    self.cursors[connection][0] = seq
                await new_event.wait()

    async def welcome(self, connection: ServerConnection, hello: dict[str, Any]) -> None:
        """Between the hello and the forward loop: the welcome, the join, where the replay starts."""
        await connection.send(json.dumps({"type": "welcome", "seq": self.seq}))
        self.join(connection, hello.get("resume"))  # a newcomer's cursor: now, so it sees its own join
        self.publish(type="join", name=hello["name"])
        self.wake()

    async def handle(self, connection: ServerConnection) -> None:
        """One connection: the hello, then the two loops; the leave at the end."""
        hello = json.loads(await connection.recv())
        await self.welcome(connection, hello)
        forwarder = asyncio.create_task(self.forward(connection))
        try:
            async for message in connection:
                said = json.loads(message)
                if text := said.get("text", "").strip():
                    seq = self.say(hello["name"], text, said.get("ref"))
                    self.wake()
                    if "ref" in said:
                        await connection.send(json.dumps({"type": "ack", "ref": said["ref"], "seq": seq}))
        except ConnectionClosed:
            pass
        finally:
            forwarder.cancel()
            self.cursors.pop(connection, None)
            self.publish(type="leave", name=hello["name"])
            self.wake()


# Exercise 1 and 2: the gaps in a run of seqs, the username rules


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


# Exercise 3: the tutorial's chat, where a client that lagged is closed with 4001 instead of going deaf


class Chat4001(TutorialChat):
    async def forward(self, connection: ServerConnection, receiver: Receiver, name: str) -> None:
        try:
            while True:
                author, text = await receiver.recv()
                if author != name:
                    await connection.send(f"[{author}] {text}")
        except Lagged as lagged:  # told, at last: close, so that the client knows instead of going deaf
            await connection.close(4001, f"too slow: {lagged.n} messages lost")
        except ConnectionClosed:
            pass


# Exercise 4: the resuming room, telling a client which events are gone


class HistoryChat(ResumingChat):
    async def welcome(self, connection: ServerConnection, hello: dict[str, Any]) -> None:
        await super().welcome(connection, hello)
        resume = hello.get("resume")
        oldest = self.seq - len(self.history) + 1  # after the join: what the replay starts with
        if resume is not None and resume + 1 < oldest:  # before the forward loop: it comes first
            lost = {"type": "history-lost", "first": resume + 1, "last": oldest - 1}
            await connection.send(json.dumps(lost))
