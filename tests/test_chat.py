"""The chat server, its clients and its broker, over real sockets: the suite every broker must pass.

The ``broker`` fixture decides which broker carries the room; every test here runs once
per kind: the in-process broker, and real Redis (or Valkey), NATS JetStream and
Kafka-protocol (tansu) servers, started once per test session (``redis_url``, ``nats_url``,
``kafka_url`` in ``conftest.py``). Each test gets its own key prefix there, so no test sees
another's rooms. A test that needs another history size parametrizes ``history``, which
overrides the fixture.

So no test here constructs a broker: everything goes through ``broker``.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from helpers import (
    MS,
    TIMEOUT,
    Clients,
    assert_complete_transcript,
    backlogs,
    close_code,
    wait_for,
    wait_while_progressing,
)
from websockets.asyncio.client import ClientConnection, connect

import wslab
from wslab.brokers import Broker, MemoryBroker
from wslab.brokers.kafka import KafkaBroker
from wslab.brokers.nats import NatsBroker
from wslab.brokers.redis import RedisBroker
from wslab.clients.chat import ChatClient
from wslab.core.actions import OverflowPolicy
from wslab.core.history import HistoryTooOld
from wslab.core.room_event import EventKind, RoomEvent
from wslab.runtime.handles import ServerHandle
from wslab.servers import ChatServer

# --- the broker under test, and helpers -----------------------------------------------


@pytest.fixture
def history() -> int:
    """Events a broker keeps per room; a test that needs another size parametrizes ``history``."""
    return 1000


@pytest.fixture(params=["memory", "redis", "nats", "kafka"])
async def broker(request: pytest.FixtureRequest, history: int) -> AsyncIterator[Broker]:
    """A fresh, empty broker of each kind; closed after the test, once its servers have stopped."""
    prefix = f"t{uuid.uuid4().hex[:12]}"  # a fresh namespace on the shared server: empty rooms
    match request.param:
        case "memory":
            instance: Broker = MemoryBroker(history=history)
        case "redis":
            instance = RedisBroker(request.getfixturevalue("redis_url"), history=history, key_prefix=prefix)
        case "nats":
            instance = NatsBroker(request.getfixturevalue("nats_url"), history=history, prefix=prefix)
        case "kafka":
            instance = KafkaBroker(request.getfixturevalue("kafka_url"), history=history, prefix=prefix)
        case kind:
            raise ValueError(f"unknown broker kind {kind!r}")
    yield instance
    await wslab.stop_all()  # the servers' handlers still publish (leaves) while they stop
    await instance.close()


async def recv(ws: ClientConnection) -> str | bytes:
    return await asyncio.wait_for(ws.recv(), TIMEOUT)


async def recv_json(ws: ClientConnection) -> dict[str, Any]:
    message = await recv(ws)
    assert isinstance(message, str), message
    return json.loads(message)


async def join_plain(url: str, name: str) -> ClientConnection:
    """Connect in the plain dialect and read the welcome and one's own join line."""
    ws = await connect(url)
    await ws.send(name)
    assert await recv(ws) == f"Welcome, {name}!"
    assert await recv(ws) == f">>> {name} joined the chat"
    return ws


async def join_json(url: str, name: str, resume: int | None = None) -> tuple[ClientConnection, dict]:
    """Connect in the json dialect; returns the connection, having read the welcome, and the welcome."""
    ws = await connect(url)
    hello: dict[str, Any] = {"type": "hello", "name": name}
    if resume is not None:
        hello["resume"] = resume
    await ws.send(json.dumps(hello))
    welcome = await recv_json(ws)
    assert welcome["type"] == "welcome", welcome
    return ws, welcome


async def read_until(ws: ClientConnection, message_type: str) -> list[dict[str, Any]]:
    """Read json messages up to and including the first of ``message_type``."""
    messages = [await recv_json(ws)]
    while messages[-1]["type"] != message_type:
        messages.append(await recv_json(ws))
    return messages


def server_backlogs(chat: ChatServer) -> list[int]:
    """Bytes waiting in each connected client's send buffer."""
    return list(backlogs(chat).values())


@pytest.fixture
async def clients(broker: Broker) -> AsyncIterator[Clients]:
    """Depends on ``broker`` so that clients stop before the servers and the broker do."""
    started = Clients()
    yield started
    await started.stop_all()


@pytest.fixture
async def chat(broker: Broker) -> ChatServer:
    return ChatServer(broker=broker)


@pytest.fixture
async def url(chat: ChatServer) -> str:
    return (await chat.serve(name="chat")).url


# --- the broker contract ----------------------------------------------------------------


def event(text: str = "hi", room: str = "lobby", name: str = "alice") -> RoomEvent:
    return RoomEvent(EventKind.CHAT, name, text, room=room, via="test")


async def next_event(subscription: Any) -> RoomEvent:
    return await asyncio.wait_for(anext(subscription), TIMEOUT)


