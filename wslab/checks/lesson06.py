"""Exercise checks for lesson 06: the learner's relays and numbering against real brokers.

The blanks are two programs and a function. The relays (``redis_relay_exercise``,
``kafka_relay_exercise``) are started twice, as servers A and B, on a broker server of their
own (started for the check, stopped after it), and talked to by real clients
(:mod:`wslab.checks.programs`). The numbered publish (``numbering_exercise``) and the exercises
(``check_catch_up``, ``check_claim_name``) talk to the lesson's Redis, in database 15, and delete
every key they wrote afterwards. Each returns a :class:`~wslab.checks.report.CheckReport`
saying what differed.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from ..services.broker_servers import start_services
from ..services.process import ServiceUnavailable
from ..solutions import lesson06 as solutions
from .programs import conversation, two_relays
from .report import FAILED, CheckReport, Hints, call_async, exercise

__all__ = [
    "check_catch_up",
    "check_claim_name",
    "kafka_relay_exercise",
    "numbering_exercise",
    "redis_relay_exercise",
]

#: The Redis database the checks write in, away from the lesson's own keys (database 0).
CHECK_DB = 15
#: wslab's answers to the two program blanks: the lesson's scripts, written in full.
REDIS_RELAY_SCRIPT = str(Path(solutions.__file__).with_name("redis_relay.py"))
KAFKA_RELAY_SCRIPT = str(Path(solutions.__file__).with_name("kafka_relay.py"))

STARTING_HINTS: Hints = [
    (
        "instead of 'listening on port N'",
        "run it in a terminal to see it fail: python SCRIPT A URL (the broker's URL the lesson printed)",
    ),
    ("exited while", "the program stopped with the error at the end of that line: its traceback says where"),
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


@asynccontextmanager
async def _broker_of_its_own(report: CheckReport, kind: str) -> AsyncIterator[str | None]:
    """A Redis or Kafka server started for this check alone: its URL, or None (a failed line says why)."""
    try:
        services = await start_services(
            redis=kind == "redis", nats=False, kafka=kind == "kafka", required=True, register=False
        )
    except ServiceUnavailable as exc:
        report.add(False, f"no {kind} server can be started here: {exc}")
        yield None
        return
    try:
        yield getattr(services, f"{kind}_url")
    finally:
        await services.stop()


# The blanks: the two relays, and the numbered publish


@exercise(
    reference=REDIS_RELAY_SCRIPT,
    hints=[
        "three functions, three steps of the Rust tutorial: relay() publishes what a client says,"
        " subscribe() listens to the shared channel, forward() hands on what Redis delivers",
        "relay(): add the connection to `local` first and take it out in a finally, so a client that"
        " leaves is no longer sent anything; publish each text with the (via NAME) tag",
        "subscribe(): r.pubsub() makes a PubSub object; await its subscribe() with CHANNEL, then return it",
        "forward(): pubsub.listen() yields dicts; only those whose 'type' is 'message' are chat lines"
        " (the first one confirms the subscription); broadcast() their 'data' to `local`",
    ],
    title="Redis relay",
)
async def redis_relay_exercise(script: str | Path) -> CheckReport:
    """Section 2: ``python SCRIPT NAME REDIS_URL`` twice, as servers A and B on one Redis: a line a
    client of either says reaches the clients of both, tagged ``(via NAME)`` of the sender's server."""
    report = CheckReport("Redis relay")
    async with _broker_of_its_own(report, "redis") as url:
        if url is not None:
            async with two_relays(report, script, url) as urls:
                if urls is not None:
                    await conversation(report, urls)
    report.hints_for(STARTING_HINTS)
    return report


KAFKA_RELAY_HINTS: Hints = [
    *STARTING_HINTS,
    ("got b", "a record's value is bytes: decode() it, or the clients get binary messages"),
    (('expected "1 ', 'got "h'), "each line starts with its number (the record's offset) and a space"),
]

#: What the Kafka check writes to the room's log before starting the servers: they must number
#: what follows by its offset, and read from the end of the log.
_ALREADY_THERE = 1


@exercise(
    reference=KAFKA_RELAY_SCRIPT,
    hints=[
        "relay() is the Redis relay's, with send_and_wait() instead of publish(): to ROOM's topic and"
        " partition, and the value in bytes (encode the tagged text)",
        "read_from_end(): a consumer with no group reads what it is assigned: assign() it ROOM (in a"
        " list), ask end_offsets() where the log ends now, and seek() there",
        "forward(): each record has .offset, its number in the log, and .value, bytes:"
        " broadcast() the offset, a space, then the decoded text",
    ],
    title="Kafka relay",
)
async def kafka_relay_exercise(script: str | Path) -> CheckReport:
    """Section 6: ``python SCRIPT NAME HOST:PORT`` twice, as servers A and B on one Kafka broker:
    a line a client of either says reaches the clients of both, tagged with the sender's server
    and numbered by its offset in the room's log (which already holds one record)."""
    report = CheckReport("Kafka relay")
    async with _broker_of_its_own(report, "kafka") as url:
        if url is not None:
            bootstrap = url.removeprefix("kafka://")
            await _room_with_one_record(bootstrap)
            async with two_relays(report, script, bootstrap) as urls:
                if urls is not None:
                    await conversation(report, urls, first_number=_ALREADY_THERE)
    report.hints_for(KAFKA_RELAY_HINTS)
    return report


