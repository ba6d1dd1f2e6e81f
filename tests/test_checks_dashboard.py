"""Lesson 07's checks: the three endpoints the learner writes, served and asked over real HTTP,
and the two exercises. The references pass; a skeleton is not written yet and never served; wrong
answers get NOT YET with what differed, and hints that never give the answer away."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from helpers import assert_hint, assert_not_yet, assert_passed
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

import wslab
from wslab.checks.lesson07 import (
    changes_exercise,
    check_break_even,
    check_etag_match,
    events_exercise,
    status_exercise,
)
from wslab.checks.report import Verdict
from wslab.solutions import lesson07


async def skeleton(request: Request) -> Response:
    """As the learner edition ships a blank."""
    raise NotImplementedError  # write it: see the comment above


# The conditional poll (section 2)


async def test_the_conditional_poll_reference_passes() -> None:
    report = await status_exercise(lesson07.status)
    assert_passed(report)
    assert "GET with the tag it got: expected 304, got 304" in [line for _, line in report.results]
    assert wslab.running() == []


async def test_a_skeleton_is_not_written_yet_for_each_endpoint() -> None:
    for exercise in (status_exercise, changes_exercise, events_exercise):
        report = await exercise(skeleton)
        assert report.verdict is Verdict.NOT_WRITTEN, str(report)
        assert report.results == [] and "Traceback" not in str(report)
    assert wslab.running() == []


async def test_a_poll_without_an_etag_is_not_yet() -> None:
    async def status(request: Request) -> Response:
        return JSONResponse(request.app.state.feed.fleet.snapshot())

    report = await status_exercise(status)
    assert_not_yet(report)
    assert "GET: expected an ETag header, got none" in report.failures
    assert_hint(report, "a hash of the body")


async def test_a_poll_that_never_answers_304_is_not_yet() -> None:
    async def status(request: Request) -> Response:
        body = json.dumps(request.app.state.feed.fleet.snapshot()).encode()
        return Response(body, media_type="application/json", headers={"etag": f'"{len(body)}x{hash(body)}"'})

    report = await status_exercise(status)
    assert_not_yet(report)
    assert "GET with the tag it got: expected 304, got 200" in report.failures
    assert_hint(report, "compare the request's if-none-match header")


async def test_a_poll_that_raises_is_a_failed_line_not_a_traceback() -> None:
    async def status(request: Request) -> Response:
        return {}["etag"]  # type: ignore[no-any-return]

    report = await status_exercise(status)
    assert_not_yet(report)
    assert "GET /api/status: raised KeyError: 'etag'" in report.failures
    assert "Traceback" not in str(report)


# The long poll (section 3)


async def test_the_long_poll_reference_passes() -> None:
    assert_passed(await changes_exercise(lesson07.changes))


async def test_a_long_poll_that_does_not_wait_is_not_yet() -> None:
    async def changes(request: Request) -> Response:
        fleet = request.app.state.feed.fleet
        since = int(request.query_params["since"])
        return JSONResponse({"seq": fleet.seq, "changes": [c.to_dict() for c in fleet.changes_after(since)]})

    report = await changes_exercise(changes)
    assert_not_yet(report)
    assert "since=3, nothing newer: answered at once" in report.failures
    assert_hint(report, "returns only once the fleet holds something after since")


async def test_a_long_poll_that_never_answers_204_is_not_yet() -> None:
    async def changes(request: Request) -> Response:
        feed = request.app.state.feed
        since = int(request.query_params["since"])
        await feed.wait_after(since, timeout=25)
        return JSONResponse(
            {"seq": feed.fleet.seq, "changes": [c.to_dict() for c in feed.fleet.changes_after(since)]}
        )

    report = await changes_exercise(changes)
    assert_not_yet(report)
    assert "since=4, and the wait ends with no news: expected 204, got 200" in report.failures
    assert_hint(report, "answer 204")


# The SSE stream (section 4)


def _stream(lines: Any) -> StreamingResponse:
    return StreamingResponse(lines, media_type="text/event-stream")


async def test_the_sse_reference_passes() -> None:
    report = await events_exercise(lesson07.events)
    assert_passed(report)
    assert len(report.results) == 5
    assert wslab.running() == []


async def test_a_stream_without_ids_or_resume_is_not_yet() -> None:
    async def events(request: Request) -> Response:
        feed = request.app.state.feed

        async def lines() -> Any:
            yield "retry: 1000\n\n"
            seq = feed.fleet.seq
            yield f"event: snapshot\ndata: {json.dumps(feed.fleet.snapshot())}\n\n"
            while await feed.wait_after(seq):
                for change in feed.fleet.changes_after(seq):
                    yield f"event: change\ndata: {json.dumps(change.to_dict())}\n\n"
                    seq = change.seq

        return _stream(lines())

    report = await events_exercise(events)
    assert_not_yet(report)
    assert (
        "Last-Event-ID None (a first visit): expected ['snapshot 7', 'change 8'], got" in report.failures[0]
    )
    assert_hint(report, "give every event an id")
    assert_hint(report, "Last-Event-ID names the last event the browser has")


async def test_a_stream_that_trusts_the_header_is_not_yet() -> None:
    """int() on the header: a header that is not a number raises, in the learner's code."""

    async def events(request: Request) -> Response:
        last = request.headers.get("last-event-id")
        seq = int(last) if last is not None else None
        return await lesson07.events(request) if seq is None or seq >= 0 else _stream([])

    report = await events_exercise(events)
    assert_not_yet(report)
    assert "GET /api/events: raised ValueError: invalid literal for int() with base 10: 'not-a-number'" in (
        report.failures
    )
    assert_hint(report, "treat one that is not a number as absent")
    assert "Traceback" not in str(report)