async def test_broker_publish_numbers_each_room_from_one(broker: Broker) -> None:
    assert await broker.last_seq("lobby") == 0
    numbered = [await broker.publish(event(f"m{i}")) for i in range(3)]

    assert [e.seq for e in numbered] == [1, 2, 3]
    assert [e.text for e in numbered] == ["m0", "m1", "m2"]
    assert all(e.name == "alice" and e.via == "test" and e.room == "lobby" for e in numbered)
    assert (await broker.publish(event(room="other"))).seq == 1  # rooms count separately
    assert await broker.last_seq("lobby") == 3
    assert await broker.last_seq("other") == 1


async def test_broker_subscribers_get_events_in_order(broker: Broker) -> None:
    early = await broker.publish(event("before anyone listened"))
    first = await broker.subscribe("lobby")
    second = await broker.subscribe("lobby")
    elsewhere = await broker.subscribe("other")
    for i in range(5):
        await broker.publish(event(f"m{i}"))
    await broker.publish(event("for the other room", room="other"))

    for subscription in (first, second):
        received = [await next_event(subscription) for _ in range(5)]
        assert [e.seq for e in received] == [early.seq + 1 + i for i in range(5)]
        assert [e.text for e in received] == [f"m{i}" for i in range(5)]
    assert (await next_event(elsewhere)).text == "for the other room"
    for subscription in (first, second, elsewhere):
        await subscription.close()


async def test_broker_history_after(broker: Broker) -> None:
    assert await broker.history_after("lobby", 0) == []
    for i in range(5):
        await broker.publish(event(f"m{i}"))

    assert [e.seq for e in await broker.history_after("lobby", 0)] == [1, 2, 3, 4, 5]
    assert [e.text for e in await broker.history_after("lobby", 3)] == ["m3", "m4"]
    assert await broker.history_after("lobby", 5) == []
    assert await broker.history_after("other", 0) == []


@pytest.mark.parametrize("history", [3])
async def test_broker_history_is_bounded(broker: Broker) -> None:
    for i in range(10):
        await broker.publish(event(f"m{i}"))

    assert [e.seq for e in await broker.history_after("lobby", 7)] == [8, 9, 10]
    with pytest.raises(HistoryTooOld) as info:
        await broker.history_after("lobby", 2)
    assert (info.value.wanted_after, info.value.oldest) == (2, 8)
    assert await broker.last_seq("lobby") == 10


async def test_broker_subscription_ends_after_close(broker: Broker) -> None:
    subscription = await broker.subscribe("lobby")
    await broker.publish(event("one"))
    assert (await next_event(subscription)).text == "one"

    await subscription.close()
    await broker.publish(event("after close"))
    with pytest.raises(StopAsyncIteration):
        await next_event(subscription)
    with pytest.raises(StopAsyncIteration):  # and stays ended
        await next_event(subscription)


async def test_broker_close_ends_every_subscription(broker: Broker) -> None:
    subscriptions = [await broker.subscribe("lobby"), await broker.subscribe("other")]

    async def drain(subscription: Any) -> list[RoomEvent]:
        return [e async for e in subscription]

    readers = [asyncio.create_task(drain(s)) for s in subscriptions]
    await broker.publish(event("last words"))
    await broker.close()

    results = await asyncio.wait_for(asyncio.gather(*readers), TIMEOUT)
    assert [[e.text for e in events] for events in results] == [["last words"], []]


# --- the plain dialect: the original tutorial's protocol ----------------------------------


async def test_plain_first_message_is_the_username(url: str, chat: ChatServer) -> None:
    async with connect(url) as ws:
        await ws.send("alice")
        assert await recv(ws) == "Welcome, alice!"
        assert await recv(ws) == ">>> alice joined the chat"  # the joiner hears it too
        assert chat.room.users == ["alice"]


async def test_plain_join_is_announced_to_everyone(url: str, chat: ChatServer) -> None:
    async with await join_plain(url, "alice") as alice, await join_plain(url, "bob") as bob:
        assert await recv(alice) == ">>> bob joined the chat"
        async with await join_plain(url, "carol"):
            assert await recv(alice) == ">>> carol joined the chat"
            assert await recv(bob) == ">>> carol joined the chat"
            assert chat.room.users == ["alice", "bob", "carol"]


async def test_plain_messages_go_to_everyone_else_never_back_to_the_sender(url: str) -> None:
    async with await join_plain(url, "alice") as alice, await join_plain(url, "bob") as bob:
        assert await recv(alice) == ">>> bob joined the chat"
        async with await join_plain(url, "carol") as carol:
            for ws in (alice, bob):
                assert await recv(ws) == ">>> carol joined the chat"

            await alice.send("hello everyone")
            assert await recv(bob) == "[alice] hello everyone"
            assert await recv(carol) == "[alice] hello everyone"

            # Had alice got her own line back, it would come before bob's.
            await bob.send("hi alice")
            assert await recv(alice) == "[bob] hi alice"
            assert await recv(carol) == "[bob] hi alice"
            await carol.send("and me")
            assert await recv(alice) == "[carol] and me"
            assert await recv(bob) == "[carol] and me"


