"""Big rooms on real sockets: coalesced presence across servers sharing a broker, ``who`` on
request, and new connections accepted while the server fans out a burst."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from helpers import TIMEOUT, wait_for, wait_while_progressing
from websockets.asyncio.client import ClientConnection, connect

from wslab.brokers import Broker, MemoryBroker
from wslab.brokers.redis import RedisBroker
from wslab.clients.chat import ChatClient
from wslab.core.presence import PresencePolicy
from wslab.core.room_event import EventKind, RoomEvent
from wslab.servers import ChatServer
from wslab.servers import chat as chat_module

#: Small enough that a handful of clients make a big room; short enough to wait for.
POLICY = PresencePolicy(exact_up_to=2, tick=0.05)
_prefixes = itertools.count()


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.broker)])
async def shared_brokers(request: pytest.FixtureRequest) -> AsyncIterator[tuple[Broker, Broker]]:
    """Two servers' brokers: one in-process broker shared, or two clients of one real Redis."""
    if request.param == "memory":
        broker = MemoryBroker()
        yield broker, broker
        return
    url = request.getfixturevalue("redis_url")
    prefix = f"bigroom-{next(_prefixes)}"
    brokers = RedisBroker(url, key_prefix=prefix), RedisBroker(url, key_prefix=prefix)
    yield brokers
    for broker in brokers:
        await broker.close()


@pytest.fixture
async def clients() -> AsyncIterator[list[ChatClient]]:
    started: list[ChatClient] = []
    yield started
    await asyncio.gather(*(asyncio.wait_for(client.stop(), TIMEOUT) for client in started))


async def join(clients: list[ChatClient], url: str, name: str) -> ChatClient:
    client = ChatClient(url, name).start()
    clients.append(client)
    await wait_for(lambda: client.live, what=f"{name} is live")
    return client


async def test_a_big_room_across_two_servers_announces_by_ticks_and_names_on_request(
    shared_brokers: tuple[Broker, Broker], clients: list[ChatClient]
) -> None:
    a = ChatServer(broker=shared_brokers[0], server_id="A", presence=POLICY)
    b = ChatServer(broker=shared_brokers[1], server_id="B", presence=POLICY)
    url_a, url_b = (await a.serve(name="big-a")).url, (await b.serve(name="big-b")).url
    bea = await join(clients, url_b, "bea")
    ana = await join(clients, url_a, "ana")  # two people: still exact
    await wait_for(lambda: ">>> ana joined the chat" in bea.lines(), what="bea hears ana, by name")
    arrivals = [f"p{i}" for i in range(6)]
    await asyncio.gather(*(join(clients, url_a, name) for name in arrivals))

    def coalesced() -> list[RoomEvent]:
        return [e for e in bea.events if e.kind is EventKind.JOIN and e.coalesced]

    # A tick's event carries the room's total at that tick, so bea may count 8 before the last
    # tick's names reach her: wait for the names, then check each arrival came once.
    await wait_for(
        lambda: sum(e.count for e in coalesced()) >= 6, what="bea hears every arrival from A's ticks"
    )
    assert sum(e.count for e in coalesced()) == 6  # each arrival once, in one event per tick
    assert bea.session.count == 8
    assert all(line.endswith(" here)") for line in bea.lines()[-len(coalesced()) :])
    assert len(bea.users) < 8  # a big room sends counts; names come on request
    await bea.who()
    await wait_for(lambda: len(bea.users) == 8, what="bea's who is answered")
    assert sorted(bea.users) == sorted(["bea", "ana", *arrivals])
    assert sorted(b.room.everyone) == sorted(a.room.everyone) == sorted(bea.users)
    # Chat goes on with exact numbering: everyone sees ana's message at the same seq, once.
    await ana.send("hello, big room")
    await wait_for(lambda: bea.texts(author="ana") == ["hello, big room"], what="bea gets ana's message")
    [said] = [e for e in bea.events if e.kind is EventKind.CHAT]
    assert said.seq == ana.tracker.last and not [n for n in bea.notices if n.startswith("gap")]
    await asyncio.gather(*(client.stop() for client in clients if client.name in arrivals[:4]))
    await wait_for(lambda: bea.session.count == 4, what="bea counts the coalesced leaves")
    assert sorted(b.room.everyone) == sorted(["bea", "ana", "p4", "p5"])


async def _live(url: str, name: str) -> ClientConnection:
    connection = await connect(url, compression=None, max_size=None)
    await connection.send(json.dumps({"type": "hello", "name": name}))
    async for message in connection:
        if json.loads(message)["type"] == "live":
            return connection
    raise AssertionError(f"{name} never went live")


async def _seq_when_a_newcomer_is_in(chat: ChatServer, url: str, burst: int) -> tuple[int, int, int]:
    """Publish ``burst`` events at once, then connect a newcomer: ``(events of the burst fanned
    out when its handshake completed, when it was live, in all)``."""
    done = [0]
    stop_counting = chat.subscribe(lambda event: done.__setitem__(0, done[0] + (event.name == "bot")))
    for i in range(burst):  # queued at once: the in-process broker never waits
        await chat.broker.publish(chat.room.event(EventKind.CHAT, "bot", f"burst {i}"))
    # Without yielding (the test's second run), the handshake waits for the whole burst.
    newcomer = await connect(url, compression=None, open_timeout=6 * TIMEOUT)
    at_handshake = done[0]
    await newcomer.send(json.dumps({"type": "hello", "name": f"new{chat.room.last_seq}"}))
    async for message in newcomer:
        if json.loads(message)["type"] == "live":
            break
    at_live = done[0]
    # Tens of thousands of writes: seconds of CPU on a busy machine. It must keep moving.
    await wait_while_progressing(lambda: done[0] == burst, lambda: done[0], what="the burst is fanned out")
    stop_counting()
    newcomer.transport.abort()
    return at_handshake, at_live, burst


async def test_new_connections_are_accepted_while_a_big_burst_is_fanned_out(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    chat = ChatServer()
    url = (await chat.serve(name="burst", compression=None)).url
    receivers: list[Any] = []
    for first in range(0, 300, 100):
        receivers += await asyncio.gather(*(_live(url, f"r{i}") for i in range(first, first + 100)))
    burst = 200  # 200 events x 300 receivers: 60,000 writes
    handshake, live, total = await _seq_when_a_newcomer_is_in(chat, url, burst)
    # The newcomer was in while most of the burst was still to go out.
    assert handshake <= live < total // 2, (handshake, live, total)
    # Without yielding, the same burst holds the handshake up until its very end: this
    # test would see it.
    monkeypatch.setattr(chat_module, "PUSHES_PER_TURN", 10**9)
    handshake, live, total = await _seq_when_a_newcomer_is_in(chat, url, burst)
    assert handshake == total, (handshake, live, total)
    for receiver in receivers:
        receiver.transport.abort()
