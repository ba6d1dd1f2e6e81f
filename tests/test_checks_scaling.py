"""Lesson 06's exercise checks: the solutions pass, and wrong answers get NOT YET with the diff.

Each check runs the learner's code against a real Redis server (the session's).
"""

from __future__ import annotations

from typing import Any

from helpers import assert_hint, assert_not_yet, assert_passed, failing

from wslab.checks.lesson06 import check_catch_up, check_claim_name
from wslab.solutions import lesson06

# --- lesson 06: catching up from the history --------------------------------------------------


async def test_catch_up_solution_passes(redis_url: str) -> None:
    assert_passed(await check_catch_up(lesson06.catch_up, redis_url))


async def test_catch_up_fails_when_it_repeats_the_last_message(redis_url: str) -> None:
    async def inclusive(r: Any, stream: str, last_seq: int) -> list[str]:
        return [fields["text"] for _, fields in await r.xrange(stream, min=f"{last_seq}-0")]

    report = await check_catch_up(inclusive, redis_url)
    assert_not_yet(report)
    assert "after seq 12: expected [], got ['message 12']" in report.failures
    assert failing(report, "after seq 4: expected ['message 5'").count("'message 4'") == 1
    assert_hint(report, "start just after it, not at it")


async def test_catch_up_reports_a_raise(redis_url: str) -> None:
    async def broken(r: Any, stream: str, last_seq: int) -> list[str]:
        return await r.xrange(stream, min=last_seq + 1, max="+", count="all")

    report = await check_catch_up(broken, redis_url)
    assert_not_yet(report)
    assert all("raised" in line for line in report.failures), str(report)


# --- lesson 06: one name across servers --------------------------------------------------------


async def test_claim_name_solution_passes(redis_url: str) -> None:
    assert_passed(await check_claim_name(lesson06.claim, lesson06.release, redis_url))


async def test_claim_name_fails_on_case_and_on_a_stale_release(redis_url: str) -> None:
    async def claim(r: Any, name: str, server_id: str, ttl: float) -> bool:
        return bool(await r.set(f"name:{name}", server_id, nx=True, px=int(ttl * 1000)))

    async def release(r: Any, name: str, server_id: str) -> None:
        await r.delete(f"name:{name}")  # whoever holds it now

    report = await check_claim_name(claim, release, redis_url)
    assert_not_yet(report)
    assert report.failures == [
        "s2 claims 'ANA' (the same name, other case): expected False, got True",
        "after s1's stale release, s1 claims 'cleo' (s2 has it): expected False, got True",
    ]
    assert_hint(report, "casefold()")
    assert_hint(report, "release only what you hold")


async def test_claim_name_fails_when_a_dead_server_keeps_its_names(redis_url: str) -> None:
    async def forever(r: Any, name: str, server_id: str, ttl: float) -> bool:
        return bool(await r.set(f"forever:{name.casefold()}", server_id, nx=True))  # no expiry

    report = await check_claim_name(forever, lesson06.release, redis_url)
    assert_not_yet(report)
    assert "s1 stopped renewing 'cleo': s2 can claim it once 0.3 s have passed" in report.failures
    assert_hint(report, "px= in ms")