async def test_plain_messages_are_stripped_and_empty_ones_ignored(url: str, chat: ChatServer) -> None:
    async with await join_plain(url, "alice") as alice, await join_plain(url, "bob") as bob:
        assert await recv(alice) == ">>> bob joined the chat"
        for nothing in ("", "   ", "\n\t "):
            await alice.send(nothing)
        await alice.send("  something  ")
        assert await recv(bob) == "[alice] something"
        await bob.send("ok")
        assert await recv(alice) == "[bob] ok"
    assert chat.room.stats.published == 2


async def test_plain_leave_is_announced_and_the_user_forgotten(url: str, chat: ChatServer) -> None:
    async with await join_plain(url, "alice") as alice:
        async with await join_plain(url, "bob"):
            assert await recv(alice) == ">>> bob joined the chat"
            assert chat.room.users == ["alice", "bob"]
        assert await recv(alice) == ">>> bob left the chat"
        assert chat.room.users == ["alice"]
        # The name is free again.
        async with await join_plain(url, "bob"):
            assert await recv(alice) == ">>> bob joined the chat"
    await wait_for(lambda: chat.room.users == [], what="everyone gone")


async def test_an_abrupt_drop_is_a_leave(url: str, chat: ChatServer) -> None:
    async with await join_plain(url, "alice") as alice:
        bob = await join_plain(url, "bob")
        assert await recv(alice) == ">>> bob joined the chat"

        bob.transport.abort()  # TCP reset: no close frame, no goodbye

        assert await recv(alice) == ">>> bob left the chat"
        assert chat.room.users == ["alice"]
        await alice.send("still fine")  # alice's connection is unaffected
        # Fanned out here before bob is back: a newcomer is sent what the room had not fanned out yet.
        await wait_for(
            lambda: "still fine" in [e.text for e in chat.room.transcript], what="'still fine' fanned out"
        )
        async with await join_plain(url, "bob") as bob_again:
            assert await recv(alice) == ">>> bob joined the chat"
            await alice.send("welcome back")
            assert await recv(bob_again) == "[alice] welcome back"


async def test_plain_binary_message_gets_an_error_and_the_connection_stays(url: str) -> None:
    async with await join_plain(url, "alice") as alice, await join_plain(url, "bob") as bob:
        assert await recv(alice) == ">>> bob joined the chat"
        await alice.send(b"\x00\x01")
        reply = await recv(alice)
        assert isinstance(reply, str)
        assert reply.startswith("error: binary messages")
        await alice.send("text is fine")
        assert await recv(bob) == "[alice] text is fine"


async def test_serving_the_same_chat_again_restarts_it_and_it_keeps_delivering(chat: ChatServer) -> None:
    first = await chat.serve(name="chat")
    async with connect(first.url) as old:
        second = await chat.serve(name="chat")  # a notebook cell run again
        assert await close_code(old) == 1012
    assert not first.serving
    async with await join_plain(second.url, "alice") as alice, await join_plain(second.url, "bob") as bob:
        assert await recv(alice) == ">>> bob joined the chat"
        await alice.send("still delivering")
        assert await recv(bob) == "[alice] still delivering"
    third = await chat.serve(name="other", port=second.port)  # same port, another name

    # Their leaves fanned out first: a newcomer is sent what the room had not fanned out yet.
    def left() -> set[str]:
        return {e.name for e in chat.room.transcript if e.kind is EventKind.LEAVE}

    await wait_for(lambda: left() == {"alice", "bob"}, what="alice's and bob's leaves fanned out")
    async with await join_plain(third.url, "carol"):
        pass


async def test_one_chat_on_two_servers_keeps_delivering_when_one_stops(chat: ChatServer) -> None:
    one = await chat.serve(name="one")
    two = await chat.serve(name="two")
    async with await join_plain(one.url, "alice") as alice, await join_plain(two.url, "bob") as bob:
        assert await recv(alice) == ">>> bob joined the chat"
        await one.stop()
        assert await close_code(alice) == 1001
        assert await recv(bob) == ">>> alice left the chat"
        async with await join_plain(two.url, "carol") as carol:
            assert await recv(bob) == ">>> carol joined the chat"
            await carol.send("hi bob")
            assert await recv(bob) == "[carol] hi bob"


# --- usernames the server refuses -----------------------------------------------------------

REFUSED = [
    pytest.param("", "a username cannot be empty", id="empty"),
    pytest.param("   ", "a username cannot be empty", id="blank"),
    pytest.param("x" * 33, "a username has at most 32 characters", id="33-chars"),
    pytest.param("bad\nname", "a username cannot contain control characters", id="newline"),
    pytest.param("bad\x00name", "a username cannot contain control characters", id="nul"),
    pytest.param("zero\u200bwidth", "a username cannot contain control characters", id="zero-width"),
    pytest.param("alice", "the username 'alice' is already taken", id="taken"),
    pytest.param(" ALICE ", "the username 'ALICE' is already taken", id="taken-other-case"),
    pytest.param("system", "'system' is reserved for the server", id="reserved"),
    pytest.param("Server", "'Server' is reserved for the server", id="reserved-other-case"),
]


