"""Exercise checks pass on the reference solutions and explain what a wrong answer does."""

from __future__ import annotations

import asyncio

from helpers import assert_hint, assert_not_yet, assert_passed, failing
from websockets.asyncio.server import ServerConnection

import wslab
from wslab.checks.lesson01 import check_numbered_echo, check_polite_quit, check_reverse
from wslab.servers import echo
from wslab.solutions import lesson01

# --- reverse ----------------------------------------------------------------------------


async def test_reverse_solution_passes() -> None:
    report = await check_reverse(lesson01.reverse)
    assert_passed(report)
    assert report.exercise == "reverse"
    assert len(report.results) == 5


async def test_reverse_fails_on_the_plain_echo() -> None:
    report = await check_reverse(echo)
    assert_not_yet(report)
    assert "sent text 'hello': expected text 'olleh', got text 'Echo: hello'" in report.failures
    # The binary case is explained, with a hint.
    assert failing(report, "b'\\x00\\x01\\x02'").endswith("got binary b'\\x00\\x01\\x02'")
    assert_hint(report, "a bytes message has no letters to reverse")


async def test_reverse_reports_a_missing_reply() -> None:
    async def text_only(connection: ServerConnection) -> None:
        async for message in connection:
            if isinstance(message, str):
                await connection.send(message[::-1])
            # forgot binary: nothing comes back

    report = await check_reverse(text_only)  # waits REPLY_TIMEOUT (2 s) once
    assert_not_yet(report)
    assert len([ok for ok, _ in report.results if ok]) == 4
    line = failing(report, "no reply within 2 s")
    assert line.startswith("sent binary b'\\x00\\x01\\x02': expected text '3 bytes'")


async def test_reverse_reports_a_crashing_handler() -> None:
    async def crashing(connection: ServerConnection) -> None:
        await connection.recv()
        raise ValueError("oops")

    report = await check_reverse(crashing)
    assert_not_yet(report)
    line = failing(report, "sent text 'hello'")
    assert "the connection closed" in line
    assert "1011" in line


# --- numbered echo ----------------------------------------------------------------------


async def test_numbered_echo_solution_passes() -> None:
    assert_passed(await check_numbered_echo(lesson01.numbered_echo))


async def test_numbered_echo_fails_on_a_counter_shared_by_all_connections() -> None:
    count = 0

    async def shared_counter(connection: ServerConnection) -> None:
        nonlocal count  # one counter for every connection: the bug the check looks for
        async for message in connection:
            count += 1
            await connection.send(f"{count}: {message}")

    report = await check_numbered_echo(shared_counter)
    assert_not_yet(report)
    assert "sent text 'hello': expected text '1: hello', got text '3: hello'" in report.failures
    assert_hint(report, "keep the counter inside the handler")
    # Alice's own numbering was right until Bob's message took a number.
    assert "sent text 'again', got text '2: again'" in [line for ok, line in report.results if ok]


async def test_numbered_echo_fails_on_the_plain_echo() -> None:
    report = await check_numbered_echo(echo)
    assert_not_yet(report)
    assert "sent text 'hi': expected text '1: hi', got text 'Echo: hi'" in report.failures


# --- polite quit ------------------------------------------------------------------------


async def test_polite_quit_solution_passes() -> None:
    report = await check_polite_quit(lesson01.polite_quit)
    assert_passed(report)
    assert "sent '/quit': expected close 1000 'bye', got 1000 'bye'" in [line for _, line in report.results]


async def test_polite_quit_fails_when_the_server_never_closes() -> None:
    report = await check_polite_quit(echo)  # answers "/quit" like any other message
    assert_not_yet(report)
    assert report.failures == ["sent '/quit': expected the server to close, got text 'Echo: /quit'"]


async def test_polite_quit_fails_on_the_wrong_close_code_or_reason() -> None:
    async def abrupt(connection: ServerConnection) -> None:
        async for message in connection:
            if message == "/quit":
                await connection.close(1001, "going")
                return
            await connection.send(f"Echo: {message}")

    report = await check_polite_quit(abrupt)
    assert_not_yet(report)
    assert report.failures == ["sent '/quit': expected close 1000 'bye', got 1001 'going'"]


async def test_polite_quit_must_not_close_the_other_client() -> None:
    everyone: set[ServerConnection] = set()

    async def closes_everyone(connection: ServerConnection) -> None:
        everyone.add(connection)
        async for message in connection:
            if message == "/quit":
                await asyncio.gather(*(c.close(1000, "bye") for c in everyone))
                return
            await connection.send(f"Echo: {message}")

    report = await check_polite_quit(closes_everyone)
    assert_not_yet(report)
    assert len(report.failures) == 1, str(report)
    assert "1000 (OK) bye" in report.failures[0]  # the second client was closed too


# --- all checks --------------------------------------------------------------------------


async def test_checks_stop_their_servers() -> None:
    await check_reverse(lesson01.reverse)
    await check_numbered_echo(echo)
    assert wslab.running() == []
