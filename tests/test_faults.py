"""The fault-injecting proxy: real sockets on 127.0.0.1, plain TCP and real WebSockets.

Waits are on conditions with a deadline. The one exception says "nothing arrives": a
stalled byte is checked to stay away for a short, bounded time (``QUIET``).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from helpers import (
    MS,
    TIMEOUT,
    close_code,
    refused_port,
    refuses_connections,
    wait_for,
)
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosedError
from websockets.protocol import State

import wslab
from wslab import EventLog
from wslab.core.connection_log import LogKind
from wslab.faults import FaultProxy, Flow
from wslab.faults.proxy import DEFAULT_BUFFER_LIMIT
from wslab.faults.stats import Mode
from wslab.servers import echo

#: How long a stalled byte must stay away to count as held.
QUIET = 300 * MS
#: The latency the latency tests set: long enough that a busy machine's late wake-ups are
#: small beside it, short enough to wait for.
LATENCY = 100 * MS

C2S = Flow.CLIENT_TO_SERVER
S2C = Flow.SERVER_TO_CLIENT


# --- a plain TCP server on the far side of the proxy ----------------------------------


@dataclass
class Peer:
    """One end of a TCP connection, as the stream API gives it."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter

    async def read(self, n: int, timeout: float = TIMEOUT) -> bytes:
        return await asyncio.wait_for(self.reader.readexactly(n), timeout)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await asyncio.wait_for(self.writer.drain(), TIMEOUT)

    def reset(self) -> None:
        """Close this end with an RST (SO_LINGER 0), like a crashed host."""
        self.writer.get_extra_info("socket").setsockopt(
            socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
        )
        self.writer.transport.abort()

    async def end(self) -> str:
        """Read until the connection ends: ``"eof"`` (FIN) or ``"reset"`` (RST)."""
        try:
            while await asyncio.wait_for(self.reader.read(65536), TIMEOUT):
                pass
        except ConnectionResetError:
            return "reset"
        return "eof"


class TcpServer:
    """A TCP server that echoes, or hands each accepted connection to the test."""

    def __init__(self, *, echo: bool) -> None:
        self.echo = echo
        self.accepted: asyncio.Queue[Peer] = asyncio.Queue()
        self._writers: list[asyncio.StreamWriter] = []

    async def start(self) -> TcpServer:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.host, self.port = self.server.sockets[0].getsockname()[:2]
        return self

    async def next_peer(self) -> Peer:
        """The server's end of the next connection the proxy opens."""
        return await asyncio.wait_for(self.accepted.get(), TIMEOUT)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.append(writer)
        if not self.echo:
            self.accepted.put_nowait(Peer(reader, writer))
            return
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def close(self) -> None:
        for writer in self._writers:
            writer.transport.abort()
        self.server.close()
        await self.server.wait_closed()


@pytest.fixture
async def tcp_echo() -> AsyncIterator[TcpServer]:
    server = await TcpServer(echo=True).start()
    yield server
    await server.close()


@pytest.fixture
async def tcp_sink() -> AsyncIterator[TcpServer]:
    server = await TcpServer(echo=False).start()
    yield server
    await server.close()


_clients: list[asyncio.StreamWriter] = []


@pytest.fixture(autouse=True)
async def close_clients() -> AsyncIterator[None]:
    """Every client socket a test opens is closed, whatever the test left it in."""
    yield
    for writer in _clients:
        writer.transport.abort()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    _clients.clear()


async def open_client(proxy: FaultProxy) -> Peer:
    reader, writer = await asyncio.wait_for(asyncio.open_connection(proxy.host, proxy.port), TIMEOUT)
    _clients.append(writer)
    return Peer(reader, writer)


async def connected_pair(proxy: FaultProxy, server: TcpServer) -> tuple[Peer, Peer]:
    """A client through ``proxy`` and the server's end of the same connection."""
    client = await open_client(proxy)
    return client, await server.next_peer()


async def nothing_arrives(peer: Peer) -> bool:
    """True if ``peer`` receives no byte within ``QUIET`` seconds."""
    try:
        await asyncio.wait_for(peer.reader.read(1), QUIET)
    except TimeoutError:
        return True
    return False


# --- forwarding -----------------------------------------------------------------------