async def _room_with_one_record(bootstrap: str) -> None:
    """The topic ``chat`` with one partition, as the lesson creates it, holding one record already."""
    from aiokafka import AIOKafkaProducer
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await admin.start()
    await producer.start()
    try:
        await admin.create_topics([NewTopic("chat", num_partitions=1, replication_factor=1)])
        for _ in range(_ALREADY_THERE):
            await producer.send_and_wait("chat", b"said before the servers started", partition=0)
    finally:
        await producer.stop()
        await admin.close()


PublishNumbered = Callable[[Any, str, str], Awaitable[int]]


@exercise(
    reference=solutions.publish_numbered,
    hints=[
        "three commands, in this order: number (INCR), keep (XADD), publish (PUBLISH); return the number",
        "INCR on the room's counter key returns the new number: Redis adds one atomically, whoever asks",
        "XADD takes the ID you give it: '<seq>-0' keeps each message under its number, with a 'text' field",
        "publish the number, a space, then the text: a subscriber reads the number first",
    ],
    title="numbered publish",
)
async def numbering_exercise(publish_numbered: PublishNumbered, redis_url: str) -> CheckReport:
    """Section 3: ``await publish_numbered(r, room, text)`` numbers ``text`` with the counter
    ``{room}:seq``, keeps it in the stream ``{room}:history`` under ID ``<seq>-0`` (field ``text``),
    publishes ``"<seq> <text>"`` on ``{room}:live``, and returns the number. The room has had 40
    messages already."""
    report = CheckReport("numbered publish")
    room = f"check:{uuid.uuid4().hex[:8]}"
    texts = ["first", "second", "third"]
    async with _redis_clients(redis_url, 2) as (r, listener):
        pubsub = listener.pubsub()
        await pubsub.subscribe(f"{room}:live")
        await pubsub.get_message(timeout=1)  # the confirmation
        await r.set(f"{room}:seq", 40)
        for seq, text in enumerate(texts, 41):
            what = f"publish_numbered(r, room, {text!r})"
            got = await call_async(report, what, publish_numbered(r, room, text))
            if got is not FAILED:
                report.add(got == seq, f"{text!r} numbered: expected {seq}, got {got!r}")
        kept = [f"{entry} {fields}" for entry, fields in await r.xrange(f"{room}:history")]
        want = [f"{seq}-0 {{'text': {text!r}}}" for seq, text in enumerate(texts, 41)]
        if kept == want:
            report.add(True, f"the stream {{room}}:history holds {', '.join(want)}")
        else:
            report.add(False, f"the stream {{room}}:history: expected {', '.join(want)}, got {kept}")
        live = [await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.5) for _ in texts]
        heard = [message["data"] for message in live if message]
        report.add(heard == [f"{s} {t}" for s, t in enumerate(texts, 41)], f"on {{room}}:live, heard {heard}")
        await pubsub.aclose()
    report.hints_for(
        [
            ("numbered: expected", "the room's counter lives in Redis, at the key {room}:seq: INCR it"),
            ("{room}:history", "XADD to the stream {room}:history, under the ID '<seq>-0', one field: text"),
            ("{room}:live", "PUBLISH on the channel {room}:live, with the number in front"),
        ]
    )
    return report


# The exercises

CatchUp = Callable[[Any, str, int], Awaitable[list[str]]]

CATCH_UP_HINTS: Hints = [
    (
        ("'message 4'", "after seq 4"),
        "the client already has last_seq itself: start just after it, not at it",
    ),
    (None, "XRANGE reads a stream between two IDs; an ID has the form '<seq>-0'"),
]


@exercise(
    reference=solutions.catch_up,
    hints=[
        "XRANGE reads a stream between two IDs, in order; an ID has the form '<seq>-0'",
        "the client has last_seq already: an ID starting with '(' excludes it",
        "each entry comes back as (id, fields): the text is fields['text']",
    ],
    title="catch up",
)
async def check_catch_up(catch_up: CatchUp, redis_url: str) -> CheckReport:
    """Exercise 1: ``await catch_up(r, stream, last_seq)``: the texts numbered after ``last_seq``.

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

CLAIM_NAME_HINTS: Hints = [
    ("'ANA'", "lesson 02 compares names with casefold(): make the key from the folded name"),
    ("stale release", "release only what you hold: read the holder and delete in one step (a Lua script)"),
    ("0.3 s have passed", "SET can give a key an expiry (px= in ms) in the same command that claims it"),
    (None, "SET with nx=True writes only if the key does not exist yet, and says whether it did"),
]


@exercise(
    reference=(solutions.claim, solutions.release),
    hints=[
        "one key per name; SET with nx=True writes only if nobody holds it yet, and says whether it did",
        "the same name in another case is the same name: make the key from name.casefold()",
        "a dead server never releases: give the key an expiry (px=, in ms) in the same SET",
        "release only what you hold: a Lua script that compares the holder and deletes it runs as one step",
    ],
    title="one name across servers",
)
async def check_claim_name(claim: Claim, release: Release, redis_url: str) -> CheckReport:
    """Exercise 2: one username across all servers, held in Redis.

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
