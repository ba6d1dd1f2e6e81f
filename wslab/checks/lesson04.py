"""Exercise checks for lesson 04: the Origin rule, a ``process_request`` guard on real
handshakes, and pure ASGI middleware that sees every WebSocket, on a real Starlette app.

Like every check, each returns a :class:`~wslab.checks.report.CheckReport` saying what was
tried, what was expected and what came back.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

from websockets.asyncio.client import connect
from websockets.typing import Origin

from ..runtime.handles import serve, wait_until
from .report import FAILED, REPLY_TIMEOUT, CheckReport, Hints, call, error_text

__all__ = ["check_origin_guard", "check_origin_rule", "check_websocket_counter"]

ORIGIN_GUARD_HINTS: Hints = [
    ("HTTP 500", "HTTP 500 means your function raised (a KeyError for a header that was not sent?)"),
    (None, "the page's origin is in the Origin header, the server's own host:port in the Host header"),
    (None, "refuse with connection.respond(...) and HTTPStatus.FORBIDDEN; return None to go on"),
]
COUNTER_HINTS: Hints = [
    (
        "two WebSockets open: expected open == 2, got 0",
        "BaseHTTPMiddleware never sees a WebSocket: write __call__(self, scope, receive, send)",
    ),
    (None, "count up when the app sends 'websocket.accept' (wrap send); count down once the app returns"),
]


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
        answer = call(report, why, allowed, origin, host, set(extra))
        if answer is FAILED:
            continue
        got = bool(answer)
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
    cases: list[tuple[Origin | None, bool, str]] = [
        (None, True, "no Origin header (not a browser)"),
        (Origin(own), True, "the page's own origin"),
        (Origin("https://evil.example"), False, "another site"),
        (Origin(f"http://{handle.host}:1"), False, "same host, other port (a different origin)"),
        (Origin(f"http://{handle.host}.evil.example"), False, "a look-alike of this host"),
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
        report.add(False, f"the server failed: {error_text(exc)}")
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