@pytest.mark.parametrize(("name", "reason"), REFUSED)
async def test_a_refused_plain_name_gets_an_error_then_1008(
    url: str, chat: ChatServer, name: str, reason: str
) -> None:
    async with await join_plain(url, "alice") as alice, await join_plain(url, "bob") as bob:
        assert await recv(alice) == ">>> bob joined the chat"

        async with connect(url) as refused:
            await refused.send(name)
            assert await recv(refused) == f"error: {reason}"
            assert await close_code(refused) == 1008  # policy violation
            assert refused.close_reason == reason

        assert chat.room.stats.rejected == 1
        assert chat.room.users == ["alice", "bob"]
        # The others are unaffected, and heard of no join nor leave.
        await alice.send("still here")
        assert await recv(bob) == "[alice] still here"
        await bob.send("me too")
        assert await recv(alice) == "[bob] me too"


@pytest.mark.parametrize(
    ("name", "code"), [("", "name-empty"), ("x" * 33, "name-too-long"), ("a\x00b", "name-invalid")]
)
async def test_a_refused_json_name_gets_an_error_message_then_1008(url: str, name: str, code: str) -> None:
    async with connect(url) as ws:
        await ws.send(json.dumps({"type": "hello", "name": name}))
        error = await recv_json(ws)
        assert error["type"] == "error"
        assert error["code"] == code
        assert await close_code(ws) == 1008
        assert ws.close_reason == error["text"]


async def test_json_name_taken_and_reserved(url: str) -> None:
    async with await join_plain(url, "Alice"):
        for name, code in [("alice", "name-taken"), ("SYSTEM", "name-reserved")]:
            async with connect(url) as ws:
                await ws.send(json.dumps({"type": "hello", "name": name}))
                assert (await recv_json(ws))["code"] == code
                assert await close_code(ws) == 1008


@pytest.mark.parametrize(
    ("first", "expected"),
    [
        ('{"type": "hello", "name": ', "bad-hello"),
        ('{"type": "join", "name": "alice"}', "bad-hello"),
        ('{"type": "hello", "name": "alice", "resume": -1}', "bad-hello"),
    ],
)
async def test_a_bad_json_hello_gets_an_error_then_1008(url: str, first: str, expected: str) -> None:
    async with connect(url) as ws:
        await ws.send(first)
        error = await recv_json(ws)
        assert (error["type"], error["code"]) == ("error", expected)
        assert await close_code(ws) == 1008


async def test_a_binary_first_message_gets_an_error_then_1008(url: str) -> None:
    async with connect(url) as ws:
        await ws.send(b"alice")
        assert await recv(ws) == "error: the first message must be text: your username"
        assert await close_code(ws) == 1008


async def test_a_silent_connection_is_closed_after_the_hello_timeout(broker: Broker) -> None:
    chat = ChatServer(broker=broker, hello_timeout=50 * MS)
    handle = await chat.serve(name="chat")
    async with connect(handle.url) as ws:
        assert await close_code(ws) == 1008
        assert ws.close_reason == "send your username first"
    assert chat.room.users == []


# --- the json dialect -------------------------------------------------------------------------


async def test_json_welcome_has_seq_and_users(url: str) -> None:
    async with await join_plain(url, "alice") as alice:
        ws, welcome = await join_json(url, "bob")
        async with ws:
            assert welcome == {
                "type": "welcome",
                "name": "bob",
                "seq": 1,
                "users": ["alice", "bob"],
                "server": "chat",
            }
            assert await recv_json(ws) == {"type": "live", "seq": 1}
            joined = await recv_json(ws)
            assert joined == {"type": "join", "seq": 2, "name": "bob", "text": "", "via": "chat"}
            assert await recv(alice) == ">>> bob joined the chat"


async def test_json_own_messages_come_back_as_acks(url: str) -> None:
    alice, _ = await join_json(url, "alice")
    # alice's own join: read before bob arrives, so it is numbered before bob's welcome
    # (a broker in another process numbers it a moment after alice's welcome).
    await read_until(alice, "join")
    bob, _ = await join_json(url, "bob")
    async with alice, bob:
        await read_until(alice, "join")  # bob's
        await read_until(bob, "join")

        await alice.send(json.dumps({"type": "chat", "text": "hi bob", "ref": "a-1"}))
        assert await recv_json(alice) == {"type": "ack", "seq": 3, "ref": "a-1"}
        message = await recv_json(bob)
        assert {k: message[k] for k in ("type", "name", "text", "seq")} == {
            "type": "chat",
            "name": "alice",
            "text": "hi bob",
            "seq": 3,
        }

        await alice.send(json.dumps({"type": "chat", "text": "no ref"}))
        assert await recv_json(alice) == {"type": "ack", "seq": 4, "ref": ""}
        assert (await recv_json(bob))["text"] == "no ref"


