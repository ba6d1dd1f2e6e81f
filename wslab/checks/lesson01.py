"""Exercise checks for lesson 01: a learner's echo handler on real connections.

Each check serves the handler on a free loopback port, talks to it as a client would, stops
it, and returns a :class:`~wslab.checks.report.CheckReport`: one line per expectation,
saying what was sent, what was expected and what came back.
"""

from __future__ import annotations

import asyncio

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from ..runtime.handles import Handler, serve
from .report import REPLY_TIMEOUT, CheckReport, serving

__all__ = ["check_numbered_echo", "check_polite_quit", "check_reverse"]


def _show(message: object) -> str:
    if isinstance(message, bytes):
        return f"binary {message!r}"
    return f"text {message!r}" if isinstance(message, str) else repr(message)


class _NoReply(str):
    """Why no reply came (told apart from a reply that happens to be text)."""


async def _reply(connection: ClientConnection) -> object:
    """The next message, or a :class:`_NoReply` saying why there is none."""
    try:
        return await asyncio.wait_for(connection.recv(), REPLY_TIMEOUT)
    except TimeoutError:
        return _NoReply(f"no reply within {REPLY_TIMEOUT:g} s")
    except ConnectionClosed as exc:
        return _NoReply(f"the connection closed ({exc})")


async def _expect(report: CheckReport, connection: ClientConnection, send: str | bytes, want: object) -> bool:
    await connection.send(send)
    got = await _reply(connection)
    if got == want:
        return report.add(True, f"sent {_show(send)}, got {_show(want)}")
    shown = got if isinstance(got, _NoReply) else _show(got)
    return report.add(False, f"sent {_show(send)}: expected {_show(want)}, got {shown}")


async def check_reverse(handler: Handler) -> CheckReport:
    """Exercise 1: text comes back reversed; binary is answered with the text ``"<n> bytes"``."""
    report = CheckReport("reverse")
    async with (
        serving(report, serve(handler, name="check:reverse")) as server,
        connect(server.url) as connection,
    ):
        for text in ["hello", "WebSockets", "été ☃", ""]:
            await _expect(report, connection, text, text[::-1])
        if not await _expect(report, connection, b"\x00\x01\x02", "3 bytes"):
            report.hint("a bytes message has no letters to reverse; reply with its len()")
    return report


async def check_numbered_echo(handler: Handler) -> CheckReport:
    """Exercise 2: each connection numbers its own messages: ``"1: hi"``, ``"2: again"``, ...

    Two clients interleave, so a counter shared by all connections shows up at once.
    """
    report = CheckReport("numbered echo")
    async with (
        serving(report, serve(handler, name="check:numbered echo")) as server,
        connect(server.url) as alice,
        connect(server.url) as bob,
    ):
        await _expect(report, alice, "hi", "1: hi")
        await _expect(report, alice, "again", "2: again")
        if not await _expect(report, bob, "hello", "1: hello"):
            report.hint("keep the counter inside the handler, so each connection has its own")
        await _expect(report, alice, "third", "3: third")
    return report


async def check_polite_quit(handler: Handler) -> CheckReport:
    """Exercise 3: ``/quit`` makes the server close with code 1000 and reason ``"bye"``.

    Any other text is echoed as ``Echo: <text>``; a second client is unaffected.
    """
    report = CheckReport("polite quit")
    async with (
        serving(report, serve(handler, name="check:polite quit")) as server,
        connect(server.url) as leaving,
        connect(server.url) as staying,
    ):
        await _expect(report, leaving, "hello", "Echo: hello")
        await _quit(report, leaving)
        await _expect(report, staying, "still there?", "Echo: still there?")
    return report


async def _quit(report: CheckReport, leaving: ClientConnection) -> None:
    await leaving.send("/quit")
    try:
        extra = await asyncio.wait_for(leaving.recv(), REPLY_TIMEOUT)
        report.add(False, f"sent '/quit': expected the server to close, got {_show(extra)}")
    except TimeoutError:
        report.add(False, f"sent '/quit': the server did not close within {REPLY_TIMEOUT:g} s")
    except ConnectionClosed as exc:
        frame = exc.rcvd
        got = f"{frame.code} {frame.reason!r}" if frame else "no close frame"
        report.add(
            frame is not None and (frame.code, frame.reason) == (1000, "bye"),
            f"sent '/quit': expected close 1000 'bye', got {got}",
        )
