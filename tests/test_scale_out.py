"""Lesson 06 pinned down: chat servers in separate OS processes sharing a real broker.

Every test runs once per broker, Redis (or Valkey), NATS JetStream and Kafka (tansu). The
servers are :class:`ChatProcess` children (``python -m wslab serve chat --broker URL``) on the
session's broker servers (``redis_url``, ``nats_url``, ``kafka_url`` in ``conftest.py``); the
tests that restart their broker start a server of their own, so the session's stay untouched.
tansu stores in memory only: its restart is the one that loses the data.

The clients are :class:`ChatClient` objects in this process, reconnecting quickly. A
sender paces its messages (``PACE``) so that a crash or an outage lands mid-stream; no
sleep stands in for synchronisation.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import re
from collections.abc import AsyncIterator

import pytest
from helpers import (
    TIMEOUT,
    Clients,
    assert_complete_transcript,
    own_broker_server,
    refuses_connections,
    wait_for,
)

import wslab
from wslab.clients.chat import ChatClient
from wslab.core.room_event import EventKind, RoomEvent
from wslab.services import ChatProcess
from wslab.services.broker_servers import BrokerServer

pytestmark = pytest.mark.broker  # real Redis/NATS/Kafka processes: not in `make unit`

KINDS = ["redis", "nats", "kafka"]
#: Seconds between two messages of a steady stream: a crash or an outage lands mid-stream.
PACE = 0.02
#: How long recovery may take: reconnect backoff (clients and the servers' subscriptions).
RECOVERY = 15.0
#: How long a client whose server crashed waits before trying the next one.
AWAY = 0.2


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def broker_url(kind: str, request: pytest.FixtureRequest) -> str:
    """The session's shared broker server of this kind."""
    return request.getfixturevalue(f"{kind}_url")


@pytest.fixture
async def own_broker(kind: str) -> AsyncIterator[BrokerServer]:
    """A broker server for this test alone: restarting it disturbs no other test."""
    async with own_broker_server(kind) as server:
        yield server
        await wslab.stop_all()  # the chat processes first: they talk to this server until they exit


@pytest.fixture
async def clients() -> AsyncIterator[Clients]:
    """Chat clients that reconnect quickly; stopped before the servers are."""
    started = Clients()
    yield started
    await started.stop_all()


async def start_servers(broker_url: str, *ids: str) -> list[ChatProcess]:
    servers = [ChatProcess(broker_url, server_id=server_id) for server_id in ids]
    await asyncio.gather(*(server.start() for server in servers))
    return servers


async def has_texts(client: ChatClient, author: str, texts: list[str], timeout: float = TIMEOUT) -> None:
    """Wait until ``client`` has as many messages from ``author`` as ``texts``; they must be those, in order.

    Transcripts only grow: once long enough, they are right or never will be, so the
    comparison comes at once, with the difference in the failure.
    """
    await wait_for(
        lambda: len(client.texts(author=author)) >= len(texts),
        timeout=timeout,
        what=f"{client.name} has {author}'s {len(texts)} message(s)",
    )
    assert client.texts(author=author) == texts


async def talk(client: ChatClient, texts: list[str]) -> None:
    """Send ``texts`` one by one, ``PACE`` apart: a steady stream."""
    for text in texts:
        await client.send(text)
        await asyncio.sleep(PACE)  # paces the stream; not synchronisation


