"""Lesson 07's exercise checks: the solutions pass; wrong answers get NOT YET with what differed,
and hints that never give the answer away."""

from __future__ import annotations

import json

from helpers import assert_hint, assert_not_yet, assert_passed

from wslab.checks.lesson07 import check_break_even, check_etag_match, check_sse_resume
from wslab.core.fleet import Change
from wslab.solutions import lesson07


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


def test_sse_resume_solution_passes() -> None:
    assert_passed(check_sse_resume(lesson07.replay))


def test_sse_resume_check_catches_missing_ids_and_an_inclusive_start() -> None:
    def replay(last: str | None, history: list[Change]) -> str:
        start = int(last or 0)
        return "".join(f"data: {json.dumps(c.to_dict())}\n\n" for c in history if c.seq >= start)

    report = check_sse_resume(replay)

    assert_not_yet(report)
    want = "Last-Event-ID '13': expected events with ids [14, 15]"
    assert f"{want}, got ids ['', '', ''], data for seqs [13, 14, 15]" in report.failures
    assert any("raised ValueError" in line for line in report.failures)  # 'not-a-number'
    assert_hint(report, "give every event an id")
    assert_hint(report, "start after it")
    assert_hint(report, "treat one that is not a number as absent")


def test_sse_resume_check_catches_events_never_ended() -> None:
    report = check_sse_resume(lambda last, history: "".join(f"id: {c.seq}\ndata: {c.seq}\n" for c in history))

    assert_not_yet(report)
    assert_hint(report, "blank line")


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