async def test_forwards_both_ways_for_concurrent_connections(tcp_echo: TcpServer) -> None:
    proxy = await FaultProxy.start(tcp_echo.host, tcp_echo.port)
    clients = [await open_client(proxy) for _ in range(5)]
    await wait_for(lambda: proxy.connections == 5, what="five connections")
    payloads = [bytes([i]) * 10_000 for i in range(5)]

    async def round_trip(client: Peer, payload: bytes) -> bytes:
        await client.send(payload)
        return await client.read(len(payload))

    echoed = await asyncio.gather(*(round_trip(c, p) for c, p in zip(clients, payloads, strict=True)))

    assert echoed == payloads
    stats = proxy.stats
    assert stats.client_to_server.forwarded == stats.server_to_client.forwarded == 50_000
    assert stats.client_to_server.held == stats.server_to_client.held == 0
    assert (stats.connections, stats.accepted, stats.cut) == (5, 5, 0)
    assert proxy.mode is Mode.FORWARD
    for client in clients:
        client.writer.close()
    await wait_for(lambda: proxy.connections == 0, what="closes passed through")


async def test_a_websocket_conversation_through_the_proxy() -> None:
    server = await wslab.serve(echo, ping_interval=None)
    proxy = await FaultProxy.start(server.host, server.port)
    assert proxy.url == f"ws://127.0.0.1:{proxy.port}/"
    assert proxy.url_for("chat") == proxy.url_for("/chat") == f"ws://127.0.0.1:{proxy.port}/chat"
    async with connect(proxy.url) as ws:
        await ws.send("hello")
        assert await asyncio.wait_for(ws.recv(), TIMEOUT) == "Echo: hello"
        assert (proxy.connections, server.connections) == (1, 1)
    await wait_for(lambda: proxy.connections == server.connections == 0, what="clean close")


async def test_half_close_passes_through(tcp_sink: TcpServer) -> None:
    proxy = await FaultProxy.start(tcp_sink.host, tcp_sink.port)
    client, server = await connected_pair(proxy, tcp_sink)
    await client.send(b"request")
    client.writer.write_eof()  # the client is done sending, still reading

    assert await server.read(7) == b"request"
    assert await server.end() == "eof"
    await server.send(b"reply")
    server.writer.close()
    assert await client.read(5) == b"reply"
    assert await client.end() == "eof"
    await wait_for(lambda: proxy.connections == 0, what="both FINs passed through")


async def test_an_unreachable_target_resets_the_client() -> None:
    with refused_port() as port:
        proxy = await FaultProxy.start("127.0.0.1", port)
        client = await open_client(proxy)
        assert await client.end() in ("reset", "eof")
    await wait_for(lambda: proxy.connections == 0, what="connection forgotten")


# --- latency --------------------------------------------------------------------------


async def test_latency_delays_each_direction(tcp_echo: TcpServer) -> None:
    loop = asyncio.get_running_loop()
    proxy = await FaultProxy.start(tcp_echo.host, tcp_echo.port)
    client = await open_client(proxy)

    async def round_trip() -> float:
        start = loop.time()
        await client.send(b"ping")
        assert await client.read(4) == b"ping"
        return loop.time() - start

    # Lower bounds prove the delay; each upper bound is where the wrong behaviour starts
    # (a delay applied twice, or to both ways), far enough above the right one that a busy
    # machine's late wake-ups do not reach it.
    each_way = 2.5 * LATENCY
    proxy.set_latency(each_way)
    assert proxy.mode is Mode.DELAYED
    elapsed = await round_trip()
    assert 2 * each_way <= elapsed < 4 * each_way  # twice each way would be 4 * each_way

    proxy.resume()
    proxy.set_latency(2 * each_way, direction=C2S)  # one way only
    assert (proxy.stats.client_to_server.latency, proxy.stats.server_to_client.latency) == (2 * each_way, 0)
    elapsed = await round_trip()
    assert 2 * each_way <= elapsed < 4 * each_way  # delayed both ways, it would be 4 * each_way


async def test_latency_keeps_order_and_does_not_add_up(tcp_echo: TcpServer) -> None:
    loop = asyncio.get_running_loop()
    proxy = await FaultProxy.start(tcp_echo.host, tcp_echo.port)
    client = await open_client(proxy)
    proxy.set_latency(LATENCY)
    lines = [b"%04d\n" % i for i in range(200)]

    start = loop.time()
    for line in lines:
        client.writer.write(line)
        await asyncio.sleep(0)  # let the proxy read: many small chunks, not one
    echoed = await client.read(len(lines) * 5)
    elapsed = loop.time() - start

    assert echoed == b"".join(lines)
    # Each chunk is due LATENCY after it arrived, there and back. A delay that added up,
    # one sleep per chunk, would take 200 round trips; ten round trips' worth is the bound.
    assert 2 * LATENCY <= elapsed < 10 * 2 * LATENCY


