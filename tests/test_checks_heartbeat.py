"""Lesson 05's exercise checks: the solutions pass, and wrong answers get NOT YET with the diff.

Every check runs the learner's code through a real FaultProxy on loopback, with timers a
fraction of a second apart in one event loop; each verdict asserted here comes from a run
during which the loop kept time within that fraction (``on_time``): a busy machine's
starved loop fires them together and proves nothing about the code under test.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from helpers import assert_hint, assert_not_yet, assert_passed, failing, on_time
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.server import ServerConnection

import wslab
from wslab.checks.lesson05 import (
    check_every_message_counts,
    check_heartbeat,
    check_watchdog,
    heartbeat_exercise,
)
from wslab.checks.report import CheckReport, Verdict
from wslab.core.heartbeat import HeartbeatPolicy
from wslab.runtime.keepalive import keep_alive
from wslab.servers import echo
from wslab.solutions import lesson05

#: The lesson's values, as a learner passes them to the checks (whose reports quote them).
INTERVAL, SILENCE = 0.3, 0.9
#: What separates a right verdict from a wrong one in check_heartbeat: a pong over the slow
#: link (0.1 s each way) comes that long before the silence counts as death.
HEARTBEAT_MARGIN = SILENCE - INTERVAL - 2 * 0.1
#: In check_every_message_counts: the busy client talks every INTERVAL / 3, a ping is due
#: after INTERVAL of silence.
BUSY_MARGIN = INTERVAL - INTERVAL / 3
#: The watchdog's timeout, and its check's margin: ticks come every third of it.
WATCHDOG_TIMEOUT = 0.6
WATCHDOG_MARGIN = WATCHDOG_TIMEOUT / 2


async def tutorial_heartbeat(connection: ServerConnection) -> None:
    """The tutorial's heartbeat: a ping every interval, whatever the client says."""
    beat = asyncio.create_task(keep_alive(connection, HeartbeatPolicy(INTERVAL, SILENCE)))
    try:
        async for message in connection:
            await connection.send(f"Echo: {message}")
    finally:
        beat.cancel()


async def drop_when_silent(connection: ServerConnection) -> None:
    """Never pings: drops any client silent for two intervals, a quiet live one included.

    At its deadline, not at the next of its ticks: ticking every INTERVAL, it dropped the
    quiet client about when the check looked (1.2 s), and either could come first.
    """

    async def watch() -> None:
        while (left := heard[0] + 2 * INTERVAL - time.monotonic()) > 0:
            await asyncio.sleep(left)
        connection.transport.abort()

    heard = [time.monotonic()]
    watcher = asyncio.create_task(watch())
    try:
        async for message in connection:
            heard[0] = time.monotonic()
            await connection.send(f"Echo: {message}")
    finally:
        watcher.cancel()


# --- the blank: the learner's heartbeat(connection, interval, timeout) --------------------


async def skeleton_heartbeat(connection: ServerConnection, interval: float, timeout: float) -> None:
    """Ping every interval; abort the connection once no pong came for timeout."""
    # Write it: ...
    raise NotImplementedError  # write it: see the comment above


async def never_gives_up(connection: ServerConnection, interval: float, timeout: float) -> None:
    """Pings every interval, and never asks whether the pongs still come."""
    while True:
        await asyncio.sleep(interval)
        await connection.ping()


async def old_signature(connection: ServerConnection) -> None:
    """The heartbeat as lesson 05 once wrote it, reading the lesson's globals."""
    await asyncio.sleep(INTERVAL)


async def test_the_heartbeat_blank_passes_wslabs_answer() -> None:
    report = await heartbeat_exercise(lesson05.heartbeat, interval=INTERVAL, timeout=SILENCE)
    assert_passed(report)
    assert report.exercise == "heartbeat" and len(report.results) == 4


async def test_the_heartbeat_blank_as_shipped_is_not_written_yet_and_is_never_run(
    capsys: pytest.CaptureFixture[str],
) -> None:
    report = await heartbeat_exercise(skeleton_heartbeat, interval=INTERVAL, timeout=SILENCE)
    assert report.verdict is Verdict.NOT_WRITTEN and report.results == []
    assert str(report).splitlines()[0] == "heartbeat: not written yet (skeleton_heartbeat has no body yet)"
    assert wslab.running() == []
    used = await heartbeat_exercise.check(skeleton_heartbeat, interval=INTERVAL, timeout=SILENCE)
    assert used is lesson05.heartbeat
    assert "(the cells below use wslab's heartbeat until yours passes)" in capsys.readouterr().out


async def test_a_heartbeat_that_never_gives_up_keeps_the_stalled_client() -> None:
    report = await heartbeat_exercise(never_gives_up, interval=INTERVAL, timeout=SILENCE)
    assert_not_yet(report)
    assert report.failures == ["a stalled client is still connected 1.7 s after the stall"]
    assert_hint(report, "more than `timeout` since the last pong drops the connection")


async def test_a_heartbeat_that_raises_is_a_line_of_the_report_not_a_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    report = await heartbeat_exercise(old_signature, interval=INTERVAL, timeout=SILENCE)
    assert_not_yet(report)
    raised = failing(report, "your heartbeat raised")
    assert raised.startswith("your heartbeat raised TypeError: ") and "positional argument" in raised
    assert_hint(report, "an exception there stops it for good")
    assert "never retrieved" not in caplog.text


