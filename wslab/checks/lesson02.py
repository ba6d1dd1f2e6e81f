"""Exercise checks for lesson 02: the tutorial's chat, the resuming room's rules, rooms on real connections.

The blanks are :class:`~wslab.checks.report.Exercise` objects, each checking one piece of
the lesson with wslab's answer for the other pieces:

* the tutorial's chat: ``forward_exercise`` (the forward loop) and ``handle_exercise`` (the
  username first, join and leave, the receive loop), each run on real connections in the
  lesson's own ``TutorialChat`` (its channel raises the lesson's ``Lagged``);
* the resuming room's rules, without I/O: ``publish_exercise`` (number and keep, bounded),
  ``after_exercise`` (what a resuming client gets), ``behind_exercise`` (who is too far
  behind: 4001) and ``say_exercise`` (a resent ``ref`` is acknowledged, never published twice);
* ``check_resuming_room``: the whole room on real connections, which passes on the lesson's
  room and on :class:`~wslab.servers.ChatServer` alike.

The end-of-lesson exercises (``check_find_gaps`` ... ``check_history_lost``) are exercises too.
The scenarios on real connections are in :mod:`wslab.checks.rooms`.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection

from ..runtime.handles import serve, wait_until
from ..solutions import lesson02 as solutions
from . import rooms
from .chat_clients import NoReply, json_client, next_message, slow_reader_options, welcome_seq
from .report import FAILED, REPLY_TIMEOUT, CheckReport, Hints, call, error_text, exercise, serving, until

__all__ = [
    "after_exercise",
    "behind_exercise",
    "check_find_gaps",
    "check_history_lost",
    "check_lag_closes",
    "check_resuming_room",
    "check_username_rules",
    "forward_exercise",
    "handle_exercise",
    "publish_exercise",
    "say_exercise",
]


def _with(base: type, **methods: Any) -> type:
    """``base`` with ``methods`` (the learner's) in place of its own."""
    return type(base.__name__, (base,), methods)


# The tutorial's chat: the forward loop, then the handler, each in the lesson's TutorialChat


@exercise(
    reference=solutions.TutorialChat.forward,
    hints=[
        "loop for ever on `await receiver.recv()`: each value is an (author, text) pair",
        "skip a value whose author is this client's own name; send the others as f'[{author}] {text}'",
        "wrap the loop in try: ConnectionClosed (the client left) ends it quietly; Lagged ends it too,"
        " noted in self.deaf[name]",
    ],
)
async def forward_exercise(forward: Callable[..., Any], chat_class: type) -> CheckReport:
    """Section 1's forward loop, in ``chat_class`` (the lesson's TutorialChat, with its channel):
    every value of the channel to this client except its own; a client that left ends the loop
    quietly; a receiver that lagged ends it too, noted in ``deaf``."""
    report = CheckReport("forward")
    chat = _with(chat_class, forward=forward)(capacity=8)
    loops: dict[str, asyncio.Task[Any]] = {}

    async def forwarding(connection: ServerConnection) -> None:
        name = str(await connection.recv())
        receiver = chat.channel.subscribe()
        if name == "slowpoke":  # 11 values into 8 slots before its first receive: it lags 3
            for i in range(chat.channel.capacity + 3):
                chat.channel.send(("bob", f"m{i}"))
        loops[name] = loop = asyncio.ensure_future(chat.forward(connection, receiver, name))
        await asyncio.wait({loop})

    async with serving(report, serve(forwarding, name="check:forward")) as server:
        async with connect(server.url) as ann:
            await rooms.delivery(report, chat, ann, loops)
        await rooms.gone_quietly(report, chat, loops)
        async with connect(server.url) as slowpoke:
            await rooms.lagging(report, chat, slowpoke, loops)
    return report


@exercise(
    reference=solutions.TutorialChat.handle,
    hints=[
        "in order: subscribe, read the name, welcome the client, announce the join, start the forward"
        " loop as a task, then the receive loop",
        "the channel carries (author, text) pairs: the join is ('system', f'>>> {name} joined the chat')",
        "put the receive loop in try/finally: the finally runs on a clean close and on a dropped"
        " connection alike; there, cancel the forward task, forget the peer, announce the leave",
    ],
)
async def handle_exercise(handle: Callable[..., Any], chat_class: type) -> CheckReport:
    """Section 1's handler, in ``chat_class``: the username first, join and leave for everyone,
    each message to the others, blank ones skipped, ``peers`` kept up to date."""
    report = CheckReport("handle")
    chat = _with(chat_class, handle=handle)()
    async with (
        serving(report, serve(chat.handle, name="check:handle")) as server,
        connect(server.url) as alice,
    ):
        await alice.send("  alice ")
        welcome = [await next_message(alice) for _ in range(2)]
        want = ["Welcome, alice!", "[system] >>> alice joined the chat"]
        rooms.expect(report, "the name comes first; then alice is welcomed and hears her join", welcome, want)
        if isinstance(welcome[0], NoReply):
            report.hint("read the first message as the name (stripped), then send 'Welcome, <name>!'")
        async with connect(server.url) as bob:
            await rooms.talk(report, chat, alice, bob)
        await rooms.left(report, chat, alice)
    return report


# The resuming room's rules, each checked in wslab's room without I/O


def _wire(room: Any) -> list[Any]:
    """The history's events, decoded (or what is there, if they are not json)."""
    decoded = []
    for entry in room.history:
        try:
            decoded.append(json.loads(entry[1]))
        except (TypeError, ValueError, IndexError):
            decoded.append(entry)
    return decoded


@exercise(
    reference=solutions.ResumingRoom.publish,
    hints=[
        "three steps: count the event (the room's seq goes up by one), keep it, forget the oldest",
        "keep (seq, json text) pairs; the text is the event's fields plus its seq: {**event, 'seq': ...}",
        "bounded: once the history holds more than self.keep entries, delete the oldest (a slice does it)",
    ],
)
def publish_exercise(publish: Callable[..., Any]) -> CheckReport:
    """``publish(**event)`` numbers the event, keeps it as json in a bounded history, returns its seq."""
    report = CheckReport("publish")
    room = _with(solutions.ResumingRoom, publish=publish)(history=5)
    seqs = [
        call(report, f"publish(text='t{i}')", lambda i=i: room.publish(type="chat", text=f"t{i}"))
        for i in range(8)
    ]
    if FAILED in seqs:
        return report
    rooms.expect(report, "8 events published: the seqs returned", seqs, list(range(1, 9)))
    rooms.expect(report, "the room's seq, its newest event's", room.seq, 8)
    kept = [entry[0] if isinstance(entry, tuple) else entry for entry in room.history]
    if not rooms.expect(report, "history=5 keeps the newest 5: their seqs", kept, [4, 5, 6, 7, 8]):
        report.hint("delete the oldest entries once there are more than self.keep")
    newest = _wire(room)[-1] if room.history else None
    rooms.expect(
        report, "each kept as json with its seq: the newest", newest, {"type": "chat", "text": "t7", "seq": 8}
    )
    return report


@exercise(
    reference=solutions.ResumingRoom.after,
    hints=[
        "the history is in seq order: keep the entries whose seq is above the one asked for",
        "a comprehension over self.history does it; or, faster, work out where seq + 1 sits: the"
        " oldest kept seq is self.seq - len(self.history) + 1",
    ],
)
def after_exercise(after: Callable[[int], Any]) -> CheckReport:
    """``after(seq)``: the kept ``(seq, text)`` entries numbered above ``seq``, oldest first."""
    report = CheckReport("after")
    room = _with(solutions.ResumingRoom, after=after)(history=5)
    empty = call(report, "after(0) in an empty room", room.after, 0)
    if empty is not FAILED:
        rooms.expect(report, "after(0) in an empty room", list(empty), [])
    for i in range(8):
        room.publish(type="chat", text=f"t{i}")
    for seq in [5, 8, 3, 0]:
        got = call(report, f"after({seq})", room.after, seq)
        if got is FAILED:
            continue
        want = [entry for entry in room.history if entry[0] > seq]
        entries = list(got)
        why = ", older than the oldest kept (4)" if seq < 4 else ""
        what = f"after({seq}), with seqs 4 to 8 kept{why}"
        if entries == want:
            report.add(True, f"{what}: the entries of seqs {[entry[0] for entry in want]}")
        elif all(entry in room.history for entry in entries):  # entries of the history, the wrong ones
            got_seqs = [entry[0] for entry in entries]
            report.add(False, f"{what}: expected the entries of seqs {[e[0] for e in want]}, got {got_seqs}")
        else:
            report.add(False, f"{what}: expected (seq, text) entries of the history, got {entries!r:.120}")
    return report


@exercise(
    reference=solutions.ResumingRoom.behind,
    hints=[
        "each cursor is [last, came]: the seq of the last event queued to the client, and the"
        " room's seq when it came",
        "a client is too far behind when self.seq is more than max_lag past the later of last and came",
        "collect those clients first, then delete their cursors (not while looping over the"
        " dict), and return them",
    ],
)
def behind_exercise(behind: Callable[[], Any]) -> CheckReport:
    """``behind()``: the clients more than ``max_lag`` events behind, taken out of ``cursors``."""
    report = CheckReport("behind")
    room = _with(solutions.ResumingRoom, behind=behind)(max_lag=3)
    room.join("ann")
    room.join("bob")
    for _ in range(3):
        room.publish(type="chat", text="x")
    room.cursors["ann"][0] = 3  # ann's forward loop has queued all three; bob's none
    _judge_behind(report, room, "bob is 3 behind, with max_lag=3", [])
    room.publish(type="chat", text="x")
    _judge_behind(report, room, "bob is 4 behind", ["bob"])
    rooms.expect(
        report, "the one sent away is out of cursors; the others stay", sorted(room.cursors), ["ann"]
    )
    room.join("cal", resume=0)  # comes back at seq 4, asking for everything since 0
    _judge_behind(report, room, "cal resumed from 0 at seq 4: replaying, not lagging", [])
    for _ in range(4):
        room.publish(type="chat", text="x")
    room.cursors["ann"][0] = 8
    _judge_behind(report, room, "cal's cursor is still at 0, 4 events after it came", ["cal"])
    _judge_behind(report, room, "asked again at once", [])
    return report


def _judge_behind(report: CheckReport, room: Any, what: str, want: list[str]) -> None:
    got = call(report, f"behind() when {what}", room.behind)
    if got is FAILED:
        return
    shown = sorted(got) if isinstance(got, list | set | tuple) else got
    if not rooms.expect(report, f"behind() when {what}", shown, want) and "resumed" in what:
        report.hint("lag counts from when a client came, at the earliest: max(last, came)")


@exercise(
    reference=solutions.ResumingRoom.say,
    hints=[
        "a message is known by its author and its ref together: keep a dict from (name, ref) to the seq",
        "a known (name, ref) is not published again: return the seq it got the first time",
        "a message without a ref cannot be recognised: publish it every time; forget the oldest"
        " refs once there are more than self.keep",
    ],
)
def say_exercise(say: Callable[..., Any]) -> CheckReport:
    """``say(name, text, ref)``: publish a client's message once per ``(name, ref)``; return its seq."""
    report = CheckReport("say")
    room = _with(solutions.ResumingRoom, say=say)(history=5)
    calls = [
        ("ann", "hi", "a-1", 1, "a new message"),
        ("ann", "hi", "a-1", 1, "the same again (a resend): its first seq, not published"),
        ("bob", "yo", "a-1", 2, "another author's ref: a new message"),
        ("ann", "free", None, 3, "no ref: published"),
        ("ann", "free", None, 4, "no ref, sent again: published again"),
    ]
    for name, text, ref, want, what in calls:
        got = call(report, f"say({name!r}, {text!r}, {ref!r})", room.say, name, text, ref)
        if got is FAILED:
            return report
        if got == want and room.seq == want:
            report.add(
                True, f"say({name!r}, {text!r}, {ref!r}), {what}: returns {got}, the room at seq {want}"
            )
        else:
            report.add(
                False,
                f"say({name!r}, {text!r}, {ref!r}), {what}: expected {want} with the room at seq {want};"
                f" got {got!r} with the room at seq {room.seq}",
            )
    first = _wire(room)[:1]
    rooms.expect(
        report, "the event published first", first, [{"type": "chat", "name": "ann", "text": "hi", "seq": 1}]
    )
    for i in range(20):
        if call(report, f"say('cal', 'm{i}', 'c-{i}')", room.say, "cal", f"m{i}", f"c-{i}") is FAILED:
            return report
    again = call(report, "say('cal', 'm19', 'c-19') again", room.say, "cal", "m19", "c-19")
    size = len(room.refs)
    shown = (
        f"{size} refs remembered; the newest one still known"
        if again == room.seq
        else f"{size} refs remembered; the newest one published again"
    )
    report.add(size <= 5 and again == room.seq, f"20 more messages with refs, with history=5: {shown}")
    if size > 5:
        report.hint("bounded like the history: forget the oldest ref once there are more than self.keep")
    return report


# The resuming room on real connections


@exercise(
    reference=solutions.ResumingChat,
    hints=[
        "a failing line names the rule: numbering is publish(), resume is after(), 4001 is behind(),"
        " a resent ref is say(); each has its own check above",
        "the connections are given: if your rules passed their checks, run the cells above again in order",
    ],
    title="resuming room",
)
async def check_resuming_room(chat: Any, *, flood: int = 1000) -> CheckReport:
    """The resuming room: numbered events, resume after a seq, a resent ref published once,
    4001 for a client that falls behind.

    ``chat`` is the lesson's ResumingChat class (made fresh), a json-dialect handler, or a
    ChatServer. Clients send ``{"type": "hello", "name": ..., "resume": seq}`` then
    ``{"type": "chat", "text": ..., "ref": ...}``; the room answers with a welcome carrying its
    ``seq``, an ``ack`` for each ref, then events ``{"type": "chat" | "join" | "leave", "seq": ...}``.
    """
    report = CheckReport("resuming room")
    async with (
        serving(report, rooms.start_chat(chat, "check:room")) as server,
        json_client(server.url, "talker") as (talker, talked),
    ):
        last = await rooms.numbering(report, server.url, talker)
        if last is not None:
            await rooms.resume(report, server.url, talker, talked, last, flood)
    return report


# The exercises

FIND_GAPS_HINTS: Hints = [
    ("[1, 2, 2, 3]", "a repeated number is a duplicate, not a gap: compare with the highest seq seen so far"),
]


@exercise(
    reference=solutions.find_gaps,
    hints=[
        "walk the seqs keeping the highest one seen so far; a seq more than one above it opens a gap",
        "the gap between a and b (b > a + 1) is (a + 1, b - 1)",
        "a repeated or older seq is a duplicate: it opens no gap and does not lower the highest seen",
    ],
)
def check_find_gaps(find_gaps: Callable[[list[int]], list[tuple[int, int]]]) -> CheckReport:
    """Exercise 1: ``find_gaps(seqs)`` lists the ``(first, last)`` ranges missing from a run of seqs."""
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


@exercise(
    reference=solutions.validate,
    hints=[
        "strip first, then check in order: empty, longer than 32, a control character, taken",
        "control characters are those whose unicodedata.category() is 'Cc'",
        "taken ignores case: compare casefold() of the name with casefold() of each taken one",
    ],
)
def check_username_rules(validate: Callable[[str, set[str]], str]) -> CheckReport:
    """Exercise 2: ``validate(name, taken)`` returns the cleaned name or raises ValueError."""
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


@exercise(
    reference=solutions.Chat4001,
    hints=[
        "only the forward loop changes: override forward() in a subclass of TutorialChat",
        "where the loop catches Lagged, close the connection instead of only noting it",
        "await connection.close(4001, reason): the client learns it fell behind and can come back",
    ],
    title="lag closes with 4001",
)
async def check_lag_closes(chat: Any, *, burst: int = 1000) -> CheckReport:
    """Exercise 3: a client that lagged behind the channel is closed with 4001, not left deaf.

    ``chat`` is a TutorialChat-like class (made fresh) or a handler. Plain dialect, as in the
    tutorial. ``slowpoke`` reads nothing while ``talker`` sends ``burst`` long messages, then
    reads everything: it must get the close code 4001 after what reached it. ``bob`` reads
    all along and must get every message, and stay.
    """
    report = CheckReport("lag closes with 4001")
    async with (
        serving(report, rooms.start_chat(chat, "check:lag")) as server,
        connect(server.url) as bob,
        connect(server.url, **slow_reader_options(server.url)) as slow,
        connect(server.url) as talker,
    ):
        await rooms.lag_scenario(report, bob, slow, talker, burst)
    return report


@exercise(
    reference=solutions.HistoryChat,
    hints=[
        "override welcome(): call the room's own first, then decide whether to send history-lost",
        "the oldest kept seq is self.seq - len(self.history) + 1; the client asked for resume + 1",
        "when resume + 1 is below the oldest kept, send history-lost with first = resume + 1 and"
        " last = the oldest kept minus one, before the forward loop starts",
    ],
)
async def check_history_lost(chat: Any) -> CheckReport:
    """Exercise 4: resuming from before the history, the client is told which events are gone.

    ``chat`` keeps only its last 5 events: a ResumingChat-like class (made with ``history=5``),
    a handler, or a ChatServer. The client resumes after its welcome's seq once 10 messages
    went by: it must get ``{"type": "history-lost", "first": a, "last": b}`` (``a`` the first
    seq it asked for, ``b`` the last one gone), then the kept events from ``b + 1``.
    """
    report = CheckReport("history lost")
    texts = [f"h{i}" for i in range(10)]
    async with (
        serving(report, rooms.start_chat(chat, "check:history", history=5)) as server,
        json_client(server.url, "talker") as (talker, talked),
    ):
        await wait_until(lambda: welcome_seq(talked) is not None or talked.task.done(), timeout=REPLY_TIMEOUT)
        start = welcome_seq(talked) or 0
        for text in texts:
            await talker.send(json.dumps({"type": "chat", "text": text, "ref": text}))
        if await until(report, "the talker's 10 messages go out", lambda: talked.saw(texts[-1]), 5):
            async with json_client(server.url, "returning", resume=start) as (_, back):
                if await until(report, "the replay ends with h9", lambda: texts[-1] in back.chats(), 5):
                    rooms.judge_history_lost(report, back, start, texts)
    return report