async def test_latency_on_one_connection_does_not_hold_up_another(tcp_echo: TcpServer) -> None:
    loop = asyncio.get_running_loop()
    proxy = await FaultProxy.start(tcp_echo.host, tcp_echo.port)
    clients = [await open_client(proxy) for _ in range(10)]
    proxy.set_latency(LATENCY)

    async def round_trip(client: Peer) -> None:
        await client.send(b"x" * 1000)
        await client.read(1000)

    start = loop.time()
    await asyncio.gather(*(round_trip(c) for c in clients))
    elapsed = loop.time() - start
    # In parallel: one round trip. One after another, the ten would take at least ten.
    assert 2 * LATENCY <= elapsed < 10 * 2 * LATENCY / 2


# --- stall and resume -----------------------------------------------------------------


async def test_stall_holds_bytes_keeps_sockets_open_and_resume_delivers_them(tcp_sink: TcpServer) -> None:
    proxy = await FaultProxy.start(tcp_sink.host, tcp_sink.port)
    client, server = await connected_pair(proxy, tcp_sink)
    await client.send(b"hello")
    assert await server.read(5) == b"hello"

    proxy.stall()
    assert proxy.mode is Mode.STALLED
    for part in (b"one,", b"two,", b"three"):
        await client.send(part)  # the writes succeed: the proxy reads and holds
    await server.send(b"back")
    await wait_for(lambda: proxy.stats.client_to_server.held == 13, what="client bytes held")
    await wait_for(lambda: proxy.stats.server_to_client.held == 4, what="server bytes held")

    assert await nothing_arrives(server)
    assert not client.reader.at_eof() and not client.writer.is_closing()
    assert not server.reader.at_eof() and not server.writer.is_closing()
    assert proxy.connections == 1

    proxy.resume()
    assert proxy.mode is Mode.FORWARD
    assert await server.read(13) == b"one,two,three"
    assert await client.read(4) == b"back"
    await client.send(b"same connection")  # the stream simply continues
    assert await server.read(15) == b"same connection"
    assert proxy.stats.accepted == 1


async def test_stall_one_direction_only(tcp_sink: TcpServer) -> None:
    proxy = await FaultProxy.start(tcp_sink.host, tcp_sink.port)
    client, server = await connected_pair(proxy, tcp_sink)

    proxy.stall(direction=S2C)
    await client.send(b"up")
    assert await server.read(2) == b"up"  # the other way still flows
    await server.send(b"down")
    await wait_for(lambda: proxy.stats.server_to_client.held == 4, what="reply held")
    assert proxy.stats.server_to_client.forwarded == 0
    assert not proxy.stats.client_to_server.stalled

    proxy.resume(direction=S2C)
    assert await client.read(4) == b"down"

    proxy.stall(direction=C2S)
    await server.send(b"free")
    assert await client.read(4) == b"free"
    await client.send(b"held")
    await wait_for(lambda: proxy.stats.client_to_server.held == 4, what="request held")
    proxy.resume()
    assert await server.read(4) == b"held"


async def test_a_connection_opened_during_a_stall_is_accepted_and_held(tcp_sink: TcpServer) -> None:
    proxy = await FaultProxy.start(tcp_sink.host, tcp_sink.port)
    proxy.stall()
    client, server = await connected_pair(proxy, tcp_sink)  # the server sees the connection
    await client.send(b"early")
    await wait_for(lambda: proxy.stats.client_to_server.held == 5, what="bytes held")
    assert proxy.connections == 1

    proxy.resume()
    assert await server.read(5) == b"early"


async def test_a_stall_holds_at_most_the_buffer_limit_then_stops_reading(tcp_sink: TcpServer) -> None:
    limit = 64 * 1024
    proxy = await FaultProxy.start(tcp_sink.host, tcp_sink.port, buffer_limit=limit)
    client, server = await connected_pair(proxy, tcp_sink)
    payload = bytes(range(256)) * 8 * 1024  # 2 MiB, much more than the limit
    proxy.stall()

    client.writer.write(payload)  # no drain: it cannot complete while the proxy stops reading
    await wait_for(lambda: proxy.stats.client_to_server.paused == 1, what="reading paused")
    held = proxy.stats.client_to_server.held
    assert limit <= held <= limit + 256 * 1024  # one read past the limit at most

    proxy.resume()
    assert await server.read(len(payload)) == payload
    await wait_for(lambda: proxy.stats.client_to_server.paused == 0, what="reading resumed")
    assert DEFAULT_BUFFER_LIMIT == 4 * 1024 * 1024


