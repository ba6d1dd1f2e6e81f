"""Exercise checks for lesson 01: the learner's echo handler and accept key, on real connections.

The blanks (``echo_exercise``, ``accept_key_exercise``) and the end-of-lesson exercises
(``check_reverse``, ...) are :class:`~wslab.checks.report.Exercise` objects. Each check serves
the learner's handler on a free loopback port (or asks a real server for the answer), talks
to it as a client would, stops it, and returns a :class:`~wslab.checks.report.CheckReport`:
one line per expectation, saying what was sent, what was expected and what came back.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import random
from collections.abc import Callable

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from ..clients.chat import capture_handshake
from ..core.handshake import GUID, RFC_SAMPLE_KEY
from ..runtime.handles import Handler, serve
from ..servers.echo import echo as packaged_echo
from ..solutions import lesson01 as solutions
from .chat_clients import NoReply, next_message
from .report import FAILED, REPLY_TIMEOUT, CheckReport, call, exercise, serving

__all__ = [
    "accept_key_exercise",
    "check_numbered_echo",
    "check_polite_quit",
    "check_reverse",
    "echo_exercise",
]


def _show(message: object) -> str:
    if isinstance(message, bytes):
        return f"binary {message!r}"
    return f"text {message!r}" if isinstance(message, str) else repr(message)


async def _expect(report: CheckReport, connection: ClientConnection, send: str | bytes, want: object) -> bool:
    await connection.send(send)
    got = await next_message(connection)
    if got == want:
        return report.add(True, f"sent {_show(send)}, got {_show(want)}")
    shown = got if isinstance(got, NoReply) else _show(got)
    return report.add(False, f"sent {_show(send)}: expected {_show(want)}, got {shown}")


# The blanks: the echo handler, and the accept key


@exercise(
    reference=solutions.echo,
    hints=[
        "websockets calls echo once per connection; an `async for` loop over the connection yields"
        " each message until the client closes",
        "a text message arrives as a str, a binary one as bytes: isinstance() tells them apart",
        "answer with `await connection.send(...)`: an f-string for text, the bytes themselves for binary",
    ],
)
async def echo_exercise(handler: Handler) -> CheckReport:
    """Section 2's rules: text comes back as ``Echo: <text>``, binary unchanged; two clients at once."""
    report = CheckReport("echo")
    async with (
        serving(report, serve(handler, name="check:echo")) as server,
        connect(server.url) as alice,
        connect(server.url) as bob,
    ):
        for text in ["hello", "été ☃", ""]:
            await _expect(report, alice, text, f"Echo: {text}")
        if not await _expect(report, alice, b"\x00\x01\xff", b"\x00\x01\xff"):
            report.hint("binary comes back as it came: send the bytes, not a text about them")
        await _expect(report, bob, "and me?", "Echo: and me?")
        await _expect(report, alice, "still here", "Echo: still here")
    return report


#: Keys a client might send (16 random bytes, base64), the same every run so the report reads alike.
_KEYS = [base64.b64encode(random.Random(seed).randbytes(16)).decode() for seed in (1, 2, 3)]


def _base64_sha1(data: str) -> str:
    return base64.b64encode(hashlib.sha1(data.encode()).digest()).decode()


def _diagnose(report: CheckReport, key: str, got: object) -> None:
    """Advice for the usual slips, recognised by what they return (never showing the answer)."""
    if isinstance(got, bytes):
        report.hint("the header is text: turn the base64 bytes into a str with .decode()")
    elif got == _base64_sha1(key):
        report.hint("the key alone is not enough: the RFC joins the GUID (wslab.core.GUID) after it")
    elif got == _base64_sha1(GUID + key):
        report.hint("the order matters: the client's key first, then the GUID")
    elif got == base64.b64encode(hashlib.sha1((key + GUID).encode()).hexdigest().encode()).decode():
        report.hint("base64 the 20 raw bytes of the hash (.digest()), not its hex text")
    elif got == base64.b64encode(base64.b64decode(key) + GUID.encode()).decode():
        report.hint("hash first (SHA-1), then base64")


@exercise(
    reference=solutions.accept_key,
    hints=[
        "RFC 6455 section 4.2.2: join the client's key (the text as sent, not decoded) and the GUID,"
        " hash that with SHA-1, base64-encode the hash",
        "hashlib.sha1() takes bytes: .encode() the joined text; .digest() gives the 20 raw bytes",
        "base64.b64encode() returns bytes, and a header is text: .decode() them",
    ],
)
async def accept_key_exercise(accept_key: Callable[[str], str]) -> CheckReport:
    """``accept_key(key)`` answers RFC 6455's sample key, and keys it never saw as a real server does."""
    report = CheckReport("accept key")
    async with serving(report, serve(packaged_echo, name="check:accept key")) as server:
        for key in [RFC_SAMPLE_KEY, *_KEYS]:
            got = call(report, f"accept_key({key!r})", accept_key, key)
            if got is FAILED:
                continue
            handshake = await capture_handshake(server.url, key=key)
            want = handshake.response.header("Sec-WebSocket-Accept")
            source = "RFC 6455's example" if key == RFC_SAMPLE_KEY else "the server"
            if got == want:
                report.add(True, f"accept_key({key!r}) == {want!r}, as {source} says")
            else:
                report.add(False, f"accept_key({key!r}): {source} says {want!r}, got {got!r}")
                _diagnose(report, key, got)
    return report


# The exercises


@exercise(
    reference=solutions.reverse,
    hints=[
        "text and binary need different answers: isinstance(message, str) tells them apart",
        "a str reverses with a slice whose step is -1",
        "a bytes message has no letters to reverse: its len() makes the answer text",
    ],
)
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


@exercise(
    reference=solutions.numbered_echo,
    hints=[
        "the handler runs once per connection: a variable made inside it belongs to that connection",
        "start a count at 0 before the loop, add 1 for each message, put it in front of the reply",
    ],
)
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


@exercise(
    reference=solutions.polite_quit,
    hints=[
        "compare each message with '/quit' before echoing it",
        "connection.close(code, reason) sends the close frame; then leave the handler with return",
    ],
)
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
