"""Lesson 02's checks: the references and wslab pass; wrong answers get NOT YET and why; skeletons
are not written yet."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from helpers import assert_hint, assert_not_yet, assert_passed, failing
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from wslab.brokers import MemoryBroker
from wslab.checks.lesson02 import (
    after_exercise,
    behind_exercise,
    check_history_lost,
    check_lag_closes,
    check_resuming_room,
    forward_exercise,
    handle_exercise,
    publish_exercise,
    say_exercise,
)
from wslab.checks.report import Verdict
from wslab.servers import ChatServer
from wslab.solutions import lesson02

# --- the tutorial's chat: the forward loop ------------------------------------------------


async def test_forward_passes_on_the_reference() -> None:
    assert_passed(await forward_exercise(lesson02.TutorialChat.forward, lesson02.TutorialChat))


async def forward_echoing_the_author(
    self: Any, connection: ServerConnection, receiver: Any, name: str
) -> None:
    try:
        while True:
            author, text = await receiver.recv()
            await connection.send(f"[{author}] {text}")  # no filter: the author hears itself
    except ConnectionClosed:
        pass
    except lesson02.Lagged as lagged:
        self.deaf[name] = lagged


async def test_forward_fails_on_a_loop_that_echoes_the_author() -> None:
    report = await forward_exercise(forward_echoing_the_author, lesson02.TutorialChat)
    assert_not_yet(report)
    assert "got '[ann] my own'" in failing(report, "bob's comes next")
    assert_hint(report, "the tutorial's filter")


async def forward_letting_errors_out(
    self: Any, connection: ServerConnection, receiver: Any, name: str
) -> None:
    while True:
        author, text = await receiver.recv()
        if author != name:
            await connection.send(f"[{author}] {text}")


async def test_forward_fails_on_a_loop_that_catches_nothing() -> None:
    report = await forward_exercise(forward_letting_errors_out, lesson02.TutorialChat)
    assert_not_yet(report)
    assert "raised ConnectionClosed" in failing(report, "ann left")
    assert "raised Lagged: lagged: 3 values skipped" in failing(report, "slowpoke lagged")
    assert_hint(report, "note it in self.deaf[name]")


async def forward_skeleton(self: Any, connection: ServerConnection, receiver: Any, name: str) -> None:
    """The forward loop."""
    raise NotImplementedError  # write it: see the comment above


async def test_forward_skeleton_is_not_written_yet() -> None:
    report = await forward_exercise(forward_skeleton, lesson02.TutorialChat)
    assert report.verdict is Verdict.NOT_WRITTEN and report.results == []


# --- the tutorial's chat: the handler ---------------------------------------------------


async def test_handle_passes_on_the_reference() -> None:
    assert_passed(await handle_exercise(lesson02.TutorialChat.handle, lesson02.TutorialChat))


async def handle_without_cleanup(self: Any, connection: ServerConnection) -> None:
    receiver = self.channel.subscribe()
    name = str(await connection.recv()).strip()
    self.peers[connection] = name
    await connection.send(f"Welcome, {name}!")
    self.channel.send(("system", f">>> {name} joined the chat"))
    self.forwarder = asyncio.ensure_future(self.forward(connection, receiver, name))
    async for message in connection:  # a dropped connection raises here: no leave, no clean-up
        if text := str(message).strip():
            self.channel.send((name, text))


async def test_handle_fails_without_a_finally() -> None:
    report = await handle_exercise(handle_without_cleanup, lesson02.TutorialChat)
    assert_not_yet(report)
    assert "expected ['alice'], got ['alice', 'bob']" in failing(report, "out of peers")
    assert_hint(report, "clean up in a finally block")


async def handle_skeleton(self: Any, connection: ServerConnection) -> None:
    """One connection."""
    ...


async def test_handle_skeleton_is_not_written_yet() -> None:
    report = await handle_exercise(handle_skeleton, lesson02.TutorialChat)
    assert report.verdict is Verdict.NOT_WRITTEN
    assert str(report).splitlines()[0] == "handle: not written yet (handle_skeleton has no body yet)"


# --- the resuming room's rules ----------------------------------------------------------


def test_the_rules_pass_on_the_reference() -> None:
    assert_passed(publish_exercise(lesson02.ResumingRoom.publish))
    assert_passed(after_exercise(lesson02.ResumingRoom.after))
    assert_passed(behind_exercise(lesson02.ResumingRoom.behind))
    assert_passed(say_exercise(lesson02.ResumingRoom.say))


def publish_unbounded(self: Any, **event: Any) -> int:
    self.seq += 1
    self.history.append((self.seq, json.dumps({**event, "seq": self.seq})))
    return self.seq


def test_publish_fails_on_an_unbounded_history() -> None:
    report = publish_exercise(publish_unbounded)
    assert_not_yet(report)
    assert "got [1, 2, 3, 4, 5, 6, 7, 8]" in failing(report, "keeps the newest 5")
    assert_hint(report, "delete the oldest entries")


def after_from_seq(self: Any, seq: int) -> list[tuple[int, str]]:
    return [entry for entry in self.history if entry[0] >= seq]  # one too many: seq itself


def test_after_fails_when_it_includes_the_seq_itself() -> None:
    report = after_exercise(after_from_seq)
    assert_not_yet(report)
    assert "expected the entries of seqs [6, 7, 8], got [5, 6, 7, 8]" in failing(report, "after(5)")


def behind_from_the_cursor(self: Any) -> list[Any]:
    gone = [client for client, (last, _) in self.cursors.items() if self.seq - last > self.max_lag]
    for client in gone:
        del self.cursors[client]
    return gone


def test_behind_fails_when_a_resumed_client_counts_from_its_cursor() -> None:
    report = behind_exercise(behind_from_the_cursor)
    assert_not_yet(report)
    assert "expected [], got ['cal']" in failing(report, "cal resumed")
    assert_hint(report, "max(last, came)")


def say_every_time(self: Any, name: str, text: str, ref: str | None = None) -> int:
    return int(self.publish(type="chat", name=name, text=text))


def test_say_fails_when_a_resend_is_published_again() -> None:
    report = say_exercise(say_every_time)
    assert_not_yet(report)
    assert "expected 1 with the room at seq 1; got 2 with the room at seq 2" in failing(report, "a resend")


def say_raising(self: Any, name: str, text: str, ref: str | None = None) -> int:
    raise KeyError(ref)


def test_a_rule_that_raises_is_a_failed_line_not_a_traceback() -> None:
    report = say_exercise(say_raising)
    assert_not_yet(report)
    assert failing(report, "say('ann', 'hi', 'a-1')").endswith("raised KeyError: 'a-1'")


def publish_skeleton(self: Any, **event: Any) -> int:
    """Number an event."""
    raise NotImplementedError


def test_a_rule_skeleton_is_not_written_yet() -> None:
    report = publish_exercise(publish_skeleton)
    assert report.verdict is Verdict.NOT_WRITTEN and report.results == []


# --- the resuming room on real connections ----------------------------------------------


async def test_resuming_room_passes_on_the_reference_and_on_wslab() -> None:
    assert_passed(await check_resuming_room(lesson02.ResumingChat))
    assert_passed(await check_resuming_room(lesson02.ResumingChat().handle))
    assert_passed(await check_resuming_room(ChatServer(max_backlog=16 * 1024)))


async def test_resuming_room_fails_when_a_slow_client_is_never_closed() -> None:
    report = await check_resuming_room(lesson02.ResumingChat(max_lag=10**9).handle)
    assert_not_yet(report)
    assert failing(report, "closed with 4001").endswith("still open, silent")
    assert_hint(report, "max_lag")


class _IgnoresResume(lesson02.ResumingChat):
    """A room that treats every hello as a newcomer's."""

    async def welcome(self, connection: ServerConnection, hello: dict[str, Any]) -> None:
        await super().welcome(connection, {**hello, "resume": None})


