"""The asyncio shell around the room, on real sockets: isolation, logging, broker resets."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
from helpers import TIMEOUT, own_broker_server, quick_delays, wait_for

import wslab
from wslab.brokers import Broker, MemoryBroker
from wslab.brokers.base import QueuedSubscription, Subscription
from wslab.brokers.by_url import broker_from_url
from wslab.clients.chat import ChatClient
from wslab.core.connection_log import LogKind
from wslab.core.room_event import BrokerReset, RoomEvent
from wslab.runtime.event_log import EventLog
from wslab.servers import ChatServer


@pytest.fixture
async def started() -> AsyncIterator[list[ChatClient]]:
    clients: list[ChatClient] = []
    yield clients
    for client in clients:
        await asyncio.wait_for(client.stop(), TIMEOUT)


async def join(clients: list[ChatClient], url: str, name: str, **options: Any) -> ChatClient:
    client = ChatClient(url, name, delays=quick_delays, **options).start()
    clients.append(client)
    await wait_for(lambda: client.live, what=f"{name} is live")
    return client


async def test_one_client_failing_mid_fan_out_never_stops_the_others(started: list[ChatClient]) -> None:
    chat = ChatServer()
    server = await chat.serve(name="chat")
    ana, bob, cy = [await join(started, server.url, name) for name in ("ana", "bob", "cy")]
    bob.reconnect = False
    # bob's connection, on the server, breaks: every write to it raises from now on.
    transport = chat.room.members["bob"].connection.connection.transport

    def broken(data: bytes) -> None:
        raise RuntimeError("the network card caught fire")

    transport.write = broken  # type: ignore[method-assign]
    said = [f"message {i}" for i in range(20)]
    for text in said:
        await ana.send(text)
    await wait_for(lambda: cy.texts(author="ana") == said and ana.texts(author="ana") == said)
    assert ana.unacknowledged == []
    await wait_for(lambda: "bob" not in chat.room.users, what="bob, who cannot be written to, is dropped")


async def test_a_client_whose_network_fails_is_dropped_by_its_own_close_and_the_others_go_on(
    started: list[ChatClient],
) -> None:
    chat = ChatServer()
    server = await chat.serve(name="chat")
    ana, bob, cy = [await join(started, server.url, name) for name in ("ana", "bob", "cy")]
    bob.reconnect = False
    # bob's socket, on the server, can no longer send (EPIPE): its transport closes itself
    # on the next write, and its connection's handler ends as for any lost connection.
    transport = chat.room.members["bob"].connection.connection.transport
    transport.get_extra_info("socket").shutdown(socket.SHUT_WR)
    said = [f"message {i}" for i in range(20)]
    for text in said:
        await ana.send(text)
    await wait_for(lambda: cy.texts(author="ana") == said and ana.texts(author="ana") == said)
    await wait_for(lambda: "bob" not in chat.room.users, what="bob, whose network failed, is dropped")
    assert transport.is_closing()


async def test_the_event_log_records_every_delivery_like_every_other_send(started: list[ChatClient]) -> None:
    log = EventLog(maxlen=1000)
    chat = ChatServer()
    server = await chat.serve(name="chat", log=log)
    ana = await join(started, server.url, "ana")
    bob = await join(started, server.url, "bob")
    await ana.send("hello bob")
    await wait_for(lambda: bob.texts() == ["hello bob"] and ana.texts() == ["hello bob"])
    sent = log.texts(LogKind.SENT)
    assert any('"type":"welcome"' in text for text in sent)
    assert any('"type":"join"' in text and '"name":"bob"' in text for text in sent)  # pushed to ana
    assert any('"type":"chat"' in text and "hello bob" in text for text in sent)  # pushed to bob
    assert any('"type":"ack"' in text for text in sent)  # pushed to ana


async def test_the_event_log_records_a_fan_out_once_with_its_number_of_recipients(
    started: list[ChatClient],
) -> None:
    log = EventLog(maxlen=1000)
    chat = ChatServer()
    server = await chat.serve(name="chat", log=log)
    ana, bob, cy = [await join(started, server.url, name) for name in ("ana", "bob", "cy")]
    await ana.send("hello both")
    await wait_for(lambda: bob.texts() == cy.texts() == ana.texts() == ["hello both"])
    pushed = [e.peer for e in log if e.direction is LogKind.SENT and "hello both" in (e.text or "")]
    assert pushed == ["2 clients"]  # bob and cy: one line, not one each


class _Subscription(QueuedSubscription):
    async def close(self) -> None:
        self.end()


class ForgetfulBroker(Broker):
    """An in-process broker that can come back empty, as a Redis without persistence does,
    and whose subscriptions then say so (what the brokers branch makes Redis and NATS do)."""

    kind = "forgetful"

    def __init__(self) -> None:
        self.inner = MemoryBroker()
        self.subscriptions: list[_Subscription] = []

    async def publish(self, event: RoomEvent) -> RoomEvent:
        numbered = await self.inner.publish(event)
        for subscription in self.subscriptions:
            subscription.put(numbered)
        return numbered

    async def subscribe(self, room: str) -> Subscription:
        subscription = _Subscription()
        self.subscriptions.append(subscription)
        return subscription

    async def history_after(self, room: str, seq: int) -> list[RoomEvent]:
        return await self.inner.history_after(room, seq)

    async def last_seq(self, room: str) -> int:
        return await self.inner.last_seq(room)

    async def close(self) -> None:
        for subscription in self.subscriptions:
            subscription.end()

    def forget(self, room: str) -> None:
        self.inner = MemoryBroker()
        for subscription in self.subscriptions:
            subscription.put(BrokerReset(room, 0))  # type: ignore[arg-type]


async def two_talking(started: list[ChatClient], broker: Broker, said: int) -> tuple[ChatClient, ChatClient]:
    """ana and bob in one room on ``broker``, once bob has heard ``said`` messages from ana."""
    server = await ChatServer(broker=broker).serve(name="chat")
    ana, bob = await join(started, server.url, "ana"), await join(started, server.url, "bob")
    for i in range(said):
        await ana.send(f"before {i}")
    await wait_for(lambda: len(bob.texts()) == said)
    return ana, bob


async def test_a_broker_reset_reaches_connected_clients_who_keep_receiving(started: list[ChatClient]) -> None:
    """The room side of a reset, with an in-process broker standing in for an emptied Redis."""
    broker = ForgetfulBroker()
    ana, bob = await two_talking(started, broker, 5)
    broker.forget("lobby")  # numbering restarts, and the subscription says so
    await wait_for(lambda: any("reset" in n for n in bob.notices), what="bob heard the reset")
    after = [f"after {i}" for i in range(5)]
    for text in after:
        await ana.send(text)
    await wait_for(lambda: bob.texts()[5:] == after and ana.texts()[5:] == after)
    assert ana.unacknowledged == [] and bob.tracker.duplicates == 0 and ana.tracker.duplicates == 0


@pytest.mark.broker
@pytest.mark.parametrize("kind", ["redis", "kafka"])
async def test_a_broker_restarted_without_its_data_leaves_no_client_deaf(
    started: list[ChatClient], kind: str
) -> None:
    async with own_broker_server(kind) as server:
        broker = broker_from_url(server.url)
        try:
            ana, bob = await two_talking(started, broker, 3)
            await server.restart(keep_data=False)
            await wait_for(
                lambda: all(any("reset" in n for n in c.notices) for c in (ana, bob)),
                timeout=3 * TIMEOUT,
                what="every client heard the reset",
            )
            after = [f"after {i}" for i in range(5)]
            for text in after:
                await ana.send(text)
            await wait_for(lambda: bob.texts()[3:] == after, timeout=3 * TIMEOUT, what="every later message")
            await wait_for(lambda: ana.unacknowledged == [], what="ana's messages acknowledged")
            published = bob.texts(author="ana")
            assert len(published) == len(set(published)), "a message was published twice"
        finally:
            await wslab.stop_all()
            await broker.close()
