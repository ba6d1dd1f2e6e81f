"""Exercise checks for lesson 04, on a real Starlette app served by uvicorn.

The blanks: ``scope_log_exercise`` (a pure ASGI middleware that notes the GET and the
WebSocket alike) and ``origin_allowed_exercise`` (the Origin rule, put in front of real
handshakes). The exercises: ``check_websocket_counter`` (pure ASGI middleware that counts
open WebSockets) and ``check_origin_guard`` (a ``process_request`` guard on a ``websockets``
server). Like every check, each returns a :class:`~wslab.checks.report.CheckReport` saying
what was tried, what was expected and what came back.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

from websockets.asyncio.client import connect
from websockets.typing import Origin

from ..runtime.handles import serve, wait_until
from ..solutions import lesson04 as solutions
from .report import FAILED, REPLY_TIMEOUT, CheckReport, Hints, call, error_text, exercise

__all__ = ["check_origin_guard", "check_websocket_counter", "origin_allowed_exercise", "scope_log_exercise"]

ORIGIN_GUARD_HINTS: Hints = [
    ("HTTP 500", "HTTP 500 means your function raised (a KeyError for a header that was not sent?)"),
]
RULE_HINTS: Hints = [
    ("look-alike", "compare whole origins: a test on the start (or a substring) lets in look-alikes"),
    ("other port", "an origin includes its port: compare host:port with the Host header, not the host alone"),
    ("HTTP 500", "HTTP 500 means your function raised when the guard called it"),
]
SCOPE_LOG_HINTS: Hints = [
    ("no note", "a note is made when the response starts: wrap send, and look at each message's type"),
    (
        "WebSocket",
        "a WebSocket's scope type is 'websocket', and it succeeds with a 'websocket.accept' message",
    ),
    ("answered", "pass every message on to the real send, and call the app with your wrapped send"),
]
COUNTER_HINTS: Hints = [
    (
        "two WebSockets open: expected open == 2, got 0",
        "BaseHTTPMiddleware never sees a WebSocket: write __call__(self, scope, receive, send)",
    ),
]


_RULE_CASES = [
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


def _rule_cases(report: CheckReport, allowed: Callable[[str | None, str, set[str]], bool]) -> None:
    """The rule as a function: ``allowed(origin, "chat.example:8000", extra)``."""
    for origin, extra, want, why in _RULE_CASES:
        answer = call(report, why, allowed, origin, "chat.example:8000", set(extra))
        if answer is FAILED:
            continue
        verdict = "allow" if want else "refuse"
        ok = bool(answer) == want
        report.add(ok, f"{why} ({origin!r}): should {verdict}" + ("" if ok else ", but did not"))


async def _handshakes(report: CheckReport, allowed: Callable[[str | None, str, set[str]], bool]) -> None:
    """The rule in front of a real app (wslab's OriginGuard, deciding with it): real handshakes."""
    from starlette.applications import Starlette
    from starlette.middleware import Middleware

    from ..servers.web.middleware import OriginGuard
    from ..servers.web.runner import serve_web

    app = Starlette(routes=_app_to_count().routes, middleware=[Middleware(OriginGuard, rule=allowed)])
    handle = await serve_web(app, name="check:origin-rule")
    own = handle.url.rstrip("/")
    cases: list[tuple[Origin | None, bool, str]] = [
        (None, True, "a real handshake with no Origin"),
        (Origin(own), True, "a real handshake from the app's own page"),
        (Origin("https://evil.example"), False, "a real handshake from another site's page"),
        (Origin(f"http://{handle.host}:1"), False, "a real handshake from this host's other port"),
    ]
    try:
        for origin, want, why in cases:
            await _one_handshake(report, handle.url.replace("http", "ws", 1) + "ws", origin, want, why)
    finally:
        await handle.stop()


@exercise(
    reference=solutions.origin_allowed,
    hints=[
        "a request without an Origin header does not come from a browser, and carries nobody's cookies:"
        " let it in",
        "an origin is scheme://host:port; the page's own origin has exactly the host:port of the Host header",
        "urllib.parse.urlsplit(origin).netloc is an origin's host:port; an allowed origin must be"
        " in extra whole (membership), never matched by its start",
    ],
    title="origin rule",
)
async def origin_allowed_exercise(allowed: Callable[[str | None, str, set[str]], bool]) -> CheckReport:
    """The blank: ``allowed(origin, host, extra)`` decides whether a handshake may proceed.

    First as a function, then deciding real handshakes in front of a real app.
    """
    report = CheckReport("origin rule")
    _rule_cases(report, allowed)
    if not report.unwritten:
        await _handshakes(report, allowed)
    report.hints_for(RULE_HINTS)
    return report


async def _one_handshake(report: CheckReport, url: str, origin: Origin | None, want: bool, why: str) -> None:
    """One real handshake with ``origin``: the WebSocket (and an echo) if ``want``, else HTTP 403."""
    from websockets.exceptions import InvalidStatus

    try:
        async with connect(url, origin=origin, open_timeout=REPLY_TIMEOUT) as ws:
            await ws.send("hello")
            got = f"the WebSocket (echo: {await asyncio.wait_for(ws.recv(), REPLY_TIMEOUT)!r})"
            ok = want
    except InvalidStatus as exc:
        status = exc.response.status_code
        got = f"HTTP {status} before the upgrade"
        ok = (not want) and status == 403
    except Exception as exc:
        got, ok = error_text(exc), False
    expected = "the WebSocket" if want else "HTTP 403 before the upgrade"
    line = f"{why} ({origin!r}): expected {expected}"
    report.add(ok, line if ok else f"{line}, got {got}")


@exercise(
    reference=solutions.origin_guard,
    hints=[
        "process_request runs before each handshake: return None to go on, or a response to refuse",
        "the page's origin is in the Origin header, the server's own host:port in the Host header;"
        " your rule from the blank decides",
        "refuse with connection.respond(...) and HTTPStatus.FORBIDDEN",
    ],
)
async def check_origin_guard(process_request: Callable[..., Any]) -> CheckReport:
    """Exercise 2: a :mod:`websockets` ``process_request`` refusing cross-site pages with HTTP 403.

    Real handshakes, each with another ``Origin``, reach an echo server that runs the hook.
    """
    report = CheckReport("origin guard")

    async def echo_once(connection: Any) -> None:
        async for message in connection:
            await connection.send(message)

    handle = await serve(echo_once, name="check:origin-guard", process_request=process_request)
    own = f"http://{handle.host}:{handle.port}"
    cases: list[tuple[Origin | None, bool, str]] = [
        (None, True, "no Origin header (not a browser)"),
        (Origin(own), True, "the page's own origin"),
        (Origin("https://evil.example"), False, "another site"),
        (Origin(f"http://{handle.host}:1"), False, "same host, other port (a different origin)"),
        (Origin(f"http://{handle.host}.evil.example"), False, "a look-alike of this host"),
    ]
    try:
        for origin, want, why in cases:
            await _one_handshake(report, handle.url, origin, want, why)
    finally:
        await handle.stop()
    report.hints_for(ORIGIN_GUARD_HINTS)
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


@exercise(
    reference=solutions.CountWebSockets,
    hints=[
        "BaseHTTPMiddleware never sees a WebSocket: write __call__(self, scope, receive, send)",
        "a WebSocket is open from the moment the app sends 'websocket.accept' (wrap send to see it)"
        " until the app's call returns",
        "a handshake the app refuses never sends 'websocket.accept': count down only what you counted up",
    ],
    title="WebSocket counter",
)
async def check_websocket_counter(middleware: Callable[[Any], Any]) -> CheckReport:
    """Exercise 1: pure ASGI middleware whose ``open`` is the number of WebSockets open right now.

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
        report.add(False, f"middleware(app) raised {error_text(exc)}")
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
        report.add(False, f"the app failed: {error_text(exc)}")
    finally:
        await handle.stop()
    report.hints_for(COUNTER_HINTS)
    return report


def _note_for(notes: list[str], *words: str) -> str | None:
    """The note that names every one of ``words`` (each standing alone), if any."""
    for note in notes:
        tokens = note.replace("->", " ").split()
        if all(word in tokens for word in words):
            return note
    return None


async def _visit_logged(url: str, report: CheckReport, seen: list[str]) -> None:
    """GET /, GET /nowhere and a WebSocket at /ws, each followed by the note it should leave."""
    import httpx

    async def noted(count: int, what: str, *words: str) -> None:
        try:
            await wait_until(lambda: len(seen) >= count, timeout=REPLY_TIMEOUT)
        except TimeoutError:
            report.add(False, f"{what}: no note in seen (it holds {seen!r})")
            return
        note = _note_for(seen[count - 1 :], *words)
        line = f"{what}: a note naming {' '.join(words)}"
        report.add(
            note is not None, f"{line}, got {seen[count - 1]!r}" if note is None else f"{line}: {note!r}"
        )

    async with httpx.AsyncClient(trust_env=False, timeout=REPLY_TIMEOUT) as http:
        page = await http.get(url)
        report.add(page.text == "a page\n", f"GET / answered {page.status_code} {page.text!r}")
        await noted(1, "GET /", "http", "/", "200")
        missing = await http.get(url + "nowhere")
        report.add(missing.status_code == 404, f"GET /nowhere answered {missing.status_code}")
        await noted(2, "GET /nowhere", "http", "/nowhere", "404")
    async with connect(url.replace("http", "ws", 1) + "ws", open_timeout=REPLY_TIMEOUT) as ws:
        await ws.send("hi")
        echo = await asyncio.wait_for(ws.recv(), REPLY_TIMEOUT)
        report.add(echo == "hi", f"a WebSocket at /ws answered {echo!r}")
        await noted(3, "a WebSocket at /ws", "websocket", "/ws", "accepted")
    report.add(len(seen) == 3, f"one note per request: expected 3 notes, got {len(seen)}")


@exercise(
    reference=solutions.ScopeLog,
    hints=[
        "__call__ gets every scope: pass one that is neither 'http' nor 'websocket' straight to the app",
        "define an async function that takes a message, notes something when its type is"
        " 'http.response.start' (it has the status) or 'websocket.accept', and then awaits the real send",
        "call the app with the same scope and receive, and your function in place of send;"
        " a note can read scope['type'] and scope['path']",
    ],
    title="scope log",
)
async def scope_log_exercise(middleware: Callable[..., Any]) -> CheckReport:
    """The blank: ``middleware(app, seen=[...])`` notes the GET and the WebSocket alike.

    It wraps a real app (a page, a WebSocket echo) served by uvicorn; real requests go through.
    """
    from starlette.applications import Starlette
    from starlette.routing import Mount

    from ..servers.web.runner import serve_web

    report = CheckReport("scope log")
    seen: list[str] = []
    try:
        logged = middleware(_app_to_count(), seen=seen)
    except Exception as exc:
        report.add(False, f"ScopeLog(app, seen=[]) raised {error_text(exc)}")
        return report
    handle = await serve_web(Starlette(routes=[Mount("/", app=logged)]), name="check:scope-log")
    try:
        await _visit_logged(handle.url, report, seen)
    except Exception as exc:
        report.add(False, f"the app failed: {error_text(exc)}")
    finally:
        await handle.stop()
    report.hints_for(SCOPE_LOG_HINTS)
    return report
