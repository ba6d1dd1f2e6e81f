"""Exercise checks: run a learner's handler against real connections and explain.

Each ``check_*`` coroutine starts the handler on a free loopback port, talks to it as a
client would, stops it, and returns a :class:`CheckReport`: one line per expectation,
saying what was sent, what was expected and what came back.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from ..runtime.handles import Handler, serve, wait_until

__all__ = [
    "CheckReport",
    "check_backoff",
    "check_collect",
    "check_find_gaps",
    "check_numbered_echo",
    "check_origin_guard",
    "check_origin_rule",
    "check_polite_quit",
    "check_reverse",
    "check_username_rules",
    "check_websocket_counter",
]

#: How long a check waits for one reply before calling it missing.
REPLY_TIMEOUT = 2.0


@dataclass
class CheckReport:
    """The outcome of one exercise check; true when every expectation held."""

    exercise: str
    results: list[tuple[bool, str]] = field(default_factory=list)
    hints: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return bool(self.results) and all(ok for ok, _ in self.results)

    def __bool__(self) -> bool:
        return self.passed

    def add(self, ok: bool, line: str) -> bool:
        self.results.append((ok, line))
        return ok

    def hint(self, text: str) -> None:
        """Advice shown under the results when something failed; not itself a check."""
        self.hints.append(text)

    @property
    def failures(self) -> list[str]:
        return [line for ok, line in self.results if not ok]

    def __str__(self) -> str:
        verdict = "PASSED" if self.passed else "NOT YET"
        good = sum(ok for ok, _ in self.results)
        lines = [f"{self.exercise}: {verdict} ({good} of {len(self.results)} checks hold)"]
        lines += [f"  {'ok  ' if ok else 'FAIL'} {line}" for ok, line in self.results]
        if not self.passed:
            lines += [f"  hint: {hint}" for hint in self.hints]
        return "\n".join(lines)

    __repr__ = __str__


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


async def _run(exercise: str, handler: Handler, body) -> CheckReport:  # type: ignore[no-untyped-def]
    report = CheckReport(exercise)
    server = await serve(handler, name=f"check:{exercise}")
    try:
        await body(report, server.url)
    except (OSError, ConnectionClosed) as exc:
        report.add(False, f"the connection failed: {exc}")
    finally:
        await server.stop()
    return report


async def check_reverse(handler: Handler) -> CheckReport:
    """Exercise 1: text comes back reversed; binary is answered with the text ``"<n> bytes"``."""

    async def body(report: CheckReport, url: str) -> None:
        async with connect(url) as connection:
            for text in ["hello", "WebSockets", "été ☃", ""]:
                await _expect(report, connection, text, text[::-1])
            if not await _expect(report, connection, b"\x00\x01\x02", "3 bytes"):
                report.hint("a bytes message has no letters to reverse; reply with its len()")

    return await _run("reverse", handler, body)


async def check_numbered_echo(handler: Handler) -> CheckReport:
    """Exercise 2: each connection numbers its own messages: ``"1: hi"``, ``"2: again"``, ...

    Two clients interleave, so a counter shared by all connections shows up at once.
    """

    async def body(report: CheckReport, url: str) -> None:
        async with connect(url) as alice, connect(url) as bob:
            await _expect(report, alice, "hi", "1: hi")
            await _expect(report, alice, "again", "2: again")
            if not await _expect(report, bob, "hello", "1: hello"):
                report.hint("keep the counter inside the handler, so each connection has its own")
            await _expect(report, alice, "third", "3: third")

    return await _run("numbered echo", handler, body)


async def check_polite_quit(handler: Handler) -> CheckReport:
    """Exercise 3: ``/quit`` makes the server close with code 1000 and reason ``"bye"``.

    Any other text is echoed as ``Echo: <text>``; a second client is unaffected.
    """

    async def body(report: CheckReport, url: str) -> None:
        async with connect(url) as leaving, connect(url) as staying:
            await _expect(report, leaving, "hello", "Echo: hello")
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
            await _expect(report, staying, "still there?", "Echo: still there?")

    return await _run("polite quit", handler, body)


# Lesson 02


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
            report.add(False, f"find_gaps({seqs}) raised {type(exc).__name__}: {exc}")
            continue
        report.add(got == want, f"find_gaps({seqs}): expected {want}, got {got}")
    if any(not ok and "[1, 2, 2, 3]" in line for ok, line in report.results):
        report.hint("a repeated number is a duplicate, not a gap: compare with the highest seq seen so far")
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


# Lesson 03


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
    from ..clients.chat import ChatClient  # late: checks for lesson 01 need no chat machinery
    from ..servers.chat import ChatServer

    report = CheckReport("collect")
    chat = ChatServer(server_id="check")
    handle = await chat.serve(name="check:collect")
    talker = ChatClient(handle.url, "talker").start()
    try:
        await wait_until(lambda: talker.live)
        task = asyncio.ensure_future(collect(handle.url, "learner", 3))
        await wait_until(lambda: "learner" in chat.room.users or task.done(), timeout=REPLY_TIMEOUT)
        if task.done() and task.exception() is not None:
            exc = task.exception()
            report.add(False, f"collect raised {type(exc).__name__}: {exc}")
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


# Lesson 04


def check_origin_rule(allowed: Callable[[str | None, str, set[str]], bool]) -> CheckReport:
    """Exercise: ``allowed(origin, host, extra)`` decides whether a WebSocket handshake may proceed."""
    report = CheckReport("origin rule")
    host = "chat.example:8000"
    cases = [
        (None, set(), True, "no Origin header (not a browser)"),
        ("http://chat.example:8000", set(), True, "the page's own origin"),
        ("https://evil.example", set(), False, "another site"),
        ("http://chat.example:9999", set(), False, "same host, other port (a different origin)"),
        ("https://course.example", {"https://course.example"}, True, "an origin on the allow-list"),
        (
            "https://course.example.evil.example",
            {"https://course.example"},
            False,
            "a look-alike of an allowed one",
        ),
    ]
    for origin, extra, want, why in cases:
        try:
            got = bool(allowed(origin, host, set(extra)))
        except Exception as exc:
            report.add(False, f"{why}: raised {type(exc).__name__}: {exc}")
            continue
        verdict = "allow" if want else "refuse"
        report.add(
            got == want, f"{why} ({origin!r}): should {verdict}" + ("" if got == want else ", but did not")
        )
    report.hint(
        "compare exactly: urlsplit(origin).netloc == host, or origin in the allow-list; never startswith"
    )
    return report


async def check_origin_guard(process_request: Callable[..., Any]) -> CheckReport:
    """Exercise: a :mod:`websockets` ``process_request`` refusing cross-site pages with HTTP 403.

    Real handshakes, each with another ``Origin``, reach an echo server that runs the hook.
    """
    from websockets.exceptions import InvalidStatus

    report = CheckReport("origin guard")

    async def echo_once(connection: Any) -> None:
        async for message in connection:
            await connection.send(message)

    handle = await serve(echo_once, name="check:origin-guard", process_request=process_request)
    own = f"http://{handle.host}:{handle.port}"
    cases = [
        (None, True, "no Origin header (not a browser)"),
        (own, True, "the page's own origin"),
        ("https://evil.example", False, "another site"),
        (f"http://{handle.host}:1", False, "same host, other port (a different origin)"),
        (f"http://{handle.host}.evil.example", False, "a look-alike of this host"),
    ]
    try:
        for origin, want, why in cases:
            try:
                async with connect(handle.url, origin=origin, open_timeout=REPLY_TIMEOUT) as ws:
                    await ws.send("hello")
                    got = f"the WebSocket (echo: {await asyncio.wait_for(ws.recv(), REPLY_TIMEOUT)!r})"
                    ok = want
            except InvalidStatus as exc:
                status = exc.response.status_code
                got = f"HTTP {status} before the upgrade"
                ok = (not want) and status == 403
            expected = "the WebSocket" if want else "HTTP 403 before the upgrade"
            line = f"{why} ({origin!r}): expected {expected}"
            report.add(ok, line if ok else f"{line}, got {got}")
    except Exception as exc:
        report.add(False, f"the server failed: {type(exc).__name__}: {exc}")
    finally:
        await handle.stop()
    if any("HTTP 500" in line for line in report.failures):
        report.hint("HTTP 500 means your function raised (a KeyError for a header that was not sent?)")
    report.hint("the page's origin is in the Origin header, the server's own host:port in the Host header")
    report.hint("refuse with connection.respond(...) and HTTPStatus.FORBIDDEN; return None to go on")
    return report


def _app_to_count() -> Any:
    """What the counter wraps: an HTTP page, and a WebSocket echo that closes on ``"bye"``."""
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route, WebSocketRoute

    async def page(request: Any) -> PlainTextResponse:
        return PlainTextResponse("a page\n")

    async def echo(websocket: Any) -> None:
        await websocket.accept()
        async for text in websocket.iter_text():
            if text == "bye":
                await websocket.close(1000, "bye")
                return
            await websocket.send_text(text)

    return Starlette(routes=[Route("/", page), WebSocketRoute("/ws", echo)])


async def _visit_counter(url: str, report: CheckReport, expect: Callable[[int, str], Any]) -> None:
    """A GET, two WebSockets, one closed by the client, one refused, one closed by the server."""
    import httpx
    from websockets.exceptions import InvalidStatus

    ws_url = url.replace("http", "ws", 1)
    async with httpx.AsyncClient() as http:
        status = (await http.get(url)).status_code
    report.add(status == 200, f"GET / still works: expected HTTP 200, got {status}")
    await expect(0, "after GET / (HTTP is not a WebSocket)")
    async with connect(ws_url + "ws") as first, connect(ws_url + "ws") as second:
        for ws in (first, second):
            await ws.send("hi")
            await asyncio.wait_for(ws.recv(), REPLY_TIMEOUT)
        await expect(2, "two WebSockets open")
        await first.close()
        await expect(1, "after the client closed one")
        with contextlib.suppress(InvalidStatus):
            async with connect(ws_url + "nowhere"):
                pass
        await expect(1, "after a refused handshake (no route at /nowhere)")
        await second.send("bye")
        await second.wait_closed()
        await expect(0, "after the server closed the other")


async def check_websocket_counter(middleware: Callable[[Any], Any]) -> CheckReport:
    """Exercise: pure ASGI middleware whose ``open`` is the number of WebSockets open right now.

    ``middleware(app)`` wraps a real Starlette app (an HTTP route and a WebSocket echo that
    closes on ``"bye"``) served by uvicorn; real HTTP requests and WebSockets go through it.
    """
    from starlette.applications import Starlette
    from starlette.routing import Mount

    from ..servers.web.runner import serve_web

    report = CheckReport("WebSocket counter")
    try:
        counter = middleware(_app_to_count())
    except Exception as exc:
        report.add(False, f"middleware(app) raised {type(exc).__name__}: {exc}")
        return report

    def count() -> object:
        return getattr(counter, "open", "no attribute 'open'")

    async def expect(want: int, what: str) -> None:
        # After a first miss the verdict is NOT YET anyway: wait less for the rest.
        timeout = REPLY_TIMEOUT if not report.failures else REPLY_TIMEOUT / 4
        try:
            await wait_until(lambda: count() == want, timeout=timeout)
        except TimeoutError:
            report.add(False, f"{what}: expected open == {want}, got {count()!r}")
        else:
            report.add(True, f"{what}: open == {want}")

    handle = await serve_web(Starlette(routes=[Mount("/", app=counter)]), name="check:counter")
    try:
        report.add(count() == 0, f"before any request: expected open == 0, got {count()!r}")
        await _visit_counter(handle.url, report, expect)
    except Exception as exc:
        report.add(False, f"the app failed: {type(exc).__name__}: {exc}")
    finally:
        await handle.stop()
    if "two WebSockets open: expected open == 2, got 0" in report.failures:
        report.hint("BaseHTTPMiddleware never sees a WebSocket: write __call__(self, scope, receive, send)")
    report.hint("count up when the app sends 'websocket.accept' (wrap send); count down once the app returns")
    return report