async def test_json_every_event_has_an_increasing_seq(url: str) -> None:
    seen: dict[str, list[int]] = {"alice": [], "bob": []}

    async def expect(ws: ClientConnection, who: str, message_type: str) -> None:
        message = await recv_json(ws)
        assert message["type"] == message_type, message
        seen[who].append(message["seq"])

    alice, _ = await join_json(url, "alice")
    await expect(alice, "alice", "live")
    await expect(alice, "alice", "join")  # numbered before bob arrives, whatever the broker
    bob, _ = await join_json(url, "bob")
    async with alice:
        async with bob:
            await expect(bob, "bob", "live")
            await expect(alice, "alice", "join")
            await expect(bob, "bob", "join")
            for i in range(3):
                await alice.send(json.dumps({"type": "chat", "text": f"a{i}"}))
                await expect(alice, "alice", "ack")
                await expect(bob, "bob", "chat")
                await bob.send(json.dumps({"type": "chat", "text": f"b{i}"}))
                await expect(bob, "bob", "ack")
                await expect(alice, "alice", "chat")
        await expect(alice, "alice", "leave")

    # live repeats the welcome's seq; every event after it has the next number.
    assert seen["alice"] == [0, *range(1, 10)]
    assert seen["bob"] == [1, *range(2, 9)]


@pytest.mark.parametrize(
    "bad",
    [
        "not json",
        '{"type": "chat", "text": ',
        b"\x00\x01\x02",
        '{"type": "hello", "name": "alice"}',
        '{"type": "chat", "text": 42}',
        '["chat", "hi"]',
        json.dumps({"type": "chat", "text": "x" * 4001}),
    ],
    ids=["text", "truncated", "binary", "wrong-type", "text-not-string", "array", "too-long"],
)
async def test_json_malformed_messages_get_an_error_and_the_connection_stays(
    url: str, chat: ChatServer, bad: str | bytes
) -> None:
    ws, _ = await join_json(url, "alice")
    async with ws:
        await read_until(ws, "join")
        await ws.send(bad)
        error = await recv_json(ws)
        assert error["type"] == "error"
        assert error["code"] == "bad-message"
        assert error["text"]

        await ws.send(json.dumps({"type": "chat", "text": "still here", "ref": "r"}))
        assert await recv_json(ws) == {"type": "ack", "seq": 2, "ref": "r"}
        assert chat.room.users == ["alice"]


async def test_json_and_plain_clients_share_a_room(url: str) -> None:
    async with await join_plain(url, "alice") as alice:
        ws, _ = await join_json(url, "bob")
        async with ws:
            await read_until(ws, "join")
            assert await recv(alice) == ">>> bob joined the chat"

            await ws.send(json.dumps({"type": "chat", "text": "from json"}))
            assert await recv(alice) == "[bob] from json"
            await alice.send("from plain")
            assert (await read_until(ws, "chat"))[-1]["text"] == "from plain"


# --- ChatClient -----------------------------------------------------------------------------


async def test_two_chat_clients_exchange_messages(url: str, chat: ChatServer, clients: Clients) -> None:
    alice = await clients.join(url, "alice")
    # Her join is published once she is live: on a broker that delivers later (Kafka's fetch wait),
    # bob could otherwise be welcomed before it, and see it after his own.
    await wait_for(lambda: alice.lines() == [">>> alice joined the chat"], what="alice's join delivered")
    bob = await clients.join(url, "bob")
    await wait_for(lambda: alice.users == ["alice", "bob"], what="alice sees bob")

    await alice.send("hi bob")
    await wait_for(lambda: bob.texts(author="alice") == ["hi bob"], what="bob has alice's message")
    await bob.send("hi alice")
    await wait_for(lambda: alice.texts(author="bob") == ["hi alice"], what="alice has bob's message")
    await wait_for(lambda: not bob.unacknowledged, what="bob's message acknowledged")

    assert alice.lines() == [
        ">>> alice joined the chat",
        ">>> bob joined the chat",
        "[alice] hi bob",
        "[bob] hi alice",
    ]
    assert bob.lines() == [">>> bob joined the chat", "[alice] hi bob", "[bob] hi alice"]
    for client in (alice, bob):
        assert_complete_transcript(client)
        assert client.unacknowledged == []
        assert client.connects == 1
    assert bob.users == ["alice", "bob"]

    await bob.stop()
    await wait_for(lambda: alice.users == ["alice"], what="alice sees bob leave")
    assert alice.lines()[-1] == ">>> bob left the chat"
    assert bob.closes == [(1000, "")]
    assert chat.room.users == ["alice"]


