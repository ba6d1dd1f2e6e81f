"""Lesson 02's chats on real connections, as its checks play them: each scenario adds its lines to a report.

Two kinds of chat are played here. The tutorial's (plain text: the first message is the
username, then ``[author] text`` lines) is the lesson's ``TutorialChat``: its forward loop
and its handler. The resuming room (json: ``hello``, ``welcome``, numbered events, ``ack``)
is the lesson's ``ResumingChat`` or wslab's :class:`~wslab.servers.ChatServer`: the same
scenarios pass on both. :mod:`wslab.checks.lesson02` turns them into exercises.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
from typing import Any

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from ..runtime.handles import ServerHandle, serve, wait_until
from .chat_clients import (
    PADDING,
    SMALL_BUFFERS,
    Reader,
    consecutive,
    json_client,
    next_message,
    read_to_the_end,
    say,
    welcome_seq,
)
from .report import REPLY_TIMEOUT, CheckReport, error_text, until

__all__ = [
    "delivery",
    "expect",
    "flood",
    "gone_quietly",
    "judge_history_lost",
    "lag_scenario",
    "lagging",
    "left",
    "numbering",
    "resend",
    "resume",
    "start_chat",
    "talk",
]


async def start_chat(chat: Any, name: str, **options: Any) -> ServerHandle:
    """Serve a chat with small buffers: a ChatServer (which subscribes to its broker in its own
    serve()), a class whose instances have ``handle`` (made with ``options``), or a handler."""
    if hasattr(chat, "serve_websocket"):
        return await chat.serve(name=name, **SMALL_BUFFERS)
    if inspect.isclass(chat):
        room: Any = chat(**options)
        return await serve(room.handle, name=name, **SMALL_BUFFERS)
    return await serve(chat, name=name, **SMALL_BUFFERS)


# The tutorial's chat: its forward loop (in a handler the check writes), then its handler


def expect(report: CheckReport, what: str, got: object, want: object) -> bool:
    """One line: ``what`` and the value wanted; what came instead, if it differs."""
    if got == want:
        return report.add(True, f"{what}: {want!r}")
    return report.add(False, f"{what}: expected {want!r}, got {got!r}")


async def delivery(report: CheckReport, chat: Any, ann: ClientConnection, loops: dict[str, Any]) -> None:
    """Values of the channel reach ann as ``[author] text``, except her own."""
    await ann.send("ann")
    await wait_until(lambda: "ann" in loops, timeout=REPLY_TIMEOUT)
    for value in [("system", ">>> bob joined the chat"), ("ann", "my own"), ("bob", "hi ann")]:
        chat.channel.send(value)
    first, second = [await next_message(ann) for _ in range(2)]
    expect(report, "a system value reaches ann", first, "[system] >>> bob joined the chat")
    expect(report, "ann's own value is skipped; bob's comes next", second, "[bob] hi ann")
    if second == "[ann] my own":
        report.hint("the tutorial's filter: a value whose author is this client's own name is not sent")


async def gone_quietly(report: CheckReport, chat: Any, loops: dict[str, Any]) -> None:
    """Ann has left: the next value makes the loop's send fail, which must end it without an error."""
    chat.channel.send(("bob", "anyone?"))
    loop = loops["ann"]
    done, _ = await asyncio.wait({loop}, timeout=REPLY_TIMEOUT)
    if not done:
        report.add(False, "ann left: the loop should end at its next send, but it still runs")
    elif (exc := loop.exception()) is not None:
        report.add(False, f"ann left: the loop should end quietly, but it raised {error_text(exc)}")
        report.hint("the client can be gone when you send: catch ConnectionClosed around the loop")
    else:
        report.add(True, "ann left: the loop ended quietly at its next send")


async def lagging(report: CheckReport, chat: Any, slowpoke: ClientConnection, loops: dict[str, Any]) -> None:
    """Slowpoke's receiver is 3 values behind the ring before its first receive: Lagged(3) ends the loop."""
    await slowpoke.send("slowpoke")
    await wait_until(lambda: "slowpoke" in loops, timeout=REPLY_TIMEOUT)
    loop = loops["slowpoke"]
    done, _ = await asyncio.wait({loop}, timeout=REPLY_TIMEOUT)
    noted = chat.deaf.get("slowpoke")
    if not done:
        report.add(False, "slowpoke lagged (3 values overwritten): the loop should end, but it still runs")
        report.hint("Lagged comes out of receiver.recv(): catch it, note it in self.deaf[name], end the loop")
    elif (exc := loop.exception()) is not None:
        report.add(False, f"slowpoke lagged: the loop should end, noted in deaf; it raised {error_text(exc)}")
        report.hint("Lagged comes out of receiver.recv(): catch it, note it in self.deaf[name], end the loop")
    else:
        shown = f"deaf['slowpoke'] = {noted!r}" if noted is not None else "nothing in deaf"
        report.add(getattr(noted, "n", None) == 3, f"slowpoke lagged 3 values: its loop ended; {shown}")
        if noted is None:
            report.hint("note the error that ended the loop: self.deaf[name] (section 2 looks there)")


