"""The clients lessons 02 and 03's checks play against a chat: readers, a slow client, a next message.

A check talks to the learner's server as a real client does, over a real connection on the
loopback interface. What a connection did is kept as data (the json messages it got, how it
ended) so that a check can judge it and say, in its report, what came instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.uri import parse_uri

from .report import REPLY_TIMEOUT

__all__ = [
    "EVENT_TYPES",
    "PADDING",
    "SMALL_BUFFERS",
    "NoReply",
    "Reader",
    "consecutive",
    "json_client",
    "next_message",
    "read_to_the_end",
    "say",
    "slow_reader_options",
    "welcome_seq",
]

#: Room events (the other json messages, welcome, ack, live, ping, are not looked at).
EVENT_TYPES = ("chat", "join", "leave")
#: Padding that makes each burst message about 130 bytes: small buffers fill after a few dozen.
PADDING = "." * 110
#: Tiny kernel buffers and write limit, so a client that does not read shows up quickly.
SMALL_BUFFERS: dict[str, Any] = {"send_buffer": 4096, "write_limit": 4096}


class NoReply(str):
    """Why no message came (told apart from a message that happens to be text)."""


async def next_message(connection: ClientConnection, timeout: float = REPLY_TIMEOUT) -> str | bytes:
    """The next message, or a :class:`NoReply` saying why there is none."""
    try:
        return await asyncio.wait_for(connection.recv(), timeout)
    except TimeoutError:
        return NoReply(f"nothing within {timeout:g} s")
    except ConnectionClosed as exc:
        return NoReply(f"the connection closed ({exc})")


def slow_reader_options(url: str) -> dict[str, Any]:
    """``connect()`` options for a client that reads nothing: a socket with a 4 KiB receive
    buffer, set before connecting (TCP cannot shrink a window it already offered), a queue
    of one message, after which websockets stops reading from the socket, and no
    compression (the checks' repetitive texts would shrink to almost nothing)."""
    uri = parse_uri(url)
    sock = socket.socket(socket.AF_INET6 if ":" in uri.host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((uri.host, uri.port))  # loopback: at once
    return {"sock": sock, "max_queue": 1, "compression": None}


class Reader:
    """Reads one connection in the background: every json message, and how it ended."""

    def __init__(self, connection: ClientConnection) -> None:
        self.connection = connection
        self.messages: list[dict[str, Any]] = []
        self.task = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for raw in self.connection:
                with contextlib.suppress(ValueError, TypeError):
                    message = json.loads(raw)
                    if isinstance(message, dict):
                        self.messages.append(message)

    def events(self) -> list[dict[str, Any]]:
        return [m for m in self.messages if m.get("type") in EVENT_TYPES and isinstance(m.get("seq"), int)]

    def saw(self, text: str) -> bool:
        """``text`` went out: as a chat event (a simple room echoes it) or as an ack of its ref."""
        return any(m.get("text") == text or m.get("ref") == text for m in self.messages)

    def acks(self, ref: str) -> list[Any]:
        """The seqs of the acks this client got for ``ref``, in order."""
        return [m.get("seq") for m in self.messages if m.get("type") == "ack" and m.get("ref") == ref]

    def chats(self) -> list[str]:
        return [e.get("text", "") for e in self.events() if e["type"] == "chat"]

    async def stop(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


@contextlib.asynccontextmanager
async def json_client(
    url: str, name: str, resume: int | None = None, *, slow: bool = False
) -> AsyncIterator[Any]:
    """A json client: hello, then a background reader (none if ``slow``); yields ``(connection, reader)``."""
    async with connect(url, **(slow_reader_options(url) if slow else {})) as connection:
        hello: dict[str, Any] = {"type": "hello", "name": name}
        if resume is not None:
            hello["resume"] = resume
        await connection.send(json.dumps(hello))
        reader = None if slow else Reader(connection)
        try:
            yield connection, reader
        finally:
            if reader is not None:
                await reader.stop()


async def say(connection: ClientConnection, texts: list[str]) -> None:
    """Send each text as a json chat message whose ``ref`` is the text itself."""
    for text in texts:
        await connection.send(json.dumps({"type": "chat", "text": text, "ref": text}))
        await asyncio.sleep(0)  # let the server run between messages, as a network would


def consecutive(seqs: list[int]) -> bool:
    return seqs == list(range(seqs[0], seqs[0] + len(seqs))) if seqs else False


def welcome_seq(reader: Reader) -> int | None:
    welcome = next((m for m in reader.messages if m.get("type") == "welcome"), None)
    return welcome.get("seq") if welcome is not None and isinstance(welcome.get("seq"), int) else None


async def read_to_the_end(connection: ClientConnection) -> int | None:
    """Read until the connection closes (its close code) or stays silent (None)."""
    while True:
        try:
            await asyncio.wait_for(connection.recv(), REPLY_TIMEOUT)
        except TimeoutError:
            return None
        except ConnectionClosed as exc:
            return exc.rcvd.code if exc.rcvd is not None else 1006
