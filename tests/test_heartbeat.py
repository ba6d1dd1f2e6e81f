"""Lesson 05 pinned down: a heartbeat notices a dead peer within its bound, and only a dead one.

Every scenario runs over real sockets on 127.0.0.1 with a :class:`FaultProxy` in the path:
``stall()`` is the silent failure (a hung middlebox: bytes acknowledged, never delivered), latency is
the slow but alive link. Detection times are measured with ``loop.time()`` from the stall
and compared with ``interval + timeout`` plus ``TOLERANCE`` for the event loop's timing,
plus a few times the worst lateness of the event loop measured during the test: on a busy
machine every wake-up comes late, and the bound moves with it, not with a guess.

Waits are on conditions with a deadline. The one exception is the slow link: the point
there is that nothing happens for ``SLOW_FOR`` seconds, so the test watches them pass
(``assert_stays``). Every time is in :data:`helpers.MS`.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Callable

import pytest
from helpers import MS, TIMEOUT, Clients, LoopLag, assert_complete_transcript, assert_stays, wait_for
from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosedError
from websockets.protocol import State

import wslab
from wslab import EventLog
from wslab.core.connection_log import LogKind
from wslab.core.heartbeat import HeartbeatPolicy, Verdict
from wslab.faults import FaultProxy
from wslab.runtime.handles import ServerHandle
from wslab.runtime.keepalive import keep_alive
from wslab.servers import ChatServer, echo

#: The lesson's short values: a ping every 0.3 s, dead after 0.9 s of silence.
INTERVAL, SILENCE = 300 * MS, 900 * MS
POLICY = HeartbeatPolicy(interval=INTERVAL, timeout=SILENCE)
BOUND = INTERVAL + SILENCE
#: The longest a test waits for a dead peer to be noticed: far past the bound, only a deadline.
GIVE_UP = BOUND + 2_500 * MS
#: Allowed on top of the bound: the event loop's own timing (see :func:`latest`).
TOLERANCE = 500 * MS
#: The slow link: this much latency each way (a 0.2 s round trip, well below the timeout)...
SLOW = 100 * MS
#: ...for this long, twice the time a dead connection would take to be noticed.
SLOW_FOR = 2 * BOUND
#: websockets' close_timeout here: how long a side that gave up waits for a TCP close.
CLOSE_TIMEOUT = 200 * MS


# --- how late the event loop runs -------------------------------------------------------

_lag = LoopLag()


@pytest.fixture(autouse=True)
async def watch_loop_lag() -> AsyncIterator[None]:
    """Every test here measures its own lateness, from zero."""
    _lag.start()
    yield
    _lag.stop()


def latest() -> float:
    """The latest a dead peer may be noticed: the bound, the tolerance, and the loop's lateness.

    A detection needs a few wake-ups in a row (the heartbeat's sleep, the drop, the test's
    poll), each as late as the loop ran; an idle machine adds almost nothing, so a heartbeat
    that waits an extra interval or timeout still fails there.
    """
    return BOUND + TOLERANCE + 3 * _lag.worst


# --- plain websockets clients, aborted after each test ----------------------------------

_clients: list[ClientConnection] = []


@pytest.fixture(autouse=True)
async def abort_clients() -> AsyncIterator[None]:
    """Every raw client a test opens is dropped (no close handshake through a stalled proxy)."""
    yield
    for ws in _clients:
        ws.transport.abort()
    for ws in _clients:
        await asyncio.wait_for(ws.wait_closed(), TIMEOUT)
    _clients.clear()


async def client_through(proxy: FaultProxy, **options: object) -> ClientConnection:
    """A websockets client reaching the server through ``proxy``; its own keepalive off by default."""
    options.setdefault("ping_interval", None)
    options.setdefault("close_timeout", CLOSE_TIMEOUT)
    ws = await asyncio.wait_for(connect(proxy.url_for("/"), **options), TIMEOUT)  # type: ignore[arg-type]
    _clients.append(ws)
    return ws


async def echoes(ws: ClientConnection, text: str) -> float:
    """Send ``text``, check the echo; returns the round trip in seconds."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    await ws.send(text)
    assert await asyncio.wait_for(ws.recv(), TIMEOUT) == f"Echo: {text}"
    return loop.time() - started


