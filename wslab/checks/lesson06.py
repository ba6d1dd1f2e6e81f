"""Exercise checks for lesson 06: the learner's code against a real Redis server.

Like every check, each talks to a real server (here Redis, at the URL the lesson started)
and returns a :class:`~wslab.checks.report.CheckReport` saying what differed.
Every key a check writes lives in database 15 of that server and is deleted afterwards.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from .report import FAILED, CheckReport, Hints, call_async

__all__ = ["check_catch_up", "check_claim_name"]

#: The Redis database the checks write in, away from the lesson's own keys (database 0).
CHECK_DB = 15

CATCH_UP_HINTS: Hints = [
    (
        ("'message 4'", "after seq 4"),
        "the client already has last_seq itself: start just after it, not at it",
    ),
    (None, "XRANGE reads a stream between two IDs; an ID has the form '<seq>-0'"),
]
CLAIM_NAME_HINTS: Hints = [
    ("'ANA'", "lesson 02 compares names with casefold(): make the key from the folded name"),
    ("stale release", "release only what you hold: read the holder and delete in one step (a Lua script)"),
    ("0.3 s have passed", "SET can give a key an expiry (px= in ms) in the same command that claims it"),
    (None, "SET with nx=True writes only if the key does not exist yet, and says whether it did"),
]


@asynccontextmanager
async def _redis_clients(redis_url: str, count: int) -> AsyncIterator[list[Any]]:
    """``count`` separate connections (one per pretend server); new keys are deleted after."""
    import redis.asyncio as redis

    clients = [redis.from_url(redis_url, db=CHECK_DB, decode_responses=True) for _ in range(count)]
    before = {key async for key in clients[0].scan_iter()}
    try:
        yield clients
    finally:
        made = {key async for key in clients[0].scan_iter()} - before
        if made:
            await clients[0].delete(*made)
        for client in clients:
            await client.aclose()


async def check_catch_up(
    catch_up: Callable[[Any, str, int], Awaitable[list[str]]], redis_url: str
) -> CheckReport:
    """Exercise: ``await catch_up(r, stream, last_seq)``: the texts numbered after ``last_seq``.

    The stream holds entries with ID ``<seq>-0`` and a ``text`` field, as the lesson's
    numbered publish writes them; the numbers have a gap, as a room's do when the
    counter is shared by several rooms.
    """
    report = CheckReport("catch up")
    seqs = [1, 2, 3, 4, 5, 8, 9, 10, 11, 12]
    stream = f"check:history:{uuid.uuid4().hex[:8]}"
    async with _redis_clients(redis_url, 1) as (r,):
        for seq in seqs:
            await r.xadd(stream, {"text": f"message {seq}"}, id=f"{seq}-0")
        for last in [0, 4, 5, 6, 11, 12, 20]:
            want = [f"message {seq}" for seq in seqs if seq > last]
            got = await call_async(report, f"after seq {last}", catch_up(r, stream, last))
            if got is FAILED:
                continue
            got = list(got) if isinstance(got, list | tuple) else got
            shown = want if len(want) <= 3 else [*want[:2], "...", want[-1]]
            if got == want:
                report.add(True, f"after seq {last}: {len(want)} message(s) {shown}")
            else:
                report.add(False, f"after seq {last}: expected {want}, got {got}")
    report.hints_for(CATCH_UP_HINTS)
    return report


Claim = Callable[[Any, str, str, float], Awaitable[bool]]
Release = Callable[[Any, str, str], Awaitable[Any]]


async def check_claim_name(claim: Claim, release: Release, redis_url: str) -> CheckReport:
    """Exercise: one username across all servers, held in Redis.

    ``await claim(r, name, server_id, ttl)`` is True if ``server_id`` now holds ``name``
    (case-insensitively, as lesson 02's rule says), for ``ttl`` seconds unless released;
    ``await release(r, name, server_id)`` gives it up, but only if that server still holds it.
    Two servers are two separate Redis connections.
    """
    report = CheckReport("one name across servers")
    long = 30.0
    async with _redis_clients(redis_url, 2) as (s1, s2):

        async def expect(r: Any, server: str, name: str, want: bool, why: str, ttl: float = long) -> None:
            got = await call_async(report, why, claim(r, name, server, ttl))
            if got is not FAILED:
                report.add(got is want, f"{why}: expected {want}, got {got!r}")

        await expect(s1, "s1", "ana", True, "s1 claims 'ana', a free name")
        await expect(s2, "s2", "ana", False, "s2 claims 'ana', held by s1")
        await expect(s2, "s2", "ANA", False, "s2 claims 'ANA' (the same name, other case)")
        await expect(s2, "s2", "ben", True, "s2 claims 'ben', a free name")
        if await call_async(report, "s1 releases 'ana'", release(s1, "ana", "s1")) is not FAILED:
            await expect(s2, "s2", "ana", True, "after s1 released 'ana', s2 claims it")
        # A server that dies holds its names until their ttl runs out.
        await expect(s1, "s1", "cleo", True, "s1 claims 'cleo' for 0.3 s", ttl=0.3)
        await expect(s2, "s2", "cleo", False, "at once, s2 claims 'cleo'")
        deadline = asyncio.get_running_loop().time() + 3.0
        taken = False
        while not taken and asyncio.get_running_loop().time() < deadline:
            taken = await call_async(report, "s2 claims 'cleo' again", claim(s2, "cleo", "s2", long))
            if taken is FAILED:
                break
            if not taken:
                await asyncio.sleep(0.05)
        report.add(taken is True, "s1 stopped renewing 'cleo': s2 can claim it once 0.3 s have passed")
        # s1 comes back and, not knowing, releases the name it once held: s2 must keep it.
        if await call_async(report, "s1 releases 'cleo'", release(s1, "cleo", "s1")) is not FAILED:
            await expect(s1, "s1", "cleo", False, "after s1's stale release, s1 claims 'cleo' (s2 has it)")
    report.hints_for(CLAIM_NAME_HINTS)
    return report
