"""Lessons 02 and 03's chat checks: the solutions and wslab pass; wrong answers get NOT YET and why."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import random
from typing import Any

import pytest
from helpers import assert_hint, assert_not_yet, assert_passed, failing
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from wslab.brokers import MemoryBroker
from wslab.checks.lesson02 import check_history_lost, check_lag_closes, check_resuming_room
from wslab.checks.lesson03 import check_backoff, check_gives_up, check_reconnecting_client
from wslab.clients.chat import ChatClient
from wslab.servers import ChatServer
from wslab.solutions import lesson02, lesson03

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


# --- lesson 03: backoff -----------------------------------------------------------------


def test_backoff_solution_passes() -> None:
    assert_passed(check_backoff(lesson03.backoff))


def test_backoff_fails_on_full_jitter_and_on_no_jitter() -> None:
    report = check_backoff(lambda attempt: random.uniform(0, min(10, 0.1 * 2**attempt)))
    assert_not_yet(report)
    assert "delays within [5, 10] s (saw " in failing(report, "attempt 11: delays within")
    assert_hint(report, "never below half its ceiling")
    report = check_backoff(lambda attempt: min(10, 0.1 * 2**attempt))
    assert_not_yet(report)
    assert failing(report, "jitter") == "attempt 5: delays differ from call to call (jitter)"
    assert "(they spread over 0.00 s)" in failing(report, "attempt 11")
    assert_hint(report, "at random")


# --- lesson 03: the reconnecting client -------------------------------------------------


async def test_reconnecting_client_passes_on_the_solution_and_on_wslab() -> None:
    assert_passed(await check_reconnecting_client(lesson03.ResumingClient))
    assert_passed(await check_reconnecting_client(ChatClient))


async def test_reconnecting_client_fails_without_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lesson03, "jittered_delays", lambda: itertools.repeat(0.0))
    # A longer outage than the check's own: without backoff the client tries hundreds of
    # handshakes a second on an idle machine; 20 in 2 s stays out of reach however busy it is.
    report = await check_reconnecting_client(lesson03.ResumingClient, outage=2.0)
    assert_not_yet(report)
    assert "handshakes tried during the 2 s outage:" in failing(report, "handshakes tried")
    assert_hint(report, "reconnect_delays=")


class _Forgetful(lesson03.ResumingClient):
    """Sends only while connected: no outbox, so what the user types during an outage is lost."""

    async def send(self, text: str) -> None:
        if self.connection is not None:
            await self.connection.send(json.dumps({"type": "chat", "text": text}))


async def test_reconnecting_client_fails_without_an_outbox() -> None:
    report = await check_reconnecting_client(_Forgetful)
    assert_not_yet(report)
    assert "got ['a1', 'a2', 'a3']" in failing(report, "once each, in order")
    assert_hint(report, "outbox")


# --- lesson 03: gives up on 1008 --------------------------------------------------------


async def test_gives_up_passes_on_the_solution_and_on_wslab() -> None:
    assert_passed(await check_gives_up(lesson03.ResumingClient))
    assert_passed(await check_gives_up(ChatClient))


class _Stubborn(lesson03.ResumingClient):
    """Section 4's client as the lesson first builds it: it reconnects after every close."""

    async def run(self) -> None:
        async for connection in connect(self.url, reconnect_delays=lesson03.jittered_delays):
            await connection.send(json.dumps({"type": "hello", "name": self.name}))
            with contextlib.suppress(ConnectionClosed):
                async for raw in connection:
                    await self.receive(connection, json.loads(raw))


async def test_gives_up_fails_on_a_client_that_always_reconnects() -> None:
    report = await check_gives_up(_Stubborn)
    assert_not_yet(report)
    assert failing(report, "refused with 1008").endswith("still running, after trying again and again")
    assert_hint(report, "1008 means do not come back")