async def seconds_until_after_stall(proxy: FaultProxy, condition: Callable[[], object], what: str) -> float:
    """Stall ``proxy``; seconds (loop time) until ``condition()`` holds. Fails at ``GIVE_UP``."""
    loop = asyncio.get_running_loop()
    stalled_at = loop.time()
    proxy.stall()
    await wait_for(condition, timeout=GIVE_UP, what=what)
    return loop.time() - stalled_at


# --- the servers: hand-rolled heartbeat, and websockets' keepalive ----------------------


async def hand_rolled_server(silences: list[float], log: EventLog | None = None) -> ServerHandle:
    """The tutorial's heartbeat: ``keep_alive`` beside the echo loop; websockets' own keepalive off."""

    async def echo_with_heartbeat(connection: ServerConnection) -> None:
        beat = asyncio.create_task(keep_alive(connection, POLICY, on_dead=silences.append))
        try:
            async for message in connection:
                await connection.send(f"Echo: {message}")
        finally:
            beat.cancel()

    return await wslab.serve(echo_with_heartbeat, name="hand-rolled", log=log, ping_interval=None)


async def builtin_server(log: EventLog | None = None) -> ServerHandle:
    """The echo server with websockets' keepalive at the same interval and timeout."""
    return await wslab.serve(
        echo,
        name="builtin",
        log=log,
        ping_interval=INTERVAL,
        ping_timeout=SILENCE,
        close_timeout=CLOSE_TIMEOUT,
    )


# --- the policy, without I/O ------------------------------------------------------------


def test_silence_of_exactly_the_timeout_is_alive_and_a_hair_more_is_dead() -> None:
    policy = HeartbeatPolicy(interval=0.25, timeout=0.75)  # binary fractions: exact arithmetic
    assert policy.verdict(last_heard=10.0, now=10.0) is Verdict.ALIVE
    assert policy.verdict(last_heard=10.0, now=10.75) is Verdict.ALIVE
    assert policy.verdict(last_heard=10.0, now=math.nextafter(10.75, math.inf)) is Verdict.DEAD
    assert policy.verdict(last_heard=10.0, now=12.0) is Verdict.DEAD

    production = HeartbeatPolicy()
    assert (production.interval, production.timeout) == (15.0, 45.0)
    assert production.verdict(last_heard=0.0, now=45.0) is Verdict.ALIVE
    assert production.verdict(last_heard=0.0, now=45.001) is Verdict.DEAD


@pytest.mark.parametrize(("interval", "timeout"), [(0, 1), (1, 0), (-0.3, 0.9), (0.3, -0.9), (0, 0)])
def test_a_policy_needs_a_positive_interval_and_timeout(interval: float, timeout: float) -> None:
    with pytest.raises(ValueError, match="positive"):
        HeartbeatPolicy(interval=interval, timeout=timeout)


# --- the server notices a stalled client ------------------------------------------------


async def test_hand_rolled_keep_alive_drops_a_stalled_client_within_the_bound() -> None:
    silences: list[float] = []
    log = EventLog()
    server = await hand_rolled_server(silences, log)
    proxy = await FaultProxy.start(server.host, server.port)
    ws = await client_through(proxy)
    await echoes(ws, "hello")
    assert server.connections == 1

    took = await seconds_until_after_stall(proxy, lambda: server.connections == 0, "connection dropped")

    # Pongs came every interval until the stall, so at least timeout - interval passes first.
    assert SILENCE - INTERVAL <= took <= latest()
    assert len(silences) == 1
    assert SILENCE < silences[0] <= latest()
    # Aborted, not closed: no close frame, no wait for a close handshake the dead peer cannot answer.
    await wait_for(lambda: log.open_connections == 0, what="disconnect logged")
    last = list(log)[-1]
    assert (last.direction, last.code, last.text) == (LogKind.DISCONNECT, 1006, "without a close frame")


