"""Exercise checks for lesson 03: the learner's backoff, a collecting client, and a client that
reconnects, resumes and knows when to give up, against a real chat server.

Like every check, each returns a :class:`~wslab.checks.report.CheckReport` saying what was
tried, what was expected and what came back.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

from ..clients.chat import ChatClient
from ..core.room_event import EventKind
from ..runtime.handles import wait_until
from ..servers.chat import ChatServer
from .report import REPLY_TIMEOUT, CheckReport, error_text, until

__all__ = ["check_backoff", "check_collect", "check_gives_up", "check_reconnecting_client"]

# The backoff, and a client that collects what it reads


def check_backoff(backoff: Callable[[int], float]) -> CheckReport:
    """Exercise: ``backoff(attempt)`` with equal jitter: random in ``[c / 2, c]``.

    ``c = min(10, 0.1 * 2**attempt)``: the ceiling doubles from 0.1 s up to 10 s.
    """
    report = CheckReport("backoff")
    samples = {attempt: [backoff(attempt) for _ in range(200)] for attempt in range(12)}
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


async def check_collect(collect: Callable[[str, str, int], Awaitable[list[str]]]) -> CheckReport:
    """Exercise: ``await collect(url, name, n)``: join, return the first ``n`` lines after the welcome."""
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


# The reconnecting client


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


async def check_gives_up(make: Callable[[str, str], Any]) -> CheckReport:
    """Exercise: a client stops for good when the server refuses it (1008), and only then.

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