async def test_a_message_reaches_a_client_on_the_other_server_naming_its_author_s_server(
    broker_url: str, clients: Clients
) -> None:
    a, b = await start_servers(broker_url, "a", "b")
    assert a.port != b.port and a.pid != b.pid
    ana = await clients.join(a.url, "ana")
    ben = await clients.join(b.url, "ben")
    assert (ana.server, ben.server) == ("a", "b")
    await wait_for(lambda: "ben" in ana.users, what="ana saw ben join (through the broker)")

    await ana.send("hello from a")
    await ben.send("hello from b")
    await has_texts(ben, "ana", ["hello from a"])
    await has_texts(ana, "ben", ["hello from b"])

    received_by_ben = [e for e in ben.events if e.kind is EventKind.CHAT and e.name == "ana"]
    received_by_ana = [e for e in ana.events if e.kind is EventKind.CHAT and e.name == "ben"]
    assert [e.via for e in received_by_ben] == ["a"]
    assert [e.via for e in received_by_ana] == ["b"]
    # One numbering for the room, whichever server a message came through.
    assert received_by_ben[0].seq == next(e.seq for e in ana.events if e.text == "hello from a")
    assert received_by_ana[0].seq == next(e.seq for e in ben.events if e.text == "hello from b")
    for client in (ana, ben):
        assert_complete_transcript(client)
        assert client.texts() in (
            ["hello from a", "hello from b"],
            ["hello from b", "hello from a"],
        )
    assert ana.texts() == ben.texts()  # the same order everywhere


async def test_servers_share_a_room_by_its_name_and_only_that_room(broker_url: str, clients: Clients) -> None:
    physics_a, physics_b, chemistry = [
        ChatProcess(broker_url, server_id=server_id, room=room)
        for server_id, room in [("pa", "physics"), ("pb", "physics"), ("ch", "chemistry")]
    ]
    await asyncio.gather(physics_a.start(), physics_b.start(), chemistry.start())
    ana = await clients.join(physics_a.url, "ana")
    ben = await clients.join(physics_b.url, "ben")
    cy = await clients.join(chemistry.url, "cy")
    await ana.send("in physics")
    await has_texts(ben, "ana", ["in physics"])  # the same room across two servers
    await cy.send("in chemistry")
    await has_texts(cy, "cy", ["in chemistry"])  # cy's own message is numbered: it went round
    await ana.send("physics again")
    await has_texts(ben, "ana", ["in physics", "physics again"])
    # Published after cy's, ana's second message reached ben: cy's would have come first.
    assert "cy" not in ana.users and "cy" not in ben.users and ben.texts(author="cy") == []
    assert cy.texts() == ["in chemistry"] and "ana" not in cy.users


async def test_a_crashed_server_s_client_fails_over_and_resumes_with_every_message_once(
    broker_url: str, clients: Clients
) -> None:
    a, b = await start_servers(broker_url, "a", "b")
    # On a, with b as her fallback; she waits AWAY before trying the next server, so the
    # stream goes on without her for a while and b must replay what she missed.
    ana = await clients.join([a.url, b.url], "ana", delays=lambda: itertools.repeat(AWAY))
    ben = await clients.join(b.url, "ben")
    assert ana.server == "a"
    said = [f"update {i}" for i in range(30)]

    talking = asyncio.create_task(talk(ben, said))
    await wait_for(lambda: len(ana.texts(author="ben")) >= 5, what="the stream reaches ana")
    assert not talking.done()  # the crash lands mid-stream
    crashed_pid = a.pid
    assert crashed_pid is not None
    await a.crash()  # SIGKILL: no close frame, no goodbye
    await asyncio.wait_for(talking, TIMEOUT)
    await has_texts(ana, "ben", said, timeout=RECOVERY)

    assert not a.serving
    with pytest.raises(ProcessLookupError):
        os.kill(crashed_pid, 0)
    assert ana.closes == [(1006, "")]  # the connection ended without a close frame
    assert (ana.url, ana.server, ana.live) == (b.url, "b", True)
    assert ana.connects == 2
    assert any(n.startswith("server unreachable") and n.endswith(f"trying {b.url}") for n in ana.notices)
    welcomes = [re.fullmatch(r"welcome as ana \(server b, seq (\d+)\)", n) for n in ana.notices]
    rejoined_at = [int(m.group(1)) for m in welcomes if m]
    assert ana.resumed_after is not None
    assert rejoined_at and rejoined_at[0] > ana.resumed_after  # b replayed what she missed
    assert ana.tracker.missing == []
    assert ana.tracker.duplicates == 0
    assert_complete_transcript(ana)
    assert ana.texts(author="ben") == said
    assert ben.closes == []  # b never went away
    assert not ben.unacknowledged