async def test_builtin_keepalive_drops_a_stalled_client_within_the_bound_with_1011() -> None:
    log = EventLog()
    server = await builtin_server(log)
    proxy = await FaultProxy.start(server.host, server.port)
    ws = await client_through(proxy)
    await echoes(ws, "hello")

    took = await seconds_until_after_stall(proxy, lambda: server.connections == 0, "connection dropped")
    assert SILENCE - INTERVAL <= took <= latest()

    # The handler ends once the server stops waiting for the TCP close (close_timeout).
    await wait_for(lambda: log.open_connections == 0, what="disconnect logged")
    last = list(log)[-1]
    assert last.direction is LogKind.DISCONNECT
    assert (last.code, last.reason, last.text) == (1011, "keepalive ping timeout", "by server")


# --- the client notices a stalled server ------------------------------------------------


async def test_a_websockets_client_with_keepalive_gives_up_on_a_stalled_server() -> None:
    # The server never pings. (A short close_timeout: at teardown it closes through the stall.)
    server = await wslab.serve(echo, name="quiet", ping_interval=None, close_timeout=CLOSE_TIMEOUT)
    proxy = await FaultProxy.start(server.host, server.port)
    ws = await client_through(proxy, ping_interval=INTERVAL, ping_timeout=SILENCE)
    await echoes(ws, "hello")

    noticed = await seconds_until_after_stall(proxy, lambda: ws.state is not State.OPEN, "client gave up")
    assert SILENCE - INTERVAL <= noticed <= latest()

    # Then it waits close_timeout for a TCP close that cannot come, and drops the connection.
    await asyncio.wait_for(ws.wait_closed(), TIMEOUT)
    with pytest.raises(ConnectionClosedError) as closed:
        await ws.recv()
    assert closed.value.rcvd is None
    assert ws.close_code == 1006
    assert ws.protocol.close_sent is not None
    assert (ws.protocol.close_sent.code, ws.protocol.close_sent.reason) == (1011, "keepalive ping timeout")
    assert server.connections == 1  # the server, without a heartbeat, has not noticed anything


async def test_chat_client_watchdog_notices_a_stalled_server_then_resumes_with_nothing_lost() -> None:
    chat = ChatServer(heartbeat=POLICY)
    server = await chat.serve(name="chat")
    proxy = await FaultProxy.start(server.host, server.port)
    clients = Clients()
    try:
        # websockets' keepalive off for ana: only the chat's own heartbeat is under test.
        ana = await clients.join(proxy.url_for("/"), "ana", ping_interval=None, close_timeout=CLOSE_TIMEOUT)
        ben = await clients.join(server.url, "ben")
        await wait_for(lambda: "ben" in ana.users, what="ana saw ben join")
        said = [f"while you were away {i}" for i in range(10)]

        loop = asyncio.get_running_loop()
        stalled_at = loop.time()
        proxy.stall()
        for text in said[:5]:
            await ben.send(text)
        await wait_for(lambda: ana.dead_after, timeout=GIVE_UP, what="ana's watchdog fired")
        noticed = loop.time() - stalled_at
        for text in said[5:]:
            await ben.send(text)

        assert SILENCE - INTERVAL <= noticed <= latest()
        assert len(ana.dead_after) == 1
        assert SILENCE < ana.dead_after[0] <= latest()
        assert not ana.live
        # The server's heartbeat drops ana's old connection too: her name is free again.
        await wait_for(lambda: "ana" not in chat.room.users, what="the server dropped ana's old connection")
        await wait_for(lambda: not ben.unacknowledged, what="ben's messages published")
        assert ana.texts(author="ben") == []

        proxy.resume()
        await wait_for(lambda: ana.live, what="ana is back")
        await wait_for(lambda: ana.texts(author="ben") == said, what="ana has what ben said")

        assert_complete_transcript(ana)  # each event once, in order, no gap
        assert ana.connects == 2
        assert ana.closes[0][0] == 1006  # her watchdog aborted: no close frame either way
        assert len(ana.dead_after) == 1  # no second alarm once she is back
        await ben.send("welcome back")
        await wait_for(lambda: ana.texts(author="ben")[-1:] == ["welcome back"], what="live again")
    finally:
        await clients.stop_all()


