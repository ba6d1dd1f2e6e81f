"""Lesson 06's exercise checks: the solutions pass, wrong answers get NOT YET with the diff, and
a blank still holding its skeleton is told "not written yet".

The relay checks start the learner's program twice, on a broker server of their own (Redis, or
Kafka's tansu); the others run the learner's code against the session's Redis server.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from helpers import assert_hint, assert_not_yet, assert_passed, failing

from wslab.checks.lesson06 import (
    KAFKA_RELAY_SCRIPT,
    REDIS_RELAY_SCRIPT,
    check_catch_up,
    check_claim_name,
    kafka_relay_exercise,
    numbering_exercise,
    redis_relay_exercise,
)
from wslab.checks.report import Verdict
from wslab.solutions import lesson06

pytestmark = pytest.mark.broker  # real Redis and tansu servers

SKELETON = '''import asyncio


async def relay(websocket, r, name):
    """One client of this process."""
    raise NotImplementedError  # write it: see the comment above


async def forward(pubsub):
    """Everything Redis delivers."""
    ...
'''


def variant(tmp_path: Path, reference: str, old: str, new: str) -> str:
    """The reference program with one slip: ``old`` replaced by ``new``."""
    text = Path(reference).read_text()
    assert old in text
    script = tmp_path / Path(reference).name
    script.write_text(text.replace(old, new))
    return str(script)


# --- lesson 06: the relays, as two OS processes -------------------------------------------------


async def test_the_redis_relay_reference_passes_and_a_skeleton_is_not_written_yet(tmp_path: Path) -> None:
    assert_passed(await redis_relay_exercise(REDIS_RELAY_SCRIPT))
    skeleton = tmp_path / "redis_relay.py"
    skeleton.write_text(SKELETON)
    report = await redis_relay_exercise(str(skeleton))
    assert report.verdict is Verdict.NOT_WRITTEN
    assert report.unwritten == [
        "redis_relay.py: relay has no body yet",
        "redis_relay.py: forward has no body yet",
    ]


async def test_a_redis_relay_without_the_tag_gets_not_yet(tmp_path: Path) -> None:
    untagged = variant(tmp_path, REDIS_RELAY_SCRIPT, 'f"{text} (via {name})"', "text")
    report = await redis_relay_exercise(untagged)
    assert_not_yet(report)
    line = failing(report, "sent to B: A's client")
    assert (
        line
        == 'sent to B: A\'s client expected "hello from B\'s client (via B)", got "hello from B\'s client"'
    )


async def test_a_relay_that_dies_at_start_says_why(tmp_path: Path) -> None:
    crashing = tmp_path / "redis_relay.py"
    crashing.write_text("import sys\n\nraise SystemExit('cannot reach ' + sys.argv[2])\n")
    report = await redis_relay_exercise(str(crashing))
    assert_not_yet(report)
    assert failing(report, "server A exited instead of 'listening on port N': cannot reach redis://")
    assert_hint(report, "run it in a terminal")


async def test_a_relay_that_dies_while_talked_to_says_why(tmp_path: Path) -> None:
    filtered = 'if message["type"] == "message":  # not the confirmation of the subscription\n            '
    unfiltered = variant(tmp_path, REDIS_RELAY_SCRIPT, filtered, "")  # broadcasts the confirmation (an int)
    report = await redis_relay_exercise(unfiltered)
    assert_not_yet(report)
    assert failing(report, "server A exited while it was talked to: TypeError")
    assert_hint(report, "its traceback says where")


async def test_the_kafka_relay_reference_passes_and_numbers_by_offset(tmp_path: Path) -> None:
    report = await kafka_relay_exercise(KAFKA_RELAY_SCRIPT)
    assert_passed(report)
    assert "sent to A: B's client got \"2 and A's (via A)\"" in str(report)  # one record was there first
    numbered = 'f"{record.offset} {record.value.decode()}"'
    report = await kafka_relay_exercise(
        variant(tmp_path, KAFKA_RELAY_SCRIPT, numbered, "record.value.decode()")
    )
    assert_not_yet(report)
    assert failing(report, 'B\'s client expected "1 hello from B\'s client (via B)", got "hello from')
    assert_hint(report, "the record's offset")
    report = await kafka_relay_exercise(variant(tmp_path, KAFKA_RELAY_SCRIPT, numbered, "record.value"))
    assert failing(report, 'got b"hello from')
    assert_hint(report, "decode() it")


# --- lesson 06: the numbered publish --------------------------------------------------------------


async def test_the_numbered_publish_reference_passes(redis_url: str) -> None:
    assert_passed(await numbering_exercise(lesson06.publish_numbered, redis_url))


async def test_a_publish_that_keeps_nothing_gets_not_yet(redis_url: str) -> None:
    async def unkept(r: Any, room: str, text: str) -> int:
        seq = await r.incr(f"{room}:seq")
        await r.publish(f"{room}:live", text)
        return int(seq)

    report = await numbering_exercise(unkept, redis_url)
    assert_not_yet(report)
    assert failing(report, "the stream {room}:history: expected 41-0 {'text': 'first'}").endswith("got []")
    assert failing(report, "on {room}:live") == "on {room}:live, heard ['first', 'second', 'third']"
    assert_hint(report, "XADD")


async def test_an_unwritten_numbered_publish_is_not_written_yet(redis_url: str) -> None:
    async def publish_numbered(r: Any, room: str, text: str) -> int:
        """Number, keep, publish."""
        raise NotImplementedError

    report = await numbering_exercise(publish_numbered, redis_url)
    assert report.verdict is Verdict.NOT_WRITTEN


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