async def test_a_stream_that_ignores_the_history_limit_is_not_yet() -> None:
    """Replaying from the history as if it reached back: the oldest missed changes never come."""

    async def events(request: Request) -> Response:
        feed = request.app.state.feed
        last = request.headers.get("last-event-id", "")

        async def lines() -> Any:
            yield "retry: 1000\n\n"
            seq = int(last) if last.isdigit() else None
            if seq is None:
                seq = feed.fleet.seq
                yield lesson07.sse_event("snapshot", seq, feed.fleet.snapshot())
            while True:
                for change in [c for c in feed.fleet.history if c.seq > seq]:
                    yield lesson07.sse_event("change", change.seq, change.to_dict())
                    seq = change.seq
                if not await feed.wait_after(seq):
                    return

        return _stream(lines())

    report = await events_exercise(events)
    assert_not_yet(report)
    assert report.failures[0].startswith("Last-Event-ID '1' (back after 1, further than the history)")
    assert_hint(report, "changes_after returns None")


async def test_a_stream_whose_events_never_end_is_not_yet() -> None:
    async def events(request: Request) -> Response:
        async def lines() -> Any:
            yield f"id: 1\ndata: {json.dumps({'seq': 1})}\n"
            await asyncio.sleep(10)

        return _stream(lines())

    report = await events_exercise(events)
    assert_not_yet(report)
    assert_hint(report, "an event ends with a blank line")
    assert_hint(report, "retry:")


def test_etag_solution_passes() -> None:
    assert_passed(check_etag_match(lesson07.not_modified))


def test_etag_check_catches_a_strict_comparison() -> None:
    report = check_etag_match(lambda header, etag: header == etag)

    assert_not_yet(report)
    weak = 'the current tag, marked weak: If-None-Match \'W/"7f3a"\', ETag "7f3a"'
    assert f"{weak}: expected True (304), got False" in report.failures
    assert len(report.failures) == 4
    assert_hint(report, "compares weakly")
    assert_hint(report, "separated by commas")
    assert not any("removeprefix" in hint or "split" in hint for hint in report.hints)


def test_etag_check_catches_substring_matching() -> None:
    report = check_etag_match(lambda header, etag: header is not None and header.strip('"') in etag)

    assert_not_yet(report)
    assert any(line.startswith("a tag that is a prefix") for line in report.failures)
    assert_hint(report, "whole tags")


def test_break_even_solution_passes() -> None:
    assert_passed(check_break_even(lesson07.break_even_rate))


def test_break_even_check_catches_a_forgotten_interval() -> None:
    report = check_break_even(lambda interval, poll_bytes, push_bytes: poll_bytes / push_bytes)

    assert_not_yet(report)
    assert (
        "interval 2 s, 600 B per poll, 150 B per pushed change: expected 2 changes/s, got 4"
        in report.failures
    )
    assert_hint(report, "bytes per second")
    assert not any("/" in hint for hint in report.hints)  # no formula given away
