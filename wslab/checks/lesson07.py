"""Exercise checks for lesson 07: the ETag check, the SSE resume, the break-even rate.

Like every check, each returns a :class:`~wslab.checks.report.CheckReport` saying what was
tried, what was expected and what came back; hints point the way without the answer.
:func:`check_conditional_get` is the check the lesson's own polling endpoint and wslab's
both pass, over real HTTP.
"""

from __future__ import annotations

import json
import math
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from ..core.fleet import Change, Status
from ..core.sse import SseParser
from .report import FAILED, CheckReport, Hints, call

__all__ = ["check_break_even", "check_conditional_get", "check_etag_match", "check_sse_resume"]

TAG = '"7f3a"'

ETAG_HINTS: Hints = [
    ("weak", "If-None-Match compares weakly (RFC 9110 13.1.2): a W/ prefix does not make tags differ"),
    ("list", "the header may carry several tags, separated by commas"),
    ("* (any", "* matches whatever the current representation is"),
    ("prefix", "compare whole tags, not parts of them"),
]
SSE_HINTS: Hints = [
    ("got ids [''", "give every event an id: line, or the browser's Last-Event-ID never moves"),
    (("'13'", "[13, 14"), "Last-Event-ID names the last event the browser has: start after it"),
    ("got ids []", "an event ends with a blank line; without one the browser dispatches nothing"),
    ("not-a-number", "a header comes from the client: treat one that is not a number as absent"),
]
BREAK_EVEN_HINTS: Hints = [
    (None, "polling costs poll_bytes once per interval; pushing costs push_bytes once per change"),
    (None, "write both as bytes per second, set them equal, solve for the rate"),
]


def check_etag_match(not_modified: Callable[[str | None, str], bool]) -> CheckReport:
    """Exercise 1: ``not_modified(if_none_match, etag)``: should the answer be 304?"""
    report = CheckReport("ETag check")
    cases = [
        (None, TAG, False, "no If-None-Match (a first request)"),
        (TAG, TAG, True, "the current tag"),
        ('"7f3b"', TAG, False, "another tag"),
        ('"7f3"', TAG, False, "a tag that is a prefix of the current one"),
        ('W/"7f3a"', TAG, True, "the current tag, marked weak"),
        (TAG, 'W/"7f3a"', True, "a weak current tag"),
        ('"01", "7f3a"', TAG, True, "a list holding the current tag"),
        ('"01", "02"', TAG, False, "a list without it"),
        ("*", TAG, True, "* (any representation)"),
    ]
    for header, etag, want, why in cases:
        got = call(report, f"{why}: If-None-Match {header!r}, ETag {etag}", not_modified, header, etag)
        if got is FAILED:
            continue
        verdict = f"{want} ({304 if want else 200})"
        ok = got is want or (isinstance(got, bool) is False and bool(got) is want)
        report.add(ok, f"{why}: If-None-Match {header!r}, ETag {etag}: expected {verdict}, got {got!r}")
    report.hints_for(ETAG_HINTS)
    return report


def _history() -> list[Change]:
    statuses = [Status.DEPLOYING, Status.HEALTHY, Status.DEPLOYING, Status.FAILED, Status.ROLLED_BACK]
    return [Change("billing", 2 + (i // 2), s, 11 + i, 1700000000.0 + i) for i, s in enumerate(statuses)]


def check_sse_resume(replay: Callable[[str | None, list[Change]], str]) -> CheckReport:
    """Exercise 2: ``replay(last_event_id, history)``: the event-stream text to send first.

    A browser reconnecting sends ``Last-Event-ID``; the stream must replay the kept changes
    after it, each as an event whose ``id`` is its ``seq`` and whose data is its JSON.
    The check reads the text as an ``EventSource`` would (:class:`~wslab.core.SseParser`).
    """
    report = CheckReport("SSE resume")
    history = _history()  # seq 11..15
    cases = [("13", [14, 15]), ("11", [12, 13, 14, 15]), ("15", []), (None, list(range(11, 16))),
             ("not-a-number", list(range(11, 16)))]  # fmt: skip
    for header, want in cases:
        what = f"Last-Event-ID {header!r}"
        text = call(report, what, replay, header, history)
        if text is FAILED:
            continue
        if not isinstance(text, str):
            report.add(False, f"{what}: expected the stream's text (a str), got {type(text).__name__}")
            continue
        events = SseParser().feed(text)
        ids = [event.id for event in events]
        seqs = [_seq_in(event.data) for event in events]
        ok = ids == [str(s) for s in want] and seqs == want
        report.add(ok, f"{what}: expected events with ids {want}, got ids {ids}, data for seqs {seqs}")
    report.hints_for(SSE_HINTS)
    return report


def _seq_in(data: str) -> int | None:
    try:
        value = json.loads(data)
        return int(value["seq"]) if isinstance(value, dict) else None
    except (ValueError, KeyError, TypeError):
        return None


def check_break_even(break_even_rate: Callable[[float, float, float], float]) -> CheckReport:
    """Exercise 3: ``break_even_rate(interval, poll_bytes, push_bytes)``: changes per second
    at which pushing every change costs one tab as many bytes as polling every ``interval``."""
    report = CheckReport("break-even rate")
    cases = [
        (2.0, 600.0, 150.0, 2.0),
        (1.0, 100.0, 100.0, 1.0),
        (10.0, 500.0, 50.0, 1.0),
        (0.5, 300.0, 200.0, 3.0),
    ]
    for interval, poll_bytes, push_bytes, want in cases:
        what = f"interval {interval:g} s, {poll_bytes:g} B per poll, {push_bytes:g} B per pushed change"
        got = call(report, what, lambda *a: float(break_even_rate(*a)), interval, poll_bytes, push_bytes)
        if got is FAILED:
            continue
        ok = math.isclose(got, want, rel_tol=1e-6)
        report.add(ok, f"{what}: expected {want:g} changes/s, got {got:g}")
    report.hints_for(BREAK_EVEN_HINTS)
    return report


async def check_conditional_get(url: str, change: Callable[[], Awaitable[Any]]) -> CheckReport:
    """A polling endpoint done well, over real HTTP: ``url`` serves the fleet; ``change()`` changes it."""
    report = CheckReport("conditional GET")
    async with httpx.AsyncClient(timeout=5) as http:
        first = await http.get(url)
        etag = first.headers.get("etag")
        report.add(first.status_code == 200, f"GET: expected 200, got {first.status_code}")
        if not report.add(
            etag is not None, "GET: an ETag header" if etag else "GET: expected an ETag header, got none"
        ):
            return report
        again = await http.get(url, headers={"if-none-match": etag})
        report.add(
            again.status_code == 304, f"GET with the tag it got: expected 304, got {again.status_code}"
        )
        report.add(again.content == b"", f"the 304 carries no body: got {len(again.content)} bytes")
        report.add(again.headers.get("etag") == etag, "the 304 repeats the ETag")
        await change()
        after = await http.get(url, headers={"if-none-match": etag})
        report.add(
            after.status_code == 200,
            f"after a change, with the old tag: expected 200, got {after.status_code}",
        )
        new = after.headers.get("etag")
        report.add(
            new not in (None, etag),
            "after a change: a new ETag" if new != etag else "the ETag did not change",
        )
    if not report.passed:
        report.hint(
            "compare the request's If-None-Match with the current tag; equal: Response(status_code=304)"
        )
    return report
