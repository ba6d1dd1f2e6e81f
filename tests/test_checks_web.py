"""Lesson 04's exercise checks: the solutions pass, skeletons are not written yet, and wrong
answers get NOT YET with the diff.

Each check runs the learner's code against real connections: a Starlette app under uvicorn, or a
websockets server, on loopback.
"""

from __future__ import annotations

from typing import Any

from helpers import assert_hint, assert_not_yet, assert_passed, failing
from starlette.middleware.base import BaseHTTPMiddleware

import wslab
from wslab.checks.lesson04 import (
    check_origin_guard,
    check_websocket_counter,
    origin_allowed_exercise,
    scope_log_exercise,
)
from wslab.checks.report import Verdict
from wslab.solutions import lesson04

# --- lesson 04, the first blank: a pure ASGI middleware that notes both kinds of request ----------


async def test_scope_log_solution_passes() -> None:
    report = await scope_log_exercise(lesson04.ScopeLog)
    assert_passed(report)
    assert "a WebSocket at /ws: a note naming websocket /ws accepted: 'websocket /ws  -> accepted'" in str(
        report
    )
    assert wslab.running() == []


class SkeletonLog:
    """The blank as the learner edition ships it."""

    def __init__(self, app: Any, *, seen: list[str]) -> None:
        self.app = app
        self.seen = seen

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        """Note each request."""
        ...


async def test_scope_log_skeleton_is_not_written_yet() -> None:
    report = await scope_log_exercise(SkeletonLog)
    assert report.verdict is Verdict.NOT_WRITTEN
    assert str(report).splitlines()[0] == "scope log: not written yet (SkeletonLog.__call__ has no body yet)"


class HttpOnlyLog(BaseHTTPMiddleware):
    """The common kind: dispatch runs for HTTP requests only."""

    def __init__(self, app: Any, *, seen: list[str]) -> None:
        super().__init__(app)
        self.seen = seen

    async def dispatch(self, request: Any, call_next: Any) -> Any:
        response = await call_next(request)
        self.seen.append(f"http {request.url.path} -> HTTP {response.status_code}")
        return response


async def test_scope_log_fails_on_base_http_middleware_with_the_missing_note() -> None:
    report = await scope_log_exercise(HttpOnlyLog)
    assert_not_yet(report)
    assert failing(report, "a WebSocket at /ws").startswith("a WebSocket at /ws: no note in seen")
    assert "one note per request: expected 3 notes, got 2" in report.failures
    assert len(report.failures) == 2  # both HTTP requests were noted, and answered
    assert_hint(report, "'websocket.accept'")


# --- lesson 04, the second blank: the Origin rule, as a function and on real handshakes ----------


async def test_origin_rule_solution_passes() -> None:
    report = await origin_allowed_exercise(lesson04.origin_allowed)
    assert_passed(report)
    assert len(report.results) == 10  # six as a function, four real handshakes


def loose(origin: str | None, host: str, extra: set[str]) -> bool:
    return origin is None or host.split(":")[0] in origin or any(origin.startswith(e) for e in extra)


async def test_origin_rule_fails_on_a_prefix_match_and_lets_a_real_handshake_in() -> None:
    report = await origin_allowed_exercise(loose)
    assert_not_yet(report)
    assert len(report.failures) == 3
    assert failing(report, "same host, other port").endswith("should refuse, but did not")
    assert failing(report, "look-alike").endswith("should refuse, but did not")
    line = failing(report, "this host's other port")
    assert line.endswith("expected HTTP 403 before the upgrade, got the WebSocket (echo: 'hello')")
    assert_hint(report, "lets in look-alikes")


def skeleton_rule(origin: str | None, host: str, extra: set[str]) -> bool:
    """Allow or refuse."""
    raise NotImplementedError


async def test_origin_rule_skeleton_is_not_written_yet_and_serves_nothing() -> None:
    report = await origin_allowed_exercise(skeleton_rule)
    assert report.verdict is Verdict.NOT_WRITTEN and report.results == []
    assert wslab.running() == []


async def test_a_rule_that_raises_is_http_500_on_a_real_handshake() -> None:
    def crashing(origin: str | None, host: str, extra: set[str]) -> bool:
        return origin.startswith("http")  # type: ignore[union-attr]  (None has no startswith)

    report = await origin_allowed_exercise(crashing)
    assert_not_yet(report)
    assert failing(report, "no Origin header (not a browser)").endswith(
        "raised AttributeError: " + ("'NoneType' object has no attribute 'startswith'")
    )
    assert failing(report, "a real handshake with no Origin").endswith("got HTTP 500 before the upgrade")
    assert_hint(report, "HTTP 500 means your function raised")


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
