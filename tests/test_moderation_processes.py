"""Moderation across processes: two ``python -m wslab serve chat`` sharing a real Redis (lesson 06's
set-up); the instructor types into one server's terminal, the people moderated are on the other.

The decisions travel as room events through Redis, serialized and numbered like any message.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from helpers import PROCESS_TIMEOUT, TIMEOUT, wait_for

from wslab.clients.chat import ChatClient
from wslab.core.close_codes import AppCloseCode

ROOT = Path(__file__).resolve().parent.parent
LISTENING = re.compile(r"^chat server listening on (ws://127\.0\.0\.1:\d+/) \(Ctrl-C to stop\)$")

pytestmark = pytest.mark.broker


class ChatServerProcess:
    """One ``serve chat --broker`` process: its URL, and its terminal to type into."""

    def __init__(self, process: asyncio.subprocess.Process, url: str) -> None:
        self.process, self.url = process, url

    async def type(self, line: str) -> str:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(f"{line}\n".encode())
        await self.process.stdin.drain()
        return (await asyncio.wait_for(self.process.stdout.readline(), TIMEOUT)).decode().rstrip("\n")


@pytest.fixture
async def chat_server(redis_url: str) -> AsyncIterator[Callable[[str], Awaitable[ChatServerProcess]]]:
    started: list[asyncio.subprocess.Process] = []

    async def start(server_id: str) -> ChatServerProcess:
        process = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "wslab", "serve", "chat", "--port", "0", "--id", server_id),
            *("--broker", redis_url),
            cwd=ROOT,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        started.append(process)
        assert process.stdout is not None
        first = (await asyncio.wait_for(process.stdout.readline(), 30)).decode().rstrip("\n")
        match = LISTENING.match(first)
        assert match, first
        return ChatServerProcess(process, match.group(1))

    yield start
    for process in started:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), TIMEOUT * 2)


async def test_the_instructor_on_one_server_moderates_people_on_another(
    chat_server: Callable[[str], Awaitable[ChatServerProcess]],
) -> None:
    front, back = await chat_server("front"), await chat_server("back")
    ana, bob, cy = ChatClient(front.url, "ana"), ChatClient(back.url, "bob"), ChatClient(back.url, "cy")
    clients = [ana.start(), bob.start(), cy.start()]
    try:
        await wait_for(
            lambda: all(c.live for c in clients) and sorted(ana.users) == ["ana", "bob", "cy"],
            timeout=PROCESS_TIMEOUT,
            what=lambda: (
                f"three live, ana sees them (live: {[c.live for c in clients]}, ana sees {ana.users})"
            ),
        )
        assert await front.type("/who") == "in the room (3): ana, bob, cy; muted: nobody"

        assert await front.type("/mute cy") == "muted cy"
        await wait_for(lambda: ">>> cy was muted by the instructor" in cy.lines(), what="cy told")
        await cy.send("heard?")
        await wait_for(lambda: not cy.unacknowledged, what="cy's message answered")
        assert cy.notices[-1].startswith("error: the instructor muted you")

        assert await front.type("/kick bob please take a break") == "kicked bob (please take a break)"
        await bob.wait()  # stopped by itself: no reconnect
        assert bob.closes == [(AppCloseCode.KICKED, "kicked: please take a break")]
        assert bob.rejected == "the instructor removed you from the room: please take a break"

        assert await front.type("/clear") == "cleared the chat on every screen"
        cleared = [">>> the instructor cleared the chat"]
        await wait_for(lambda: cy.lines() == cleared and ana.lines() == cleared, what="both cleared")
    finally:
        for client in clients:
            await client.stop()