async def test_chat_client_keeps_its_transcript_in_order(url: str, clients: Clients) -> None:
    alice = await clients.join(url, "alice")
    bob = await clients.join(url, "bob")
    sent = []
    for i in range(50):
        sender = (alice, bob)[i % 2]
        sent.append((sender.name, f"message {i}"))
        await sender.send(f"message {i}")
    await wait_for(lambda: len(alice.texts()) == 50 and len(bob.texts()) == 50, what="all 50 everywhere")

    # Both sends interleave, so the room's order is the broker's, the same for both.
    for client in (alice, bob):
        transcript = [(e.name, e.text) for e in client.events if e.kind is EventKind.CHAT]
        assert sorted(transcript, key=lambda m: int(m[1].split()[1])) == sent
        assert_complete_transcript(client)
    alice_order = [(e.seq, e.text) for e in alice.events if e.kind is EventKind.CHAT]
    bob_order = [(e.seq, e.text) for e in bob.events if e.kind is EventKind.CHAT]
    assert alice_order == bob_order
    # Each sender's own messages keep the order it sent them in.
    assert alice.texts(author="alice") == [f"message {i}" for i in range(0, 50, 2)]
    assert alice.texts(author="bob") == [f"message {i}" for i in range(1, 50, 2)]


async def test_chat_client_with_a_refused_name_stops_without_retrying(url: str, clients: Clients) -> None:
    await clients.join(url, "alice")
    refused = clients.start(url, "ALICE")
    await asyncio.wait_for(refused.wait(), TIMEOUT)

    assert refused.rejected == "the username 'ALICE' is already taken"
    assert refused.closes == [(1008, "the username 'ALICE' is already taken")]
    assert refused.connects == 0
    assert not refused.live


async def test_chat_client_gives_up_when_the_first_connection_fails(
    chat: ChatServer, clients: Clients
) -> None:
    handle = await chat.serve(name="chat")
    port = handle.port
    await handle.stop()
    client = clients.start(f"ws://127.0.0.1:{port}/", "alice")
    with pytest.raises(OSError):
        await asyncio.wait_for(client.wait(), TIMEOUT)
    assert client.connects == 0


# --- resuming: nothing lost, nothing twice ----------------------------------------------------------


async def two_servers(broker: Broker) -> tuple[ChatServer, ServerHandle, ChatServer, ServerHandle]:
    """Servers ``a`` and ``b`` on one broker: stopping ``a`` leaves ``b``'s clients talking."""
    chat_a = ChatServer(broker=broker, server_id="a")
    chat_b = ChatServer(broker=broker, server_id="b")
    return chat_a, await chat_a.serve(name="a"), chat_b, await chat_b.serve(name="b")


async def restart(chat: ChatServer, old: ServerHandle) -> ServerHandle:
    """Serve ``chat`` again under the same name and port: its clients come back to the same URL."""
    handle = await chat.serve(name=old.name, port=old.port)
    assert handle.url == old.url
    return handle


async def test_resume_after_a_server_restart_delivers_everything_once_in_order(
    broker: Broker, clients: Clients
) -> None:
    chat_a, server_a, _, server_b = await two_servers(broker)
    alice = await clients.join(server_a.url, "alice")
    bob = await clients.join(server_b.url, "bob")
    expected = [f"m{i}" for i in range(300)]

    for text in expected[:50]:
        await bob.send(text)
    await wait_for(lambda: len(alice.texts(author="bob")) == 50, what="alice has the first 50")

    await server_a.stop(code=1012, reason="restarting")
    await wait_for(lambda: alice.closes, what="alice disconnected")
    assert alice.closes == [(1012, "restarting")]
    assert not alice.live

    for text in expected[50:100]:  # while alice is away
        await bob.send(text)
    await wait_for(lambda: not bob.unacknowledged, what="published while alice is away")

    async def keep_sending() -> None:
        for text in expected[100:]:
            await bob.send(text)
            await asyncio.sleep(0.001)  # paces the sender; not synchronisation

    sender = asyncio.create_task(keep_sending())
    await restart(chat_a, server_a)  # alice reconnects while bob keeps talking
    await asyncio.wait_for(sender, TIMEOUT)
    await bob.send("done")
    await wait_for(lambda: "done" in alice.texts(author="bob"), what="alice has everything")

    assert alice.texts(author="bob") == [*expected, "done"]
    assert_complete_transcript(alice)
    assert alice.connects == 2
    assert alice.live
    # alice's own comings and goings are in her transcript too, in their place.
    assert [line for line in alice.lines() if "alice" in line] == [
        ">>> alice joined the chat",
        ">>> alice left the chat",
        ">>> alice joined the chat",
    ]