# --- slow is not dead -------------------------------------------------------------------


@pytest.mark.parametrize("mechanism", ["hand-rolled", "builtin"])
async def test_a_slow_link_below_the_timeout_is_kept(mechanism: str) -> None:
    silences: list[float] = []
    log = EventLog()
    server = await (hand_rolled_server(silences, log) if mechanism == "hand-rolled" else builtin_server(log))
    proxy = await FaultProxy.start(server.host, server.port)
    ws = await client_through(proxy)
    await echoes(ws, "hello")

    proxy.set_latency(SLOW)
    pings_before = proxy.stats.server_to_client.forwarded
    assert await echoes(ws, "slow") >= 2 * SLOW

    def kept() -> bool:
        dropped = [e for e in log if e.direction is LogKind.DISCONNECT]
        return server.connections == 1 and not silences and not dropped

    # The experiment: time passes, with pings crossing the slow link, and nobody is dropped.
    await assert_stays(kept, SLOW_FOR, what="the slow client is kept")
    # The server did ping meanwhile (a ping frame is at least 2 bytes): it was answered, late.
    assert proxy.stats.server_to_client.forwarded - pings_before >= len("Echo: slow") + 2 * 2
    assert await echoes(ws, "still here") >= 2 * SLOW
    assert ws.state is State.OPEN


async def test_the_chat_heartbeat_keeps_a_slow_client() -> None:
    chat = ChatServer(heartbeat=POLICY)
    server = await chat.serve(name="chat")
    proxy = await FaultProxy.start(server.host, server.port)
    clients = Clients()
    try:
        ana = await clients.join(proxy.url_for("/"), "ana", ping_interval=None, close_timeout=CLOSE_TIMEOUT)
        ben = await clients.join(server.url, "ben")
        proxy.set_latency(SLOW)
        await ana.send("slow but alive")
        await wait_for(lambda: ben.texts(author="ana") == ["slow but alive"], what="ben has ana's message")

        def kept() -> bool:
            return (
                list(chat.room.dead_after) == []
                and ana.dead_after == []
                and ana.closes == []
                and (ana.live, ana.connects) == (True, 1)
                and chat.room.users == ["ana", "ben"]
                and ">>> ana left the chat" not in ben.lines()
            )

        # The experiment: nothing may happen for twice the bound.
        await assert_stays(kept, SLOW_FOR, what="ana is kept, on both sides")
        await ben.send("still there?")
        await wait_for(lambda: ana.texts(author="ben") == ["still there?"], what="ana has ben's message")
    finally:
        await clients.stop_all()


# --- the chat server cleans up after a dead client --------------------------------------


async def test_the_chat_heartbeat_removes_a_stalled_client_and_announces_the_leave() -> None:
    chat = ChatServer(heartbeat=POLICY)
    server = await chat.serve(name="chat")
    proxy = await FaultProxy.start(server.host, server.port)
    clients = Clients()
    try:
        # No reconnect: once her own watchdog gives up, ana stays away.
        ana = await clients.join(
            proxy.url_for("/"), "ana", reconnect=False, ping_interval=None, close_timeout=CLOSE_TIMEOUT
        )
        ben = await clients.join(server.url, "ben")
        await wait_for(lambda: chat.room.users == ["ana", "ben"], what="both in the room")
        assert server.connections == 2

        took = await seconds_until_after_stall(proxy, lambda: "ana" not in chat.room.users, "ana removed")

        assert SILENCE - INTERVAL <= took <= latest()
        assert len(chat.room.dead_after) == 1
        assert SILENCE < chat.room.dead_after[0] <= latest()
        assert chat.room.users == ["ben"]
        await wait_for(lambda: server.connections == 1, what="ana's connection aborted")
        await wait_for(lambda: ">>> ana left the chat" in ben.lines(), what="ben told ana left")
        assert ben.users == ["ben"]
        assert ben.lines().count(">>> ana left the chat") == 1
        await wait_for(lambda: ana.dead_after, what="ana's side gave up too")
        await wait_for(lambda: not ana.live and ana.closes, what="ana's client stopped")
    finally:
        await clients.stop_all()