async def three_in_a_room(broker_url: str, clients: Clients) -> tuple[ChatClient, ChatClient, ChatClient]:
    """ana on server a, ben and cleo on b (each with the other server as fallback), all in."""
    a, b = await start_servers(broker_url, "a", "b")
    ana = await clients.join([a.url, b.url], "ana")
    ben = await clients.join([b.url, a.url], "ben")
    cleo = await clients.join([b.url, a.url], "cleo")
    await wait_for(lambda: "cleo" in ana.users, what="everyone in the room")
    return ana, ben, cleo


async def test_a_broker_restart_that_keeps_its_data_loses_nothing(
    own_broker: BrokerServer, clients: Clients
) -> None:
    if not own_broker.keeps_data:
        pytest.skip(f"{own_broker.binary.name} as started here stores in memory: see the next test")
    ana, ben, cleo = await three_in_a_room(own_broker.url, clients)
    said = [f"through the outage {i}" for i in range(30)]
    starts = own_broker.starts

    talking = asyncio.create_task(talk(ben, said))
    await wait_for(lambda: len(ana.texts(author="ben")) >= 5, what="the stream reaches ana")
    assert not talking.done()  # the outage lands mid-stream
    await own_broker.restart(keep_data=True, downtime=0.3)
    assert own_broker.starts == starts + 1 and own_broker.serving
    await asyncio.wait_for(talking, TIMEOUT)

    await has_texts(ana, "ben", said, timeout=RECOVERY)
    await has_texts(cleo, "ben", said, timeout=RECOVERY)
    await wait_for(lambda: not ben.unacknowledged, timeout=RECOVERY, what="everything acknowledged")

    # While the broker was down, ben's server could not publish: it sent him away to retry.
    assert 1013 in {code for code, _ in ben.closes}
    assert ben.texts(author="ben") == said  # his own transcript, from the acks, in order
    for person in (ana, ben, cleo):
        assert person.tracker.missing == []
        assert person.tracker.duplicates == 0
        assert_complete_transcript(person)
    assert ana.texts() == ben.texts() == cleo.texts()  # one order for everyone

    await ana.send("after the outage")  # and the room works as before
    await has_texts(ben, "ana", ["after the outage"])
    await has_texts(cleo, "ana", ["after the outage"])


def epochs(client: ChatClient) -> list[list[RoomEvent]]:
    """The client's transcript cut where the numbering started again (a broker that lost the room)."""
    cut: list[list[RoomEvent]] = [[]]
    for event in client.events:
        if cut[-1] and event.seq <= cut[-1][-1].seq:
            cut.append([])
        cut[-1].append(event)
    return cut


def bens_in_the_last_epoch(client: ChatClient) -> list[str]:
    return [e.text for e in epochs(client)[-1] if e.name == "ben" and e.kind is EventKind.CHAT]


def told_of_the_reset(client: ChatClient) -> bool:
    """A reset message while connected, or a welcome that showed the numbering went back."""
    return any("numbering starts again" in n or "history restarted" in n for n in client.notices)