async def talk(report: CheckReport, chat: Any, alice: ClientConnection, bob: ClientConnection) -> None:
    """Bob joins; alice and bob talk (a blank line is skipped); then bob's connection drops."""
    await bob.send("bob")
    for _ in range(2):  # bob's welcome, bob's join
        await next_message(bob)
    expect(report, "alice hears bob join", await next_message(alice), "[system] >>> bob joined the chat")
    await alice.send("hi bob")
    await alice.send("   ")
    expect(report, "bob gets alice's message", await next_message(bob), "[alice] hi bob")
    await bob.send("hello alice")
    expect(report, "alice's next is bob's reply, not her own", await next_message(alice), "[bob] hello alice")
    await alice.send("still there?")
    after = await next_message(bob)
    expect(report, "alice's blank message is skipped: bob's next", after, "[alice] still there?")
    if after == "[alice] ":
        report.hint("strip each message; skip it if nothing is left")
    expect(report, "peers holds who is in", sorted(chat.peers.values()), ["alice", "bob"])
    bob.transport.abort()  # bob's laptop dies: no close frame


async def left(report: CheckReport, chat: Any, alice: ClientConnection) -> None:
    """Bob's connection dropped: alice is told, and bob is no longer in ``peers``."""
    told = expect(
        report,
        "bob's connection drops: alice hears",
        await next_message(alice),
        "[system] >>> bob left the chat",
    )
    with contextlib.suppress(TimeoutError):
        await wait_until(lambda: sorted(chat.peers.values()) == ["alice"], timeout=REPLY_TIMEOUT)
    if not expect(report, "bob is out of peers", sorted(chat.peers.values()), ["alice"]) or not told:
        report.hint("a dropped connection ends the receive loop with an error: clean up in a finally block")


# The tutorial's channel, and its silent loss


async def lag_scenario(
    report: CheckReport, bob: ClientConnection, slow: ClientConnection, talker: ClientConnection, burst: int
) -> None:
    """``talker`` sends ``burst`` long messages; ``bob`` reads along; ``slow`` reads nothing, then all."""
    heard: list[str] = []

    async def listen() -> None:
        with contextlib.suppress(ConnectionClosed):
            async for message in bob:
                heard.append(str(message))

    listening = asyncio.ensure_future(listen())
    try:
        for connection, name in [(bob, "bob"), (slow, "slowpoke"), (talker, "talker")]:
            await connection.send(name)
        texts = [f"m{i} {PADDING}" for i in range(burst)]
        for text in texts:
            await talker.send(text)
            await asyncio.sleep(0)
        if await until(report, f"bob gets all {burst}", lambda: f"[talker] {texts[-1]}" in heard, 10):
            report.add(
                heard.count(f"[talker] {texts[0]}") == 1 and bob.state.name == "OPEN",
                f"bob, who kept reading, got all {burst} messages and is still connected",
            )
        _judge_lag_close(report, await read_to_the_end(slow))
    finally:
        listening.cancel()


def _judge_lag_close(report: CheckReport, code: int | None) -> None:
    if code == 4001:
        report.add(True, "slowpoke, who lagged, was closed with 4001 once it read what had reached it")
    elif code is None:
        report.add(
            False,
            f"slowpoke lagged: expected close 4001, but after what had reached it, nothing came for"
            f" {REPLY_TIMEOUT:g} s while it stayed connected: deaf, as in the tutorial",
        )
        report.hint("in forward(), Lagged is where the loop learns it fell behind: close there")
    else:
        report.add(False, f"slowpoke lagged: expected close 4001, got close {code}")


# The resuming room


async def numbering(report: CheckReport, url: str, talker: ClientConnection) -> int | None:
    """Five messages reach a listener numbered one after the other; returns the last seq."""
    texts = [f"n{i}" for i in range(5)]
    async with json_client(url, "listener") as (_, heard):
        await wait_until(lambda: welcome_seq(heard) is not None or heard.task.done(), timeout=REPLY_TIMEOUT)
        report.add(welcome_seq(heard) is not None, 'the first message is {"type": "welcome", "seq": <int>}')
        await say(talker, texts)
        if not await until(report, "the listener gets n0..n4", lambda: heard.chats()[-1:] == ["n4"], 5):
            return None
        seqs = [e["seq"] for e in heard.events()]
        ok = heard.chats() == texts and consecutive(seqs)
        report.add(ok, f"the listener got {heard.chats()} numbered one after the other: seqs {seqs}")
        if not ok:
            report.hint(
                "publish() numbers every event: the room's seq goes up by one, and the event carries it"
            )
        return seqs[-1] if seqs else None