async def test_a_websocket_continues_after_a_stall() -> None:
    server = await wslab.serve(echo, ping_interval=None)
    proxy = await FaultProxy.start(server.host, server.port)
    async with connect(proxy.url, ping_interval=None) as ws:
        await ws.send("before")
        assert await asyncio.wait_for(ws.recv(), TIMEOUT) == "Echo: before"
        proxy.stall()
        await ws.send("during")  # returns at once: the bytes sit in the proxy
        await wait_for(lambda: proxy.stats.client_to_server.held > 0, what="frame held")
        assert ws.state is State.OPEN
        proxy.resume()
        assert await asyncio.wait_for(ws.recv(), TIMEOUT) == "Echo: during"
        await ws.send("after")
        assert await asyncio.wait_for(ws.recv(), TIMEOUT) == "Echo: after"
    assert proxy.stats.accepted == 1


async def test_a_heartbeat_notices_a_stall_and_a_server_without_one_does_not() -> None:
    """Lesson 05 in one test: the client pings, the server does not."""
    server_side: list[ServerConnection] = []

    async def hold(connection: ServerConnection) -> None:
        server_side.append(connection)
        await connection.wait_closed()

    server = await wslab.serve(hold, ping_interval=None)
    proxy = await FaultProxy.start(server.host, server.port)
    async with connect(
        proxy.url, ping_interval=100 * MS, ping_timeout=100 * MS, close_timeout=100 * MS
    ) as ws:
        await wait_for(lambda: len(server_side) == 1, what="handler running")
        proxy.stall()
        assert await close_code(ws) == 1006  # gave up on its own: no close frame came back
        assert ws.protocol.close_sent is not None
        assert (ws.protocol.close_sent.code, ws.protocol.close_sent.reason) == (
            1011,
            "keepalive ping timeout",
        )

    # The client is gone, but its close frame and its FIN are held in the proxy:
    # the server still believes the connection is fine.
    assert server_side[0].state is State.OPEN
    assert proxy.connections == 1
    proxy.cut()
    await asyncio.wait_for(server_side[0].wait_closed(), TIMEOUT)
    assert server_side[0].close_code == 1006


async def test_a_connection_whose_ends_both_vanish_during_a_stall_is_forgotten(tcp_sink: TcpServer) -> None:
    proxy = await FaultProxy.start(tcp_sink.host, tcp_sink.port)
    client, server = await connected_pair(proxy, tcp_sink)
    proxy.stall()
    await client.send(b"never delivered")
    await wait_for(lambda: proxy.stats.client_to_server.held == 15, what="bytes held")

    client.reset()  # RSTs are not held: the proxy's sockets are gone. (FINs would be.)
    server.reset()

    await wait_for(lambda: proxy.connections == 0, what="connection forgotten")
    assert proxy.stats.client_to_server.dropped == 15


# --- cut ------------------------------------------------------------------------------


async def test_cut_resets_both_ends(tcp_sink: TcpServer) -> None:
    proxy = await FaultProxy.start(tcp_sink.host, tcp_sink.port)
    client, server = await connected_pair(proxy, tcp_sink)
    await client.send(b"hi")
    assert await server.read(2) == b"hi"

    assert proxy.cut() == 1
    assert proxy.connections == 0
    assert await client.end() == "reset"
    assert await server.end() == "reset"
    assert proxy.stats.cut == 1

    # A cut is an event, not a mode: the next connection goes through.
    client, server = await connected_pair(proxy, tcp_sink)
    await client.send(b"again")
    assert await server.read(5) == b"again"


async def test_cut_during_a_stall_drops_the_held_bytes(tcp_sink: TcpServer) -> None:
    proxy = await FaultProxy.start(tcp_sink.host, tcp_sink.port)
    client, server = await connected_pair(proxy, tcp_sink)
    proxy.stall()
    await client.send(b"lost")
    await wait_for(lambda: proxy.stats.client_to_server.held == 4, what="bytes held")

    proxy.cut()
    assert await server.end() == "reset"  # and never saw b"lost"
    assert proxy.stats.client_to_server.dropped == 4
    assert proxy.stats.client_to_server.held == 0