async def test_messages_sent_while_disconnected_go_out_once_after_reconnecting(
    broker: Broker, clients: Clients
) -> None:
    chat_a, server_a, _, server_b = await two_servers(broker)
    alice = await clients.join(server_a.url, "alice")
    bob = await clients.join(server_b.url, "bob")
    await alice.send("before")
    await wait_for(lambda: bob.texts(author="alice") == ["before"], what="bob has 'before'")
    # Her own server acknowledges it when its subscription delivers it, which may be after bob's.
    await wait_for(lambda: not alice.unacknowledged, what="alice's 'before' acknowledged")

    await server_a.stop(code=1012)
    await wait_for(lambda: alice.closes, what="alice disconnected")
    await alice.send("while away 1")  # no connection: they wait in the outbox
    await alice.send("while away 2")
    assert alice.unacknowledged == ["while away 1", "while away 2"]
    assert bob.texts(author="alice") == ["before"]

    await restart(chat_a, server_a)
    await wait_for(lambda: not alice.unacknowledged, what="the outbox acknowledged")
    await alice.send("after")
    await wait_for(lambda: "after" in bob.texts(author="alice"), what="bob has 'after'")
    await wait_for(lambda: not alice.unacknowledged, what="alice's 'after' acknowledged")

    expected = ["before", "while away 1", "while away 2", "after"]
    assert bob.texts(author="alice") == expected
    assert alice.texts(author="alice") == expected  # her acknowledged messages, in their place
    assert_complete_transcript(alice)
    assert_complete_transcript(bob)


async def test_resume_replays_what_was_missed_then_goes_live(url: str, chat: ChatServer) -> None:
    async with await join_plain(url, "bob") as bob:
        for i in range(3):
            await bob.send(f"m{i}")
        await wait_for(lambda: chat.room.stats.published == 3, what="all published")
        ws, welcome = await join_json(url, "alice", resume=1)  # saw bob's join only
        async with ws:
            assert welcome["seq"] == 4
            messages = await read_until(ws, "live")
            assert [(m["type"], m.get("text"), m["seq"]) for m in messages] == [
                ("chat", "m0", 2),
                ("chat", "m1", 3),
                ("chat", "m2", 4),
                ("live", None, 4),
            ]
            assert (await recv_json(ws))["seq"] == 5  # alice's join, live


@pytest.mark.parametrize("history", [5])
async def test_resuming_from_before_the_history_reports_what_is_lost(url: str, chat: ChatServer) -> None:
    async with await join_plain(url, "bob") as bob:
        for i in range(10):
            await bob.send(f"m{i}")
        await wait_for(lambda: chat.room.stats.published == 10, what="all published")
        last = await chat.broker.last_seq("lobby")
        assert last == 11  # bob's join, then 10 messages

        ws, welcome = await join_json(url, "alice", resume=2)
        async with ws:
            assert welcome["seq"] == last
            lost = await recv_json(ws)
            assert lost["type"] == "history-lost"
            assert (lost["first"], lost["last"]) == (3, last - 5)
            assert f"events 3..{last - 5} are gone" in lost["text"]
            messages = await read_until(ws, "live")
            assert [m.get("text") for m in messages] == ["m5", "m6", "m7", "m8", "m9", None]
            assert [m["seq"] for m in messages] == [7, 8, 9, 10, 11, 11]


@pytest.mark.parametrize("history", [5])
async def test_chat_client_records_lost_history_as_missing(broker: Broker, clients: Clients) -> None:
    chat_a, server_a, _, server_b = await two_servers(broker)
    alice = await clients.join(server_a.url, "alice")
    bob = await clients.join(server_b.url, "bob")
    await wait_for(lambda: alice.users == ["alice", "bob"], what="alice sees bob")
    seen = alice.tracker.last
    assert seen is not None

    await server_a.stop(code=1012)
    await wait_for(lambda: alice.closes, what="alice disconnected")
    sent = [f"m{i}" for i in range(10)]
    for text in sent:
        await bob.send(text)
    await wait_for(lambda: not bob.unacknowledged, what="all published")
    last = await broker.last_seq("lobby")

    await restart(chat_a, server_a)
    await wait_for(lambda: alice.live, what="alice back")
    await wait_for(lambda: alice.texts(author="bob")[-1:] == ["m9"], what="alice has the last message")

    # alice's leave and the first messages are gone; the newest five were replayed.
    assert alice.tracker.missing == [(seen + 1, last - 5)]
    assert f"history lost: seq {seen + 1}..{last - 5} can no longer be replayed" in alice.notices
    assert alice.texts(author="bob") == sent[-5:]
    assert alice.tracker.duplicates == 0
    seqs = [e.seq for e in alice.events]
    assert seqs == sorted(set(seqs))


# --- slow clients ---------------------------------------------------------------------------

BURST = 3000
TEXT = "x" * 100


def slow_server(broker: Broker, overflow: OverflowPolicy) -> ChatServer:
    """Small buffers everywhere, so a slow reader shows up as backlog within the burst."""
    return ChatServer(broker=broker, send_buffer=4096, max_backlog=16 * 1024, overflow=overflow)