async def test_resuming_room_fails_when_resume_is_ignored() -> None:
    report = await check_resuming_room(_IgnoresResume)
    assert_not_yet(report)
    assert "resume after seq" in failing(report, "resume after seq")
    assert_hint(report, '"resume": seq')


class _PublishesResends(lesson02.ResumingChat):
    """A room whose ``say`` publishes every message it gets, resent or not."""

    def say(self, name: str, text: str, ref: str | None = None) -> int:
        return self.publish(type="chat", name=name, text=text)


async def test_resuming_room_fails_when_a_resend_is_published_twice() -> None:
    report = await check_resuming_room(_PublishesResends)
    assert_not_yet(report)
    assert "published 2 time(s)" in failing(report, "sent twice with one ref")
    assert_hint(report, "say() remembers each (name, ref)")


# --- the exercises ------------------------------------------------------------------------


async def test_lag_closes_passes_on_the_reference() -> None:
    assert_passed(await check_lag_closes(lesson02.Chat4001))


async def test_lag_closes_fails_on_the_tutorials_deaf_forward_loop() -> None:
    report = await check_lag_closes(lesson02.TutorialChat)
    assert_not_yet(report)
    assert "deaf, as in the tutorial" in failing(report, "expected close 4001")
    assert_hint(report, "Lagged is where the loop learns it fell behind")
    # Bob kept up: that part holds even for the tutorial.
    assert any(ok and "bob, who kept reading" in line for ok, line in report.results)


async def test_history_lost_passes_on_the_reference_and_on_wslab() -> None:
    assert_passed(await check_history_lost(lesson02.HistoryChat))
    assert_passed(await check_history_lost(ChatServer(broker=MemoryBroker(history=5))))


async def test_history_lost_fails_on_a_room_that_replays_silently() -> None:
    report = await check_history_lost(lesson02.ResumingChat)
    assert_not_yet(report)
    assert "no history-lost came" in failing(report, "history-lost")
    assert_hint(report, "oldest kept")