# --- the heartbeat of the lesson's cells -------------------------------------------------


async def test_the_tutorial_heartbeat_and_the_builtin_keepalive_pass_the_same_check() -> None:
    hand_rolled, builtin = await on_time(
        lambda: asyncio.gather(
            check_heartbeat(tutorial_heartbeat, interval=INTERVAL, timeout=SILENCE),
            check_heartbeat(
                echo, interval=INTERVAL, timeout=SILENCE, ping_interval=INTERVAL, ping_timeout=SILENCE
            ),
        ),
        HEARTBEAT_MARGIN,
    )
    assert_passed(hand_rolled)
    assert_passed(builtin)
    assert [line for _, line in hand_rolled.results] == [line for _, line in builtin.results]


async def test_heartbeat_fails_without_one() -> None:
    report = await check_heartbeat(echo, interval=INTERVAL, timeout=SILENCE)
    assert_not_yet(report)
    assert report.failures == ["a stalled client is still connected 1.7 s after the stall"]
    assert_hint(report, "sleep(interval), ping")


@pytest.mark.parametrize("check", [check_heartbeat, check_every_message_counts])
async def test_a_heartbeat_that_never_pings_drops_the_quiet_slow_client(check: Any) -> None:
    report = await on_time(lambda: check(drop_when_silent, interval=INTERVAL, timeout=SILENCE), BUSY_MARGIN)
    assert_not_yet(report)
    assert report.failures == ["a quiet client on a slow link (0.1 s each way) is kept for 1.2 s"]
    if check is check_every_message_counts:
        assert_hint(report, "a quiet client still needs pings")


# --- exercise 1: every message counts ----------------------------------------------------


async def test_every_message_counts_solution_passes() -> None:
    report = await on_time(
        lambda: check_every_message_counts(lesson05.every_message_counts, interval=INTERVAL, timeout=SILENCE),
        BUSY_MARGIN,
    )
    assert_passed(report)


async def test_every_message_counts_fails_on_the_tutorial_heartbeat_that_pings_a_talking_client() -> None:
    report = await on_time(
        lambda: check_every_message_counts(tutorial_heartbeat, interval=INTERVAL, timeout=SILENCE),
        BUSY_MARGIN,
    )
    assert_not_yet(report)
    assert report.failures == ["a client talking every 0.1 s for 0.9 s was pinged: expected no pings"]
    assert_hint(report, "ping only when the client has been silent")


# --- exercise 2: the client's watchdog ---------------------------------------------------


async def watchdog_verdict(watchdog: Any) -> CheckReport:
    """``check_watchdog``'s report on ``watchdog``, from a run whose loop kept time."""
    return await on_time(lambda: check_watchdog(watchdog, timeout=WATCHDOG_TIMEOUT), WATCHDOG_MARGIN)


async def test_watchdog_solution_passes() -> None:
    report = await watchdog_verdict(lesson05.watchdog)
    assert_passed(report)


async def test_watchdog_fails_when_it_waits_forever() -> None:
    async def forever(ws: ClientConnection, timeout: float) -> list[object]:
        return [message async for message in ws]

    report = await watchdog_verdict(forever)
    assert_not_yet(report)
    assert report.failures == ["the server went silent; the watchdog is still waiting 1.1 s later"]
    assert_hint(report, "asyncio.wait_for")


async def test_watchdog_fails_when_it_counts_from_the_start() -> None:
    async def from_the_start(ws: ClientConnection, timeout: float) -> list[object]:
        received: list[object] = []
        try:
            async with asyncio.timeout(timeout):  # one deadline for the whole connection
                async for message in ws:
                    received.append(message)
        except TimeoutError:
            ws.transport.abort()
        return received

    report = await watchdog_verdict(from_the_start)
    assert_not_yet(report)
    assert failing(report, "over a slow link").startswith(
        "over a slow link that still ticks, it gave up within 0.9 s"
    )
    assert_hint(report, "count silence from the last message")


async def test_watchdog_fails_when_it_leaves_the_connection_open_or_loses_ticks() -> None:
    async def careless(ws: ClientConnection, timeout: float) -> list[object]:
        last: list[object] = []
        while True:
            try:
                last = [await asyncio.wait_for(ws.recv(), timeout)]  # keeps only the newest
            except TimeoutError:
                return last  # and never closes

    report = await watchdog_verdict(careless)
    assert_not_yet(report)
    assert "it closed the connection it gave up on: expected CLOSED, got OPEN" in report.failures
    line = failing(report, "it returned the ticks")
    assert line.startswith("it returned the ticks it received, in order from 'tick 1': got ['tick ")
    assert_hint(report, "abort the connection")


async def test_heartbeat_checks_stop_their_servers_and_proxies() -> None:
    await check_heartbeat(echo, interval=INTERVAL, timeout=SILENCE)
    await check_watchdog(lesson05.watchdog, timeout=WATCHDOG_TIMEOUT)
    assert wslab.running() == []