def start_slow(clients: Clients, url: str) -> ChatClient:
    """Five messages a second: slower than any burst, however busy the machine.

    Without compression: permessage-deflate shrinks the burst's repetitive events to a few
    bytes each, and a slow reader's first read then takes in so much of the burst that the
    server may never see a backlog; a slow network does not compress what it holds.
    """
    return clients.start(url, "slow", read_delay=200 * MS, max_queue=4, receive_buffer=4096, compression=None)


async def burst(fast: ClientConnection) -> list[str]:
    """Send the burst from a plain-dialect connection, which never gets its own messages back.

    A :class:`ChatClient` would not do as the fast client: in one event loop, its sending
    loop starves its reading of acks, so it falls behind as well.
    """
    sent = [f"{i:04d} {TEXT}" for i in range(BURST)]
    for text in sent:
        await fast.send(text)
    return sent


async def finish(chat: ChatServer, fast: ClientConnection, slow: ChatClient, sending: asyncio.Task) -> None:
    """Once the policy has acted, let the slow client catch up, then wait for a last message.

    The slow client stops being slow as soon as the server dropped or evicted once, not
    when the burst is over: on a busy machine the burst takes tens of seconds, and a reader
    that slow for that long meets websockets' keepalive, whose pong waits behind what it
    has not read (a ``1011 keepalive ping timeout``, not the policy under test). Its slow
    network goes too: an evicted client resumes on a new connection, and a 4 KiB receive
    window there would pace the replay of the whole burst at delayed-ACK speed (seconds).
    """
    published = lambda: chat.room.stats.published  # noqa: E731
    await wait_while_progressing(
        lambda: chat.room.stats.dropped or chat.room.stats.evicted,
        published,
        what="the overflow policy acted",
    )
    slow.read_delay, slow.receive_buffer = 0, None
    await wait_while_progressing(sending.done, published, what="the burst sent")
    sent = len(await sending)
    # Sent is not yet published, and published not yet fanned out: the server and then the
    # broker's subscription may still hold the burst's tail, which would fill the backlog
    # again after it looked empty.
    await wait_while_progressing(lambda: published() >= sent, published, what="the burst published")
    last = await chat.broker.last_seq(chat.room.name)
    fanned_out = lambda: chat.room.last_seq  # noqa: E731
    await wait_while_progressing(lambda: fanned_out() >= last, fanned_out, what="the burst fanned out")
    # An evicted connection has left the backlogs but may still be live, so the last
    # message may come through a resume: wait while slow receives anything.
    received = lambda: len(slow.events)  # noqa: E731
    await wait_while_progressing(lambda: not any(server_backlogs(chat)) and slow.live, received)
    await fast.send("done")
    await wait_while_progressing(lambda: slow.texts(author="fast")[-1:] == ["done"], received, what="'done'")


async def slow_reader_under_burst(
    broker: Broker, clients: Clients, overflow: OverflowPolicy
) -> tuple[ChatServer, ChatClient, list[str]]:
    """A slow json reader, live, while a fast plain client sends the burst and a last "done"."""
    chat = slow_server(broker, overflow)
    url = (await chat.serve(name="chat")).url
    slow = start_slow(clients, url)
    await wait_for(lambda: slow.live, what="slow is live")
    async with await join_plain(url, "fast") as fast:
        sending = asyncio.create_task(burst(fast))
        try:
            await finish(chat, fast, slow, sending)
        finally:
            sending.cancel()
    return chat, slow, sending.result()


async def test_drop_policy_loses_messages_and_the_client_sees_the_gap(
    broker: Broker, clients: Clients
) -> None:
    chat, slow, sent = await slow_reader_under_burst(broker, clients, OverflowPolicy.DROP)

    received = slow.texts(author="fast")
    missing = sum(last - first + 1 for first, last in slow.tracker.missing)
    assert missing > 0
    assert chat.room.stats.dropped == missing  # the tracker accounts for every dropped message
    assert len(received) == BURST + 1 - missing
    assert slow.closes == []  # dropping is silent: the connection never closed
    assert len(slow.notices) == 1 + len(slow.tracker.missing)  # the welcome, then one per gap
    assert all(notice.startswith("gap: seq ") for notice in slow.notices[1:])
    # What did arrive came in order, each once.
    arrived = set(received)
    assert received == [text for text in [*sent, "done"] if text in arrived]
    assert slow.tracker.duplicates == 0


@pytest.mark.parametrize("history", [10_000])
async def test_disconnect_policy_evicts_the_slow_client_which_resumes_losing_nothing(
    broker: Broker, clients: Clients
) -> None:
    chat, slow, sent = await slow_reader_under_burst(broker, clients, OverflowPolicy.DISCONNECT)

    assert chat.room.stats.evicted >= 1
    assert chat.room.stats.dropped == 0
    codes = [code for code, _ in slow.closes]
    assert set(codes) == {4001}
    assert all(
        reason.startswith("too slow: ") and "reconnect with resume=" in reason for _, reason in slow.closes
    )
    assert slow.connects == len(slow.closes) + 1
    assert slow.texts(author="fast") == [*sent, "done"]
    assert_complete_transcript(slow)
