"""Exercise checks for lesson 02: the learner's chat rules, and a chat room on real connections.

:func:`check_find_gaps` and :func:`check_username_rules` try plain functions on values. The
room checks start a server on a free loopback port, talk to it as clients would, stop it,
and return a :class:`~wslab.checks.report.CheckReport`. The chat under test is either a
connection handler (the lesson's own) or a :class:`~wslab.servers.ChatServer`: the same
checks pass on both, which is the point.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator, Callable
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.uri import parse_uri

from ..runtime.handles import Handler, ServerHandle, serve, wait_until
from .report import REPLY_TIMEOUT, CheckReport, Hints, error_text, serving, until

__all__ = [
    "check_find_gaps",
    "check_history_lost",
    "check_lag_closes",
    "check_resuming_room",
    "check_username_rules",
]

#: Room events (the other json messages, welcome, ack, live, ping, are not looked at).
EVENT_TYPES = ("chat", "join", "leave")
#: Padding that makes each burst message about 130 bytes: small buffers fill after a few dozen.
PADDING = "." * 110
#: Tiny kernel buffers and write limit, so a client that does not read shows up quickly.
SMALL_BUFFERS: dict[str, Any] = {"send_buffer": 4096, "write_limit": 4096}


# The rules, on plain values

FIND_GAPS_HINTS: Hints = [
    ("[1, 2, 2, 3]", "a repeated number is a duplicate, not a gap: compare with the highest seq seen so far"),
]


def check_find_gaps(find_gaps: Callable[[list[int]], list[tuple[int, int]]]) -> CheckReport:
    """Exercise: ``find_gaps(seqs)`` lists the ``(first, last)`` ranges missing from a run of seqs."""
    report = CheckReport("find gaps")
    cases: list[tuple[list[int], list[tuple[int, int]]]] = [
        ([1, 2, 3, 4], []),
        ([1, 2, 5, 6], [(3, 4)]),
        ([7, 9, 12], [(8, 8), (10, 11)]),
        ([3], []),
        ([], []),
        ([1, 2, 2, 3], []),
    ]
    for seqs, want in cases:
        try:
            got = [tuple(gap) for gap in find_gaps(list(seqs))]
        except Exception as exc:
            report.add(False, f"find_gaps({seqs}) raised {error_text(exc)}")
            continue
        report.add(got == want, f"find_gaps({seqs}): expected {want}, got {got}")
    report.hints_for(FIND_GAPS_HINTS)
    return report


def check_username_rules(validate: Callable[[str, set[str]], str]) -> CheckReport:
    """Exercise: ``validate(name, taken)`` returns the cleaned name or raises ValueError."""
    report = CheckReport("username rules")
    good = [("alice", "alice"), ("  bob  ", "bob"), ("x" * 32, "x" * 32), ("Zoë 🌱", "Zoë 🌱")]
    bad = [
        ("", "empty"),
        ("   ", "only spaces"),
        ("x" * 33, "33 characters"),
        ("eve\nmallory", "a newline inside"),
        ("bell\x07", "a control character"),
        ("Alice", "taken by 'alice' (case differs)"),
    ]
    for raw, want in good:
        try:
            got = validate(raw, {"alice-2"})
            report.add(got == want, f"{raw!r}: expected {want!r}, got {got!r}")
        except ValueError as exc:
            report.add(False, f"{raw!r} should be accepted, but was refused: {exc}")
    for raw, why in bad:
        try:
            got = validate(raw, {"alice"})
            report.add(False, f"{raw!r} ({why}) should be refused, but was accepted as {got!r}")
        except ValueError as exc:
            report.add(bool(str(exc)), f"{raw!r} ({why}) refused: {exc}")
    report.hint("strip first, then check: empty, length <= 32, no control characters, not taken (casefold)")
    return report


# Rooms on real connections: the clients the checks play


def _slow_reader_options(url: str) -> dict[str, Any]:
    """``connect()`` options for a client that reads nothing: a socket with a 4 KiB receive
    buffer, set before connecting (TCP cannot shrink a window it already offered), a queue
    of one message, after which websockets stops reading from the socket, and no
    compression (the checks' repetitive texts would shrink to almost nothing)."""
    uri = parse_uri(url)
    sock = socket.socket(socket.AF_INET6 if ":" in uri.host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((uri.host, uri.port))  # loopback: at once
    return {"sock": sock, "max_queue": 1, "compression": None}


async def _start(chat: Any, name: str) -> ServerHandle:
    """Serve a handler, or a ChatServer (which must subscribe to its broker: its own serve())."""
    if hasattr(chat, "serve_websocket"):
        return await chat.serve(name=name, **SMALL_BUFFERS)
    return await serve(chat, name=name, **SMALL_BUFFERS)


class _Reader:
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

    def chats(self) -> list[str]:
        return [e.get("text", "") for e in self.events() if e["type"] == "chat"]

    async def stop(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


@contextlib.asynccontextmanager
async def _json_client(
    url: str, name: str, resume: int | None = None, *, slow: bool = False
) -> AsyncIterator[Any]:
    """A json client: hello, then a background reader (none if ``slow``); yields ``(connection, reader)``."""
    async with connect(url, **(_slow_reader_options(url) if slow else {})) as connection:
        hello: dict[str, Any] = {"type": "hello", "name": name}
        if resume is not None:
            hello["resume"] = resume
        await connection.send(json.dumps(hello))
        reader = None if slow else _Reader(connection)
        try:
            yield connection, reader
        finally:
            if reader is not None:
                await reader.stop()


async def _say(connection: ClientConnection, texts: list[str]) -> None:
    for text in texts:
        await connection.send(json.dumps({"type": "chat", "text": text, "ref": text}))
        await asyncio.sleep(0)  # let the server run between messages, as a network would


def _consecutive(seqs: list[int]) -> bool:
    return seqs == list(range(seqs[0], seqs[0] + len(seqs))) if seqs else False


def _welcome_seq(reader: _Reader) -> int | None:
    welcome = next((m for m in reader.messages if m.get("type") == "welcome"), None)
    return welcome.get("seq") if welcome is not None and isinstance(welcome.get("seq"), int) else None


# The tutorial's channel, and its silent loss


async def check_lag_closes(handler: Handler, *, burst: int = 1000) -> CheckReport:
    """Exercise: a client that lagged behind the channel is closed with 4001, not left deaf.

    Plain dialect, as in the tutorial. ``slowpoke`` reads nothing while ``talker`` sends
    ``burst`` long messages, then reads everything: it must get the close code 4001 after
    what reached it. ``bob`` reads all along and must get every message, and stay.
    """
    report = CheckReport("lag closes with 4001")
    async with (
        serving(report, serve(handler, name="check:lag", **SMALL_BUFFERS)) as server,
        connect(server.url) as bob,
        connect(server.url, **_slow_reader_options(server.url)) as slow,
        connect(server.url) as talker,
    ):
        await _lag_scenario(report, bob, slow, talker, burst)
    return report


async def _lag_scenario(
    report: CheckReport, bob: ClientConnection, slow: ClientConnection, talker: ClientConnection, burst: int
) -> None:
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
        got_all = await until(report, f"bob gets all {burst}", lambda: f"[talker] {texts[-1]}" in heard, 10)
        if got_all:
            report.add(
                heard.count(f"[talker] {texts[0]}") == 1 and bob.state.name == "OPEN",
                f"bob, who kept reading, got all {burst} messages and is still connected",
            )
        code = await _read_to_the_end(slow)
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
    finally:
        listening.cancel()


async def _read_to_the_end(connection: ClientConnection) -> int | None:
    """Read until the connection closes (its close code) or stays silent (None)."""
    while True:
        try:
            await asyncio.wait_for(connection.recv(), REPLY_TIMEOUT)
        except TimeoutError:
            return None
        except ConnectionClosed as exc:
            return exc.rcvd.code if exc.rcvd is not None else 1006


# The resuming room


async def check_resuming_room(chat: Any, *, flood: int = 1000) -> CheckReport:
    """The resuming room: numbered events, resume after a seq, 4001 for a client that falls behind.

    ``chat`` is a json-dialect connection handler or a ChatServer. Clients send
    ``{"type": "hello", "name": ..., "resume": seq}`` then ``{"type": "chat", "text": ...}``;
    the room answers with a welcome carrying its ``seq``, then events
    ``{"type": "chat" | "join" | "leave", "seq": ..., "name": ..., "text": ...}``.
    """
    report = CheckReport("resuming room")
    async with (
        serving(report, _start(chat, "check:room")) as server,
        _json_client(server.url, "talker") as (talker, talked),
    ):
        last = await _numbering(report, server.url, talker, talked)
        if last is not None:
            await _resume(report, server.url, talker, talked, last, flood)
    return report


async def _numbering(report: CheckReport, url: str, talker: ClientConnection, talked: _Reader) -> int | None:
    """Five messages reach a listener numbered one after the other; returns the last seq."""
    texts = [f"n{i}" for i in range(5)]
    async with _json_client(url, "listener") as (_, heard):
        await wait_until(lambda: _welcome_seq(heard) is not None or heard.task.done(), timeout=REPLY_TIMEOUT)
        report.add(_welcome_seq(heard) is not None, 'the first message is {"type": "welcome", "seq": <int>}')
        await _say(talker, texts)
        if not await until(report, "the listener gets n0..n4", lambda: heard.chats()[-1:] == ["n4"], 5):
            return None
        seqs = [e["seq"] for e in heard.events()]
        ok = heard.chats() == texts and _consecutive(seqs)
        report.add(ok, f"the listener got {heard.chats()} numbered one after the other: seqs {seqs}")
        if not ok:
            report.hint("publish() numbers every event: self.seq += 1, and the event carries it")
        return seqs[-1] if seqs else None


async def _resume(
    report: CheckReport, url: str, talker: ClientConnection, talked: _Reader, last: int, flood: int
) -> None:
    """While away, three messages; a client resuming after ``last`` gets exactly what followed."""
    texts = [f"r{i}" for i in range(3)]
    await _say(talker, texts)
    if not await until(report, "the talker's r0..r2 go out", lambda: talked.saw("r2"), 5):
        return
    async with _json_client(url, "returning", resume=last) as (_, back):
        if not await until(report, f"resume after seq {last}: r0..r2", lambda: "r2" in back.chats(), 5):
            report.hint('a hello with "resume": seq gets the kept events numbered above seq, oldest first')
            return
        seqs = [e["seq"] for e in back.events()]
        ok = seqs[:1] == [last + 1] and _consecutive(seqs) and back.chats()[:3] == texts
        report.add(ok, f"resume after seq {last}: got seqs {seqs} with chats {back.chats()}")
        await _flood(report, url, talker, back, flood)


async def _flood(report: CheckReport, url: str, talker: ClientConnection, back: _Reader, flood: int) -> None:
    """A client that reads nothing is closed with 4001; the others get every message."""
    texts = [f"f{i} {PADDING}" for i in range(flood)]
    async with _json_client(url, "slowpoke", slow=True) as (slow, _):
        await _say(talker, texts)
        if await until(report, f"a reader gets all {flood} messages", lambda: texts[-1] in back.chats(), 10):
            chats = back.chats()
            report.add(
                chats[chats.index(texts[0]) :] == texts,
                f"a client that keeps reading gets all {flood} messages, in order",
            )
        code = await _read_to_the_end(slow)
        shown = "still open, silent" if code is None else f"closed {code}"
        report.add(code == 4001, f"a client that reads nothing is closed with 4001: {shown}")
        if code != 4001:
            report.hint("after each publish, close (4001) whoever is more than max_lag events behind")


async def check_history_lost(chat: Any) -> CheckReport:
    """Exercise: resuming from before the history, the client is told which events are gone.

    ``chat`` must keep only its last 5 events. The client resumes after its welcome's seq
    once 10 messages went by: it must get ``{"type": "history-lost", "first": a, "last": b}``
    (``a`` the first seq it asked for, ``b`` the last one gone), then the kept events from
    ``b + 1``.
    """
    report = CheckReport("history lost")
    texts = [f"h{i}" for i in range(10)]
    async with (
        serving(report, _start(chat, "check:history")) as server,
        _json_client(server.url, "talker") as (talker, talked),
    ):
        await wait_until(
            lambda: _welcome_seq(talked) is not None or talked.task.done(), timeout=REPLY_TIMEOUT
        )
        start = _welcome_seq(talked) or 0
        await _say(talker, texts)
        if await until(report, "the talker's 10 messages go out", lambda: talked.saw(texts[-1]), 5):
            async with _json_client(server.url, "returning", resume=start) as (_, back):
                if await until(report, "the replay ends with h9", lambda: texts[-1] in back.chats(), 5):
                    _judge_history_lost(report, back, start, texts)
    return report


def _judge_history_lost(report: CheckReport, back: _Reader, start: int, texts: list[str]) -> None:
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
