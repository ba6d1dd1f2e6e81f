"""Lessons 02 and 03's chat checks: the solutions and wslab pass; wrong answers get NOT YET and why."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from helpers import stop_servers  # noqa: F401  (autouse fixture)
from test_checks import assert_hint, assert_not_yet, assert_passed, failing
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from wslab.brokers import MemoryBroker
from wslab.checks_chat import check_history_lost, check_lag_closes, check_resuming_room
from wslab.servers import ChatServer
from wslab.solutions import lesson02

# --- lesson 02: lag closes with 4001 ----------------------------------------------------


async def test_lag_closes_solution_passes() -> None:
    assert_passed(await check_lag_closes(lesson02.chat_4001))


async def test_lag_closes_fails_on_the_tutorials_deaf_forward_loop() -> None:
    channel = lesson02.BroadcastChannel(256)

    async def tutorial_chat(connection: ServerConnection) -> None:
        receiver = channel.subscribe()
        name = str(await connection.recv()).strip()
        await connection.send(f"Welcome, {name}!")

        async def forward() -> None:  # while let Ok(msg) = rx.recv().await: any Err ends it
            try:
                while True:
                    author, text = await receiver.recv()
                    if author != name:
                        await connection.send(f"[{author}] {text}")
            except (lesson02.Lagged, ConnectionClosed):
                return

        forwarder = asyncio.create_task(forward())
        try:
            async for message in connection:
                channel.send((name, str(message)))
        finally:
            forwarder.cancel()

    report = await check_lag_closes(tutorial_chat)
    assert_not_yet(report)
    assert "deaf, as in the tutorial" in failing(report, "expected close 4001")
    assert_hint(report, "Lagged is where the loop learns it fell behind")
    # Bob kept up: that part holds even for the tutorial.
    assert any(ok and "bob, who kept reading" in line for ok, line in report.results)


# --- lesson 02: the resuming room -------------------------------------------------------


async def test_resuming_room_passes_on_the_solution_and_on_wslab() -> None:
    assert_passed(await check_resuming_room(lesson02.ResumingChat().handle))
    assert_passed(await check_resuming_room(ChatServer(max_backlog=16 * 1024)))


async def test_resuming_room_fails_when_a_slow_client_is_never_closed() -> None:
    report = await check_resuming_room(lesson02.ResumingChat(max_lag=10**9).handle)
    assert_not_yet(report)
    assert failing(report, "closed with 4001").endswith("still open, silent")
    assert_hint(report, "max_lag")


class _IgnoresResume(lesson02.ResumingChat):
    """A room that treats every hello as a newcomer's."""

    async def handle(self, connection: ServerConnection) -> None:
        await super().handle(_DropResume(connection))  # type: ignore[arg-type]


class _DropResume:
    def __init__(self, connection: ServerConnection) -> None:
        self._connection = connection
        self._first = True

    def __getattr__(self, name: str) -> Any:
        return getattr(self._connection, name)

    def __aiter__(self) -> Any:
        return self._connection.__aiter__()

    async def recv(self) -> Any:
        message = await self._connection.recv()
        if self._first:
            self._first = False
            hello = json.loads(message)
            hello.pop("resume", None)
            return json.dumps(hello)
        return message


async def test_resuming_room_fails_when_resume_is_ignored() -> None:
    report = await check_resuming_room(_IgnoresResume().handle)
    assert_not_yet(report)
    assert "resume after seq" in failing(report, "resume after seq")
    assert_hint(report, '"resume": seq')


# --- lesson 02: history lost ------------------------------------------------------------


async def test_history_lost_passes_on_the_solution_and_on_wslab() -> None:
    assert_passed(await check_history_lost(lesson02.ResumingChat(history=5).handle))
    assert_passed(await check_history_lost(ChatServer(broker=MemoryBroker(history=5))))


async def test_history_lost_fails_on_a_room_that_replays_silently() -> None:
    class Silent(lesson02.ResumingChat):
        async def handle(self, connection: ServerConnection) -> None:  # section 3's, no history-lost
            hello = json.loads(await connection.recv())
            name, start = hello["name"], hello.get("resume", self.seq)
            await connection.send(json.dumps({"type": "welcome", "seq": self.seq}))
            self.announce(type="join", name=name)
            self.cursors[connection] = [start, self.seq]
            forwarder = asyncio.create_task(self.forward(connection))
            try:
                async for message in connection:
                    self.announce(type="chat", name=name, text=json.loads(message)["text"])
            finally:
                forwarder.cancel()
                self.cursors.pop(connection, None)

    report = await check_history_lost(Silent(history=5).handle)
    assert_not_yet(report)
    assert "no history-lost came" in failing(report, "history-lost")
    assert_hint(report, "oldest kept")