async def resume(
    report: CheckReport, url: str, talker: ClientConnection, talked: Reader, last: int, count: int
) -> None:
    """While away, three messages; a client resuming after ``last`` gets exactly what followed.

    Then, with that client listening: a resent message (:func:`resend`) and a flood (:func:`flood`).
    """
    texts = [f"r{i}" for i in range(3)]
    await say(talker, texts)
    if not await until(report, "the talker's r0..r2 go out", lambda: talked.saw("r2"), 5):
        return
    async with json_client(url, "returning", resume=last) as (_, back):
        if not await until(report, f"resume after seq {last}: r0..r2", lambda: "r2" in back.chats(), 5):
            report.hint('a hello with "resume": seq gets the kept events numbered above seq, oldest first')
            return
        seqs = [e["seq"] for e in back.events()]
        ok = seqs[:1] == [last + 1] and consecutive(seqs) and back.chats()[:3] == texts
        report.add(ok, f"resume after seq {last}: got seqs {seqs} with chats {back.chats()}")
        await resend(report, talker, talked, back)
        await flood(report, url, talker, back, count)


async def resend(report: CheckReport, talker: ClientConnection, talked: Reader, back: Reader) -> None:
    """A message sent twice with one ``ref`` (its ack was lost, say) is published once, acknowledged twice."""
    message = json.dumps({"type": "chat", "text": "once", "ref": "once-1"})
    await talker.send(message)
    if not await until(report, "an ack for ref 'once-1'", lambda: bool(talked.acks("once-1")), 5):
        report.hint('answer a message that has a "ref" with {"type": "ack", "ref": ..., "seq": ...}')
        return
    await talker.send(message)  # the resend
    await until(report, "a second ack for the resent 'once-1'", lambda: len(talked.acks("once-1")) >= 2, 5)
    await talker.send(json.dumps({"type": "chat", "text": "after", "ref": "after-1"}))
    if not await until(report, "the listener gets 'after'", lambda: "after" in back.chats(), 5):
        return
    acks, copies = talked.acks("once-1"), back.chats().count("once")
    ok = copies == 1 and len(acks) == 2 and acks[0] == acks[1]
    report.add(ok, f"sent twice with one ref: published {copies} time(s), acknowledged with seqs {acks}")
    if copies > 1:
        report.hint(
            "say() remembers each (name, ref) it published, with its seq: a resend gets that seq back"
        )


async def flood(report: CheckReport, url: str, talker: ClientConnection, back: Reader, count: int) -> None:
    """A client that reads nothing is closed with 4001; the others get every message."""
    texts = [f"f{i} {PADDING}" for i in range(count)]
    async with json_client(url, "slowpoke", slow=True) as (slow, _):
        await say(talker, texts)
        if await until(report, f"a reader gets all {count} messages", lambda: texts[-1] in back.chats(), 10):
            chats = back.chats()
            report.add(
                chats[chats.index(texts[0]) :] == texts,
                f"a client that keeps reading gets all {count} messages, in order",
            )
        code = await read_to_the_end(slow)
        shown = "still open, silent" if code is None else f"closed {code}"
        report.add(code == 4001, f"a client that reads nothing is closed with 4001: {shown}")
        if code != 4001:
            report.hint("after each publish, close (4001) whoever is more than max_lag events behind")


def judge_history_lost(report: CheckReport, back: Reader, start: int, texts: list[str]) -> None:
    """The replay holds only the kept events, after a ``history-lost`` naming the ones gone."""
    replay, chats = back.events(), back.chats()
    kept = bool(chats) and chats == texts[-len(chats) :] and len(chats) < len(texts)
    report.add(kept, f"the replay holds the kept messages, up to the newest: {chats}")
    lost = next((m for m in back.messages if m.get("type") == "history-lost"), None)
    want = {"type": "history-lost", "first": start + 1, "last": replay[0]["seq"] - 1}
    if lost is None:
        report.add(False, f"expected {json.dumps(want)} before the replay; no history-lost came")
        report.hint("compare the seq asked for with the oldest kept one before replaying")
        return
    got = {key: lost.get(key) for key in want}
    report.add(got == want, f"expected {json.dumps(want)}, got {json.dumps(got)}")
    before = back.messages.index(lost) < back.messages.index(replay[0])
    report.add(before, "history-lost comes before the replay")