async def test_a_broker_restart_that_loses_its_data_tells_everyone_and_publishes_nothing_twice(
    own_broker: BrokerServer, clients: Clients
) -> None:
    """A memory-only broker dies mid-stream: what was in flight is gone and everyone is told; the
    rest reaches everyone once, in order, and the room goes on in a new numbering."""
    ana, ben, cleo = await three_in_a_room(own_broker.url, clients)
    said = [f"through the crash {i}" for i in range(30)]

    talking = asyncio.create_task(talk(ben, said))
    await wait_for(lambda: len(ana.texts(author="ben")) >= 5, what="the stream reaches ana")
    assert not talking.done()  # the crash lands mid-stream
    await own_broker.restart(keep_data=False, downtime=0.3)
    await asyncio.wait_for(talking, TIMEOUT)
    await wait_for(lambda: not ben.unacknowledged, timeout=RECOVERY, what="everything ben said answered")
    people = (ana, ben, cleo)
    await wait_for(lambda: all(told_of_the_reset(p) for p in people), timeout=RECOVERY, what="all told")

    # ben knows the fate of every message: numbered (in his transcript) or gone with the broker.
    gone = [text for text in said if f"{text!r} was published before the room's reset" in ben.notices]
    assert sorted(ben.texts(author="ben") + gone, key=said.index) == said
    numbered_after = bens_in_the_last_epoch(ben)
    for person in (ana, cleo):
        await wait_for(
            lambda p=person: len(bens_in_the_last_epoch(p)) >= len(numbered_after),
            timeout=RECOVERY,
            what=f"{person.name} has what ben said after the reset",
        )
        assert bens_in_the_last_epoch(person) == numbered_after  # one order for everyone after it
        heard = person.texts(author="ben")
        assert len(heard) == len(set(heard)), "published twice"
        assert heard == sorted(heard, key=said.index)  # in the order he said them
    for person in people:
        assert person.tracker.duplicates == 0
        for epoch in epochs(person):  # within each numbering: consecutive, nothing missing
            seqs = [e.seq for e in epoch]
            assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), seqs

    await ana.send("after the crash")  # and the room works as before
    await has_texts(ben, "ana", ["after the crash"])
    await has_texts(cleo, "ana", ["after the crash"])


async def test_stop_all_leaves_no_chat_process_and_no_listening_port(
    broker_url: str, clients: Clients
) -> None:
    servers = await start_servers(broker_url, "a", "b")
    ana = await clients.join(servers[0].url, "ana", reconnect=False)
    ben = await clients.join(servers[1].url, "ben", reconnect=False)
    await wait_for(lambda: "ben" in ana.users, what="the room is up")
    pids = [server.pid for server in servers]
    ports = [server.port for server in servers]
    assert all(pid is not None for pid in pids)
    assert set(wslab.running()) == set(servers)

    assert await wslab.stop_all() == 2

    assert wslab.running() == []
    for server, pid, port in zip(servers, pids, ports, strict=True):
        assert not server.serving
        assert server.pid is None
        assert pid is not None
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
        assert await refuses_connections(port)
    # SIGTERM is a clean shutdown: each server closed its clients' connections with 1001.
    await wait_for(lambda: ana.closes and ben.closes, what="both clients saw their server close")
    assert ana.closes == ben.closes == [(1001, "server shutting down")]


async def test_without_a_broker_the_servers_share_an_in_process_one() -> None:
    """The lesson's fallback: servers in this process, one in-process broker, failover still whole."""
    from wslab.servers import start_chat_servers
    from wslab.servers.chat_cluster import InProcessChat

    servers = await start_chat_servers(["s1", "s2"], None)
    assert all(isinstance(server, InProcessChat) for server in servers)
    ana = ChatClient([servers[0].url, servers[1].url], "ana").start()
    await wait_for(lambda: ana.live)
    ben = ChatClient([servers[1].url, servers[0].url], "ben").start()
    await wait_for(lambda: ben.live)
    sent = [f"fallback {i}" for i in range(20)]
    try:
        for text in sent[:5]:
            await ben.send(text)
        await wait_for(lambda: ana.texts(author="ben") == sent[:5])
        await servers[0].crash()
        for text in sent[5:]:
            await ben.send(text)
        await wait_for(lambda: ana.texts(author="ben") == sent, timeout=3 * TIMEOUT)
        assert ana.closes[-1][0] == 1006
        assert ana.url == servers[1].url
        assert ana.tracker.missing == [] and ana.tracker.duplicates == 0
    finally:
        await ana.stop()
        await ben.stop()
