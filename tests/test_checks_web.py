"""Lesson 04's exercise checks: the solutions pass, and wrong answers get NOT YET with the diff.

Each check runs the learner's code against real connections: a Starlette app under uvicorn, or a
websockets server, on loopback.
"""

from __future__ import annotations

from typing import Any

from helpers import assert_hint, assert_not_yet, assert_passed, failing
from starlette.middleware.base import BaseHTTPMiddleware

import wslab
from wslab.checks.lesson04 import check_origin_guard, check_origin_rule, check_websocket_counter
from wslab.solutions import lesson04

# --- lesson 04: the Origin rule -------------------------------------------------------------


def test_origin_rule_solution_passes() -> None:
    assert_passed(check_origin_rule(lesson04.origin_allowed))


def test_origin_rule_fails_on_a_prefix_match() -> None:
    def loose(origin: str | None, host: str, extra: set[str]) -> bool:
        return origin is None or host.split(":")[0] in origin or any(origin.startswith(e) for e in extra)

    report = check_origin_rule(loose)
    assert_not_yet(report)
    assert len(report.failures) == 2
    assert failing(report, "same host, other port").endswith("should refuse, but did not")
    assert failing(report, "look-alike").endswith("should refuse, but did not")
    assert_hint(report, "never startswith")


# --- lesson 04: counting WebSockets in pure ASGI middleware ------------------------------------


async def test_websocket_counter_solution_passes() -> None:
    report = await check_websocket_counter(lesson04.CountWebSockets)
    assert_passed(report)
    assert wslab.running() == []


class HttpOnlyCounter(BaseHTTPMiddleware):
    """The pitfall: BaseHTTPMiddleware's dispatch never runs for a WebSocket."""

    def __init__(self, app: Any) -> None:
        super().__init__(app)
        self.open = 0

    async def dispatch(self, request: Any, call_next: Any) -> Any:
        if request.scope["type"] == "websocket":  # never true here
            self.open += 1
        return await call_next(request)


async def test_websocket_counter_fails_on_base_http_middleware() -> None:
    report = await check_websocket_counter(HttpOnlyCounter)
    assert_not_yet(report)
    assert "two WebSockets open: expected open == 2, got 0" in report.failures
    assert_hint(report, "BaseHTTPMiddleware never sees a WebSocket")


class NeverForgets:
    """Counts each accepted WebSocket, but never counts a closed one down."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.open = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        async def counting(message: Any) -> None:
            if message["type"] == "websocket.accept":
                self.open += 1
            await send(message)

        await self.app(scope, receive, counting)


async def test_websocket_counter_fails_when_closed_sockets_stay_counted() -> None:
    report = await check_websocket_counter(NeverForgets)
    assert_not_yet(report)
    assert "after the client closed one: expected open == 1, got 2" in report.failures
    assert failing(report, "after the server closed the other").endswith("got 2")


async def test_websocket_counter_reports_a_middleware_without_a_count() -> None:
    report = await check_websocket_counter(lambda app: app)
    assert_not_yet(report)
    assert "before any request: expected open == 0, got \"no attribute 'open'\"" in report.failures


# --- lesson 04: the Origin guard on a websockets server ----------------------------------------


async def test_origin_guard_solution_passes() -> None:
    assert_passed(await check_origin_guard(lesson04.origin_guard))


async def test_origin_guard_fails_when_everything_is_let_through() -> None:
    report = await check_origin_guard(lambda connection, request: None)
    assert_not_yet(report)
    assert len(report.failures) == 3
    line = failing(report, "another site")
    assert line.endswith("expected HTTP 403 before the upgrade, got the WebSocket (echo: 'hello')")


async def test_origin_guard_reports_a_crashing_hook_as_http_500() -> None:
    def crashing(connection: Any, request: Any) -> None:
        raise KeyError("Origin")  # request.headers["Origin"] on a client that sends none

    report = await check_origin_guard(crashing)
    assert_not_yet(report)
    assert failing(report, "no Origin header").endswith("got HTTP 500 before the upgrade")
    assert_hint(report, "HTTP 500 means your function raised")
