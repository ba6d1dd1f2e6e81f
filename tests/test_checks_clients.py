"""Lesson 03's checks: the references and wslab's ChatClient pass; wrong answers get NOT YET and why."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
from collections.abc import Iterator

import pytest
from helpers import assert_hint, assert_not_yet, assert_passed, failing
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from wslab.checks.lesson03 import (
    check_equal_jitter,
    check_gives_up,
    check_reconnecting_client,
    jittered_delays_exercise,
    tutorial_client_exercise,
)
from wslab.checks.report import Verdict
from wslab.clients.chat import ChatClient
from wslab.solutions import lesson03

# --- section 1: the tutorial's client ---------------------------------------------------


async def test_tutorial_client_passes_on_the_reference() -> None:
    assert_passed(await tutorial_client_exercise(lesson03.tutorial_client))


async def client_that_never_closes(url: str, name: str, stdin: asyncio.Queue[str]) -> None:
    ws = await connect(url)  # no `async with`, no close: the server sees the connection drop
    await ws.send(name)

    async def read() -> None:
        with contextlib.suppress(ConnectionClosed):
            async for message in ws:
                print(message)

    reader = asyncio.ensure_future(read())
    while (line := await stdin.get()) != "/quit":
        await ws.send(line)
    reader.cancel()
    ws.transport.abort()


async def test_tutorial_client_fails_when_quit_does_not_close() -> None:
    report = await tutorial_client_exercise(client_that_never_closes)
    assert_not_yet(report)
    assert "['1006 without a close frame']" in failing(report, "'/quit'")
    assert_hint(report, "close the connection yourself")


async def client_that_never_reads(url: str, name: str, stdin: asyncio.Queue[str]) -> None:
    async with connect(url) as ws:
        await ws.send(name)
        while (line := await stdin.get()) != "/quit":
            await ws.send(line)


async def test_tutorial_client_fails_when_nothing_is_printed() -> None:
    report = await tutorial_client_exercise(client_that_never_reads)
    assert_not_yet(report)
    assert failing(report, "what arrives is printed").endswith("not within 2 s")
    assert_hint(report, "a reader task")


async def client_skeleton(url: str, name: str, stdin: asyncio.Queue[str]) -> None:
    """The tutorial's client."""
    raise NotImplementedError


async def test_tutorial_client_skeleton_is_not_written_yet() -> None:
    report = await tutorial_client_exercise(client_skeleton)
    assert report.verdict is Verdict.NOT_WRITTEN and report.results == []


# --- section 4: full jitter -------------------------------------------------------------


def test_jittered_delays_passes_on_the_reference() -> None:
    assert_passed(jittered_delays_exercise(lesson03.jittered_delays))


def no_jitter(first: float = 0.05, factor: float = 2, cap: float = 2.0) -> Iterator[float]:
    ceiling = first
    while True:
        yield ceiling
        ceiling = min(cap, ceiling * factor)


def test_jittered_delays_fails_without_jitter() -> None:
    report = jittered_delays_exercise(no_jitter)
    assert_not_yet(report)
    assert failing(report, "delay 7 falls anywhere").endswith("it ranged 2.00 to 2.00 s")
    assert_hint(report, "random.uniform(0, ceiling)")


def finite(first: float = 0.05, factor: float = 2, cap: float = 2.0) -> Iterator[float]:
    return iter([random.uniform(0, first)] * 5)


def test_jittered_delays_fails_when_the_delays_run_out() -> None:
    report = jittered_delays_exercise(finite)
    assert_not_yet(report)
    assert failing(report, "never ends") == "it never ends: 50 delays asked, 5 came"


# --- section 4: the reconnecting client ---------------------------------------------------


async def test_reconnecting_client_passes_on_the_reference_and_on_wslab() -> None:
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
    """Resends nothing once live: what its user typed during an outage stays in the outbox."""

    async def resend(self, connection: ClientConnection) -> None:
        self.connection = connection


async def test_reconnecting_client_fails_without_the_resend() -> None:
    report = await check_reconnecting_client(_Forgetful)
    assert_not_yet(report)
    assert "got ['a1', 'a2', 'a3']" in failing(report, "once each, in order")
    assert_hint(report, "outbox")


class _SkeletonResend(lesson03.ResumingClient):
    async def resend(self, connection: ClientConnection) -> None:
        """Live again: send what the outbox still holds."""
        raise NotImplementedError


async def test_reconnecting_client_with_a_skeleton_resend_is_not_written_yet() -> None:
    report = await check_reconnecting_client(_SkeletonResend)
    assert report.verdict is Verdict.NOT_WRITTEN
    assert "_SkeletonResend.resend has no body yet" in str(report).splitlines()[0]


# --- the exercises ------------------------------------------------------------------------


def test_equal_jitter_passes_on_the_reference() -> None:
    assert_passed(check_equal_jitter(lesson03.equal_jitter))


def test_equal_jitter_fails_on_full_jitter_and_on_no_jitter() -> None:
    report = check_equal_jitter(lambda attempt: random.uniform(0, min(10, 0.1 * 2**attempt)))
    assert_not_yet(report)
    assert "delays within [5, 10] s (saw " in failing(report, "attempt 11: delays within")
    assert_hint(report, "never below half its ceiling")
    report = check_equal_jitter(lambda attempt: min(10, 0.1 * 2**attempt))
    assert_not_yet(report)
    assert failing(report, "jitter") == "attempt 5: delays differ from call to call (jitter)"
    assert "(they spread over 0.00 s)" in failing(report, "attempt 11")
    assert_hint(report, "at random")


async def test_gives_up_passes_on_the_reference_and_on_wslab() -> None:
    assert_passed(await check_gives_up(lesson03.PoliteClient))
    assert_passed(await check_gives_up(ChatClient))


async def test_gives_up_fails_on_a_client_that_always_reconnects() -> None:
    report = await check_gives_up(lesson03.ResumingClient)  # section 4's: it reconnects after every close
    assert_not_yet(report)
    assert failing(report, "refused with 1008").endswith("still running, after trying again and again")
    assert_hint(report, "1008 means do not come back")
