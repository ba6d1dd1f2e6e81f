"""A broker killed with SIGKILL under a talking room: what may be lost, and what must never happen.

Three chat server processes share one broker; twelve people, four on each server, each say 40
messages while the broker process is killed (SIGKILL: no goodbye, nothing saved) and started
again on its port. Whatever the broker kept, nothing reaches a client twice, and every sender
learns the fate of every message (numbered, or gone with the broker).

* A broker that keeps only memory (Redis with persistence off) comes back empty: the messages in
  flight are gone, and every client that misses any is told after which seq of the old
  numbering it may have missed some.
* A broker that persists every write (Redis ``appendonly yes`` + ``appendfsync always``; NATS
  JetStream with file storage) loses nothing: everyone has every message, once, in one order.

(Kafka is left out: tansu keeps memory only, and right after a restart it has been seen giving
two records the same offset, which no client of a log can undo. ``test_scale_out`` restarts it.)
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from helpers import TIMEOUT, Clients, own_broker_server, wait_for

from wslab.clients.chat import ChatClient
from wslab.services import ChatProcess
from wslab.services.broker_servers import BrokerServer

pytestmark = pytest.mark.broker  # real broker and chat server processes: not in `make unit`

PEOPLE = 12
SAID = 40
#: Seconds between one person's messages: 12 people make about 240 messages a second in all.
PACE = 0.05
#: How long recovery may take: the clients' and the servers' reconnection backoff.
RECOVERY = 20.0


@pytest.fixture
async def broker(request: pytest.FixtureRequest) -> AsyncIterator[BrokerServer]:
    """A broker server for this test alone (``request.param``: its kind, and whether it persists)."""
    kind, persistent = request.param
    async with own_broker_server(kind, persistent=persistent) as server:
        yield server


async def talking_room(url: str, clients: Clients) -> list[ChatClient]:
    """Three servers, four people on each (the other servers as fallbacks), everyone in."""
    servers = [ChatProcess(url, server_id=f"s{i}") for i in range(3)]
    await asyncio.gather(*(server.start() for server in servers))
    urls = [server.url for server in servers]
    people = [await clients.join(urls[i % 3 :] + urls[: i % 3], f"p{i:02}") for i in range(PEOPLE)]
    await wait_for(lambda: len(people[0].users) == PEOPLE, timeout=RECOVERY, what="everyone in")
    return people


def said_by(person: ChatClient) -> list[str]:
    return [f"{person.name}:{i}" for i in range(SAID)]


async def talk(person: ChatClient) -> None:
    for text in said_by(person):
        await person.send(text)
        await asyncio.sleep(PACE)  # paces the stream; not synchronisation


async def kill_mid_conversation(broker: BrokerServer, people: list[ChatClient]) -> None:
    """Everyone talks; the broker is killed and started again while they do."""
    talking = [asyncio.create_task(talk(person)) for person in people]
    await wait_for(lambda: all(len(p.texts()) >= 60 for p in people), what="the room talks")
    assert not any(task.done() for task in talking)  # the kill lands mid-conversation
    await broker.crash()  # SIGKILL
    await broker.start()  # same port; what it kept is what it had on disk
    await asyncio.wait_for(asyncio.gather(*talking), TIMEOUT + RECOVERY)
    await wait_for(lambda: not any(p.unacknowledged for p in people), timeout=RECOVERY, what="all answered")


def gone(person: ChatClient) -> list[str]:
    """What ``person`` said that was published before the room's reset and never numbered again."""
    return [
        text
        for text in said_by(person)
        if f"{text!r} was published before the room's reset" in person.notices
    ]


async def settled(people: list[ChatClient]) -> None:
    """Wait until everything numbered has reached everyone: each person's transcript holds what
    every sender has in its own (numbered), and nothing more arrives."""
    numbered = {text for person in people for text in person.texts(author=person.name)}
    await wait_for(
        lambda: all(numbered <= set(p.texts()) for p in people),
        timeout=RECOVERY,
        what="all numbered delivered",
    )


@pytest.mark.parametrize("broker", [("redis", False)], indirect=True, ids=["redis-memory"])
async def test_a_memory_only_broker_killed_loses_only_what_was_in_flight_tells_everyone_and_repeats_nothing(
    broker: BrokerServer,
) -> None:
    clients = Clients()
    try:
        people = await talking_room(broker.url, clients)
        await kill_mid_conversation(broker, people)
        await settled(people)
        for person in people:
            texts = person.texts()
            assert len(texts) == len(set(texts)), f"{person.name} got a message twice"
            assert person.tracker.duplicates == 0
            # Every sender knows the fate of every message: numbered, or gone with the broker.
            assert sorted(person.texts(author=person.name) + gone(person)) == sorted(said_by(person))
            missed = [t for other in people for t in other.texts(author=other.name) if t not in texts]
            assert not missed  # what was numbered reached everyone
            assert person.lost_after_reset, f"{person.name} was not told of the reset"
        await people[0].send("after the crash")  # and the room works as before
        for person in people[1:]:
            await wait_for(lambda p=person: "after the crash" in p.texts(), what=f"{person.name} hears it")
    finally:
        await clients.stop_all()


@pytest.mark.parametrize(
    "broker",
    [("redis", True), ("nats", True)],
    indirect=True,
    ids=["redis-appendfsync-always", "nats-jetstream-file"],
)
async def test_a_broker_that_persists_every_write_loses_nothing_when_killed(broker: BrokerServer) -> None:
    clients = Clients()
    try:
        people = await talking_room(broker.url, clients)
        await kill_mid_conversation(broker, people)
        everything = sorted(text for person in people for text in said_by(person))
        for person in people:
            await wait_for(
                lambda p=person: len(p.texts()) >= len(everything),
                timeout=RECOVERY,
                what=f"{person.name} has all",
            )
        order = people[0].texts()
        for person in people:
            assert sorted(person.texts()) == everything  # each message once, none missing
            assert person.texts() == order  # one order for everyone
            assert person.tracker.duplicates == 0 and person.tracker.missing == []
            assert person.lost_after_reset == []  # no reset: the broker came back with its data
    finally:
        await clients.stop_all()