async def test_cut_closes_websockets_with_1006_on_both_sides() -> None:
    log = EventLog()
    server = await wslab.serve(echo, log=log, ping_interval=None)
    proxy = await FaultProxy.start(server.host, server.port)
    async with connect(proxy.url, ping_interval=None) as ws:
        await ws.send("hi")
        assert await asyncio.wait_for(ws.recv(), TIMEOUT) == "Echo: hi"
        proxy.cut()
        with pytest.raises(ConnectionClosedError) as closed:
            await asyncio.wait_for(ws.recv(), TIMEOUT)
    assert closed.value.rcvd is None and closed.value.sent is None
    assert ws.close_code == 1006

    await wait_for(lambda: log.open_connections == 0, what="server saw the end")
    last = list(log)[-1]
    assert (last.direction, last.code, last.text) == (LogKind.DISCONNECT, 1006, "without a close frame")


# --- stop and the registry ------------------------------------------------------------


async def test_stop_closes_the_listener_and_every_connection(tcp_sink: TcpServer) -> None:
    proxy = await FaultProxy.start(tcp_sink.host, tcp_sink.port)
    pairs = [await connected_pair(proxy, tcp_sink) for _ in range(2)]
    proxy.stall()  # held bytes must not keep anything open
    await pairs[0][0].send(b"held")
    await wait_for(lambda: proxy.stats.client_to_server.held == 4, what="bytes held")

    await proxy.stop()

    assert await refuses_connections(proxy.port)
    assert (proxy.connections, proxy.serving, proxy.mode) == (0, False, Mode.STOPPED)
    assert wslab.running() == []
    for client, server in pairs:
        assert await client.end() in ("eof", "reset")
        assert await server.end() in ("eof", "reset")


async def test_stop_all_stops_proxies_and_a_rerun_replaces_the_old_one(tcp_sink: TcpServer) -> None:
    old = await FaultProxy.start(tcp_sink.host, tcp_sink.port, name="lesson")
    client, server = await connected_pair(proxy=old, server=tcp_sink)

    new = await FaultProxy.start(tcp_sink.host, tcp_sink.port, name="lesson")  # the cell, run again

    assert await refuses_connections(old.port)
    assert await client.end() in ("eof", "reset")
    assert await server.end() in ("eof", "reset")
    assert wslab.running() == [new]
    client, server = await connected_pair(new, tcp_sink)
    await client.send(b"new")
    assert await server.read(3) == b"new"

    assert await wslab.stop_all() == 1
    assert await refuses_connections(new.port)
    assert new.connections == 0


async def test_restarting_on_the_same_port_works(tcp_echo: TcpServer) -> None:
    first = await FaultProxy.start(tcp_echo.host, tcp_echo.port)
    second = await FaultProxy.start(tcp_echo.host, tcp_echo.port, name="other", port=first.port)
    assert second.port == first.port
    assert not first.serving
    client = await open_client(second)
    await client.send(b"ok")
    assert await client.read(2) == b"ok"


# --- settings and reporting -----------------------------------------------------------


async def test_settings_modes_and_the_event_log(tcp_echo: TcpServer) -> None:
    log = EventLog()
    proxy = await FaultProxy.start(tcp_echo.host, tcp_echo.port, log=log)
    with pytest.raises(ValueError):
        proxy.set_latency(-1)
    with pytest.raises(ValueError):
        await FaultProxy.start(tcp_echo.host, tcp_echo.port, buffer_limit=0)

    proxy.stall(direction=C2S)
    stats = proxy.stats
    assert (stats.flow(C2S).stalled, stats.flow(S2C).stalled) == (True, False)
    proxy.stall(direction=S2C)  # stalls add up
    assert proxy.stats.server_to_client.stalled and proxy.stats.client_to_server.stalled
    proxy.resume(direction=C2S)
    assert proxy.mode is Mode.STALLED
    proxy.resume()
    proxy.set_latency(0.05, direction=S2C)
    assert proxy.mode is Mode.DELAYED
    assert "delayed" in repr(proxy) and f"-> 127.0.0.1:{tcp_echo.port}" in repr(proxy)
    proxy.resume()
    assert proxy.mode is Mode.FORWARD

    client = await open_client(proxy)
    await client.send(b"x")
    assert await client.read(1) == b"x"
    client.writer.close()
    await wait_for(lambda: log.open_connections == 0, what="disconnect logged")
    kinds = [e.direction for e in log]
    assert kinds.count(LogKind.NOTE) == 6
    assert kinds[-2:] == [LogKind.CONNECT, LogKind.DISCONNECT]
    assert [e.text for e in log][:2] == ["stalled client->server", "stalled server->client"]
