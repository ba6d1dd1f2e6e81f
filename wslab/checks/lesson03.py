"""Exercise checks for lesson 03: the learner's clients against a real chat server.

The blanks are :class:`~wslab.checks.report.Exercise` objects: ``tutorial_client_exercise``
(the reader/writer client of section 1), ``jittered_delays_exercise`` (full jitter) and
``check_reconnecting_client`` (section 4's client, whose outbox is resent on ``live``; it
passes on wslab's :class:`~wslab.clients.ChatClient` too). The end-of-lesson exercises
(``check_equal_jitter``, ``check_collect``, ``check_gives_up``) are exercises as well.

Like every check, each returns a :class:`~wslab.checks.report.CheckReport` saying what was
tried, what was expected and what came back.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
from collections.abc import Awaitable, Callable, Iterator
from itertools import islice
from typing import Any

from ..clients.chat import ChatClient
from ..core.connection_log import LogKind
from ..core.room_event import EventKind
from ..runtime.event_log import EventLog
from ..runtime.handles import wait_until
from ..servers.chat import ChatServer
from ..solutions import lesson03 as solutions
from .report import FAILED, REPLY_TIMEOUT, CheckReport, call, error_text, exercise, until

__all__ = [
    "check_collect",
    "check_equal_jitter",
    "check_gives_up",
    "check_reconnecting_client",
    "jittered_delays_exercise",
    "tutorial_client_exercise",
]


# Section 1: the tutorial's client


@exercise(
    reference=solutions.tutorial_client,
    hints=[
        "two activities on one connection: a task that prints whatever arrives, and a loop that"
        " sends what is typed; an `async with connect(...)` block holds the connection",
        "the name goes first; then asyncio.create_task(...) starts the reader, and the loop awaits"
        " stdin.get() for each line",
        "on '/quit', leave the loop, close the connection yourself (code 1000), then await the"
        " reader task, which ends when the server answers the close",
    ],
)
async def tutorial_client_exercise(client: Callable[[str, str, Any], Awaitable[None]]) -> CheckReport:
    """Section 1's client, ``client(url, name, stdin)``: the name first, then what arrives is printed
    while each line taken from ``stdin`` is sent; ``/quit`` closes with 1000 and returns."""
    report = CheckReport("tutorial client")
    log = EventLog()
    chat = ChatServer(server_id="check")
    handle = await chat.serve(name="check:tutorial-client", log=log)
    bob = ChatClient(handle.url, "bob").start()
    stdin: asyncio.Queue[str] = asyncio.Queue()
    printed = io.StringIO()  # what the client prints, kept out of the lesson's output
    running: asyncio.Future[None] | None = None
    try:
        await wait_until(lambda: bob.live, timeout=REPLY_TIMEOUT)
        with contextlib.redirect_stdout(printed):
            running = asyncio.ensure_future(client(handle.url, "learner", stdin))
            if await _converse(report, chat, bob, stdin, printed, running):
                await _quit(report, log, stdin, running)
    finally:
        if running is not None:
            running.cancel()
            with contextlib.suppress(BaseException):
                await running
        await bob.stop()
        await handle.stop()
    return report


async def _converse(
    report: CheckReport,
    chat: Any,
    bob: Any,
    stdin: asyncio.Queue[str],
    printed: io.StringIO,
    running: asyncio.Future[None],
) -> bool:
    """The name first, what arrives printed, a typed line sent; False if the client is gone already."""
    joined = lambda: "learner" in chat.room.users or running.done()  # noqa: E731
    if not await until(report, "the client joins as 'learner' (its first message)", joined, REPLY_TIMEOUT):
        report.hint("send the name as the first message, right after connecting")
        return False
    if running.done():
        exc = running.exception()
        report.add(False, f"the client returned at once{f', raising {error_text(exc)}' if exc else ''}")
        return False
    report.add(True, "the name went first: the server has 'learner' in the room")
    await bob.send("hi learner")
    shown = lambda: "[bob] hi learner" in printed.getvalue()  # noqa: E731
    if await until(report, "what arrives is printed: '[bob] hi learner'", shown, REPLY_TIMEOUT):
        report.add(True, "what arrives is printed: '[bob] hi learner'")
    else:
        report.hint("a reader task: `async for message in ws: print(message)`, started before the loop")
    await stdin.put("hello bob")
    sent = lambda: bob.texts()[-1:] == ["hello bob"]  # noqa: E731
    if await until(report, "a typed line ('hello bob') reaches bob", sent, REPLY_TIMEOUT):
        report.add(True, "a typed line reaches bob: 'hello bob'")
    return True


async def _quit(report: CheckReport, log: EventLog, stdin: asyncio.Queue[str], running: Any) -> None:
    await stdin.put("/quit")
    done, _ = await asyncio.wait({running}, timeout=REPLY_TIMEOUT)
    if not done:
        report.add(False, "'/quit': the client should close and return, but it still runs")
        report.hint("on '/quit', leave the loop, close the connection, and await the reader task")
        return
    if (exc := running.exception()) is not None:
        report.add(False, f"'/quit': the client raised {error_text(exc)}")
        return
    with contextlib.suppress(TimeoutError):
        await wait_until(lambda: bool(_closes(log)), timeout=REPLY_TIMEOUT)
    closes = [f"{event.code} {event.text}" for event in _closes(log)]
    ok = closes == ["1000 by client"]
    report.add(ok, f"'/quit': the client returned; the server saw it close: {closes or 'no close yet'}")
    if not ok:
        report.hint("close the connection yourself (code 1000) before returning: the connection's close()")


def _closes(log: EventLog) -> list[Any]:
    return [event for event in log if event.direction is LogKind.DISCONNECT]


# Section 4: full jitter, and the reconnecting client


#: The ceilings of ``jittered_delays()``'s first eight delays, with its defaults.
CEILINGS = [0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 2.0, 2.0]


@exercise(
    reference=solutions.jittered_delays,
    hints=[
        "a generator: a `while True` loop that yields one delay per attempt, for ever",
        "each delay is random between 0 and the current ceiling: random.uniform() draws one",
        "the ceiling starts at `first` and, after each delay, grows by `factor` up to `cap`: min(cap, ...)",
    ],
)
def jittered_delays_exercise(jittered_delays: Callable[..., Iterator[float]]) -> CheckReport:
    """``jittered_delays(first=0.05, factor=2, cap=2.0)``: an endless iterator of delays, each at random
    between 0 and its ceiling, the ceilings growing from ``first`` by ``factor`` up to ``cap``."""
    report = CheckReport("jittered delays")
    endless = call(report, "50 delays from jittered_delays()", lambda: list(islice(jittered_delays(), 50)))
    if endless is FAILED:
        return report
    report.add(len(endless) == 50, f"it never ends: 50 delays asked, {len(endless)} came")
    runs = [call(report, "jittered_delays()", lambda: list(islice(jittered_delays(), 8))) for _ in range(300)]
    if FAILED in runs or any(len(run) < 8 for run in runs):
        return report
    outside = []
    for attempt, ceiling in enumerate(CEILINGS):
        values = [run[attempt] for run in runs]
        if not all(0 <= v <= ceiling + 1e-9 for v in values):
            outside.append(
                f"delay {attempt} ranged {min(values):.3f} to {max(values):.3f} s, not 0 to {ceiling:g}"
            )
    ceilings = ", ".join(f"{c:g}" for c in CEILINGS)
    report.add(
        not outside,
        f"300 runs: each delay between 0 and its ceiling ({ceilings} s)" + "".join(f"; {o}" for o in outside),
    )
    last = [run[7] for run in runs]
    spread = min(last) < 0.5 and max(last) > 1.5
    seen = "" if spread else f": it ranged {min(last):.2f} to {max(last):.2f} s"
    report.add(spread, f"300 runs: delay 7 falls anywhere in [0, 2] s, below 0.5 s and above 1.5 s{seen}")
    if not spread:
        report.hint(
            "full jitter draws anywhere from 0 to the ceiling, every time: random.uniform(0, ceiling)"
        )
    options = call(
        report,
        "jittered_delays(first=1, factor=3, cap=5)",
        lambda: list(islice(jittered_delays(first=1, factor=3, cap=5), 4)),
    )
    if options is not FAILED:
        ok = len(options) == 4 and all(0 <= v <= c for v, c in zip(options, [1, 3, 5, 5], strict=True))
        seen = "" if ok else f": got {[round(v, 2) for v in options]}"
        report.add(ok, f"jittered_delays(first=1, factor=3, cap=5): within the ceilings 1, 3, 5, 5{seen}")
    return report


@exercise(
    reference=solutions.ResumingClient,
    hints=[
        "resend() runs when the server says live: send each outbox entry again, as"
        " {'type': 'chat', 'text': ..., 'ref': ...}, oldest first (a dict keeps insertion order)",
        "send() keeps adding to the outbox while you resend (the client is not live yet): loop until"
        " no entry is left that you have not sent",
        "last, make send() write directly again: it does once self.connection holds the connection",
    ],
    title="reconnecting client",
)
async def check_reconnecting_client(make: Callable[[str, str], Any], *, outage: float = 0.5) -> CheckReport:
    """A client that reconnects with backoff, resumes, and resends its outbox in order.

    ``make(url, name)`` builds the client; it needs ``await client.run()`` (connect, and
    reconnect until cancelled), ``await client.send(text)`` and ``client.texts(author=...)``.
    Its server restarts (1012) and stays down ``outage`` seconds, refusing every handshake
    meanwhile; others talk, and the client's user types, while it is away.
    """
    report = CheckReport("reconnecting client")
    chat = ChatServer(server_id="check")
    handle = await chat.serve(name="check:client")
    client = make(handle.url, "learner")
    running = asyncio.ensure_future(client.run())
    try:
        before, typed, missed = ["a1", "a2", "a3"], ["b1", "b2"], ["o1", "o2"]
        if not await until(report, "the client joins", lambda: "learner" in chat.room.users, REPLY_TIMEOUT):
            return report
        for text in before:
            await client.send(text)
        if await until(report, "a1..a3 are published", lambda: _said(chat, "learner") == before, 5):
            await handle.stop(code=1012, reason="restarting")
            for text in missed:  # others talk while the client is away
                await chat.broker.publish(chat.room.event(EventKind.CHAT, "other", text))
            for text in typed:  # and its user types
                await client.send(text)
            attempts = await _refuse_handshakes(handle.port, outage)
            handle = await chat.serve(name="check:client", port=handle.port)
            await _judge_reconnection(report, chat, client, before + typed, missed, attempts, outage)
    except Exception as exc:  # the learner's client raised: say so instead of a traceback
        report.add(False, f"the client raised {error_text(exc)}")
    finally:
        running.cancel()
        with contextlib.suppress(BaseException):
            await running
        await handle.stop()
    return report


def _said(chat: Any, name: str) -> list[str]:
    """What ``name`` said in the room, as the server published it (in order, duplicates too)."""
    return [e.text for e in chat.room.transcript if e.kind is EventKind.CHAT and e.name == name]


async def _refuse_handshakes(port: int, seconds: float) -> int:
    """Hold ``port`` for ``seconds``, closing every connection at once; returns how many came."""
    attempts = 0

    def refuse(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal attempts
        attempts += 1
        writer.close()

    refuser = await asyncio.start_server(refuse, "127.0.0.1", port)
    await asyncio.sleep(seconds)  # the outage: how long the server is away, not a wait for anything
    refuser.close()
    await refuser.wait_closed()
    return attempts


async def _judge_reconnection(
    report: CheckReport,
    chat: Any,
    client: Any,
    said: list[str],
    missed: list[str],
    attempts: int,
    outage: float,
) -> None:
    mine = lambda: _said(chat, "learner")  # noqa: E731
    await until(report, "the outbox goes out after the restart", lambda: len(mine()) >= len(said), 5)
    report.add(mine() == said, f"the room got {said} once each, in order: got {mine()}")
    if mine()[len(said) - 2 :] != said[-2:]:
        report.hint("keep what was sent in an outbox until its ack; send the outbox again once live")
    heard = lambda: client.texts(author="other")  # noqa: E731
    await until(report, "what others said while it was away arrives", lambda: heard() == missed, 5)
    report.add(heard() == missed, f"what others said while it was away, {missed}, arrived: got {heard()}")
    if heard() != missed:
        report.hint('the hello after a reconnect carries "resume": the last seq seen')
    calm = attempts <= 20
    report.add(calm, f"handshakes tried during the {outage:g} s outage: {'at most 20' if calm else attempts}")
    if not calm:
        report.hint("wait between attempts, longer each time, with jitter: reconnect_delays=")


# The exercises


@exercise(
    reference=solutions.equal_jitter,
    hints=[
        "the ceiling is min(10, 0.1 * 2**attempt); equal jitter keeps half of it and draws the rest",
        "half the ceiling, plus a random amount between 0 and the other half: random.uniform()",
    ],
    title="equal jitter",
)
def check_equal_jitter(equal_jitter: Callable[[int], float]) -> CheckReport:
    """Exercise 1: ``equal_jitter(attempt)``: random in ``[c / 2, c]``, ``c = min(10, 0.1 * 2**attempt)``."""
    report = CheckReport("equal jitter")
    samples = {
        attempt: call(
            report, f"equal_jitter({attempt})", lambda a=attempt: [equal_jitter(a) for _ in range(200)]
        )
        for attempt in range(12)
    }
    if FAILED in samples.values():
        return report
    for attempt, values in samples.items():
        ceiling = min(10.0, 0.1 * 2**attempt)
        inside = all(ceiling / 2 - 1e-9 <= v <= ceiling + 1e-9 for v in values)
        seen = "" if inside else f" (saw {min(values):.3f} to {max(values):.3f})"
        report.add(inside, f"attempt {attempt}: delays within [{ceiling / 2:g}, {ceiling:g}] s{seen}")
    report.add(
        len({round(v, 9) for v in samples[5]}) > 1,
        "attempt 5: delays differ from call to call (jitter)",
    )
    spread = max(samples[11]) - min(samples[11])
    seen = "" if spread > 2.5 else f" (they spread over {spread:.2f} s)"
    report.add(spread > 2.5, f"attempt 11: delays spread over the upper half, 5 to 10 s{seen}")
    if any(not ok and "within" in line for ok, line in report.results):
        report.hint("look at the lowest delay each attempt allows: never below half its ceiling")
    else:
        report.hint("every call picks its delay anew, at random: the random module")
    return report


@exercise(
    reference=solutions.collect,
    hints=[
        "an `async with connect(...)` block closes the connection when it ends",
        "send the name, then read one message more than you keep: the first is the welcome",
    ],
)
async def check_collect(collect: Callable[[str, str, int], Awaitable[list[str]]]) -> CheckReport:
    """Exercise 2: ``await collect(url, name, n)``: join, return the first ``n`` lines after the welcome."""
    report = CheckReport("collect")
    chat = ChatServer(server_id="check")
    handle = await chat.serve(name="check:collect")
    talker = ChatClient(handle.url, "talker").start()
    try:
        await wait_until(lambda: talker.live)
        task = asyncio.ensure_future(collect(handle.url, "learner", 3))
        await wait_until(lambda: "learner" in chat.room.users or task.done(), timeout=REPLY_TIMEOUT)
        if task.done() and (exc := task.exception()) is not None:
            report.add(False, f"collect raised {error_text(exc)}")
            return report
        await talker.send("first")
        await talker.send("second")
        want = [">>> learner joined the chat", "[talker] first", "[talker] second"]
        try:
            got = await asyncio.wait_for(task, REPLY_TIMEOUT)
        except TimeoutError:
            report.add(False, f"collect did not return within {REPLY_TIMEOUT:g} s (expected {want})")
            report.hint("read with `await ws.recv()` in a loop until you have n lines, then return them")
            return report
        report.add(got == want, f"expected {want}, got {got}")
        if got and got[0].startswith("Welcome"):
            report.hint("skip the server's 'Welcome, <name>!' line; it is not part of the chat")
        await wait_until(lambda: "learner" not in chat.room.users, timeout=REPLY_TIMEOUT)
        report.add(True, "the connection was closed afterwards")
    except TimeoutError:
        report.add(False, "the connection was left open: close it (async with connect(...) does)")
    finally:
        await talker.stop()
        await handle.stop()
    return report


@exercise(
    reference=solutions.PoliteClient,
    hints=[
        "the `async for connection in connect(...)` loop reconnects after each close: return from"
        " run() to stop it",
        "after the reading loop ends, connection.close_code says why: 1008 is a refusal",
    ],
    title="gives up on 1008",
)
async def check_gives_up(make: Callable[[str, str], Any]) -> CheckReport:
    """Exercise 3: a client stops for good when the server refuses it (1008), and only then.

    A name already in the room is refused with an error and close code 1008: ``run()``
    must return, after one try. A server restart (1012) must still be reconnected.
    """
    report = CheckReport("gives up on 1008")
    chat = ChatServer(server_id="check")
    handle = await chat.serve(name="check:gives-up")
    holder = ChatClient(handle.url, "taken").start()
    tasks: list[asyncio.Future[Any]] = []
    try:
        await wait_until(lambda: holder.live, timeout=REPLY_TIMEOUT)
        tasks.append(asyncio.ensure_future(make(handle.url, "taken").run()))
        stopped = await _finished(tasks[-1], REPLY_TIMEOUT)
        once = chat.room.stats.rejected == 1
        report.add(
            stopped and once,
            "refused with 1008: run() returned after one try"
            if stopped and once
            else f"refused with 1008: run() {'returned' if stopped else 'still running'}, after"
            f" {'one try' if once else 'trying again and again'}",
        )
        if not stopped:
            report.hint("after the connection ends, look at its close code: 1008 means do not come back")
        tasks.append(asyncio.ensure_future(make(handle.url, "learner").run()))
        await wait_until(lambda: "learner" in chat.room.users or tasks[-1].done(), timeout=REPLY_TIMEOUT)
        handle = await chat.serve(name="check:gives-up", port=handle.port)  # a restart: 1012
        back = await _finished(asyncio.ensure_future(wait_until(lambda: "learner" in chat.room.users)), 5)
        report.add(back, "after a restart (1012) it reconnected")
    finally:
        for task in tasks:
            task.cancel()
        await holder.stop()
        await handle.stop()
    return report


async def _finished(task: asyncio.Future[Any], timeout: float) -> bool:
    """Whether ``task`` ends within ``timeout`` (its exception, if any, is retrieved)."""
    done, _ = await asyncio.wait({task}, timeout=timeout)
    if done and not task.cancelled():
        task.exception()
    return bool(done)
