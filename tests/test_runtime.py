"""Servers in the running event loop: real sockets, on 127.0.0.1 only."""

from __future__ import annotations

import asyncio
import logging

import pytest
from helpers import (
    TIMEOUT,
    close_code,
    refuses_connections,
    wait_for,
)
from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import ServerConnection

import wslab
from wslab import EventLog, LogKind
from wslab.runtime.handles import RecordedConnection
from wslab.servers import echo


async def recv(connection: ClientConnection) -> str | bytes:
    return await asyncio.wait_for(connection.recv(), TIMEOUT)


# --- the echo server ----------------------------------------------------------------


async def test_echo_answers_text_with_a_prefix() -> None:
    handle = await wslab.serve(echo)
    async with connect(handle.url) as ws:
        await ws.send("hello")
        assert await recv(ws) == "Echo: hello"
        await ws.send("")
        assert await recv(ws) == "Echo: "


async def test_echo_returns_binary_as_binary() -> None:
    handle = await wslab.serve(echo)
    async with connect(handle.url) as ws:
        await ws.send(b"\x00\x01\xff")
        assert await recv(ws) == b"\x00\x01\xff"


async def test_a_ping_gets_a_pong() -> None:
    handle = await wslab.serve(echo)
    async with connect(handle.url, ping_interval=None) as ws:
        pong = await ws.ping(b"are you there")
        latency = await asyncio.wait_for(pong, TIMEOUT)
        assert latency >= 0
        # The ping did not reach the handler as a message: the next reply answers "after".
        await ws.send("after")
        assert await recv(ws) == "Echo: after"


async def test_serve_returns_a_handle_with_url_and_registry_entry() -> None:
    handle = await wslab.serve(echo)
    assert handle.name == "echo"  # the handler's name by default
    assert handle.host == "127.0.0.1"
    assert handle.port > 0
    assert handle.url == f"ws://127.0.0.1:{handle.port}/"
    assert handle.serving
    assert wslab.running() == [handle]
    assert "serving" in repr(handle)


# --- restarting, stopping -----------------------------------------------------------


async def test_serving_on_a_port_in_use_here_restarts_on_that_port() -> None:
    first = await wslab.serve(echo, name="first")
    async with connect(first.url) as old_client:
        second = await wslab.serve(echo, name="x", port=first.port)

        assert await close_code(old_client) == 1012  # service restart
        assert old_client.close_reason == "server restarting"
    assert second.port == first.port
    assert not first.serving
    assert [h.name for h in wslab.running()] == ["x"]
    async with connect(second.url) as new_client:
        await new_client.send("again")
        assert await recv(new_client) == "Echo: again"


async def test_serving_under_the_same_name_stops_the_old_server() -> None:
    old = await wslab.serve(echo, name="x")
    async with connect(old.url) as old_client:
        new = await wslab.serve(echo, name="x")  # port 0: a new port
        assert await close_code(old_client) == 1012
    assert new.port != old.port
    assert await refuses_connections(old.port)
    assert wslab.running() == [new]
    async with connect(new.url) as client:
        await client.send("hi")
        assert await recv(client) == "Echo: hi"


async def test_stop_all_leaves_no_listening_socket() -> None:
    handles = [await wslab.serve(echo, name=f"s{i}") for i in range(3)]
    assert not any([await refuses_connections(h.port) for h in handles])

    assert await wslab.stop_all() == 3

    assert wslab.running() == []
    for handle in handles:
        assert await refuses_connections(handle.port), f"port {handle.port} still accepts connections"
        assert not handle.serving
    assert await wslab.stop_all() == 0


async def test_stop_by_name() -> None:
    handle = await wslab.serve(echo, name="named")
    assert await wslab.stop("named") is True
    assert await refuses_connections(handle.port)
    assert await wslab.stop("named") is False


async def test_stopping_a_server_closes_its_clients_with_1001() -> None:
    handle = await wslab.serve(echo)
    async with connect(handle.url) as ws:
        await handle.stop()
        assert await close_code(ws) == 1001  # going away
        assert ws.close_reason == "server shutting down"
    assert wslab.running() == []


async def test_stopping_an_old_handle_does_not_unregister_its_replacement() -> None:
    old = await wslab.serve(echo, name="x")
    new = await wslab.serve(echo, name="x")
    await old.stop()  # already stopped by the restart; must not forget the new one
    assert wslab.running() == [new]


# --- bad input and broken handlers ---------------------------------------------------


async def test_bad_input_closes_only_that_connection_without_tracebacks(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="websockets")
    caplog.set_level(logging.DEBUG, logger="wslab")
    handle = await wslab.serve(echo, max_size=1024)
    async with connect(handle.url) as bystander:
        async with connect(handle.url) as big:
            await big.send("x" * 2000)
            assert await close_code(big) == 1009  # message too big

        async with connect(handle.url) as garbled:
            await garbled.send(b"\xff\xfe", text=True)  # a text frame that is not UTF-8
            assert await close_code(garbled) == 1007  # invalid frame payload data

        await bystander.send("still here")
        assert await recv(bystander) == "Echo: still here"

    await wait_for(lambda: handle.connections == 0, what="all connections closed")
    assert any(r.name.startswith("wslab") for r in caplog.records), "the capture saw the server's log"
    with_traceback = [r.getMessage() for r in caplog.records if r.exc_info]
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert with_traceback == []
    assert errors == []
    assert "Traceback" not in caplog.text


async def fragile(connection: ServerConnection) -> None:
    async for message in connection:
        if message == "boom":
            raise RuntimeError("boom")
        await connection.send(f"ok: {message}")


async def test_a_failing_handler_closes_that_connection_with_1011() -> None:
    log = EventLog()
    handle = await wslab.serve(fragile, log=log)
    async with connect(handle.url) as bystander, connect(handle.url) as victim:
        await victim.send("boom")
        assert await close_code(victim) == 1011  # internal error
        assert victim.close_reason == "internal error"

        await bystander.send("fine?")
        assert await recv(bystander) == "ok: fine?"

    victim_peer = f"127.0.0.1:{victim.local_address[1]}"
    notes = [(e.peer, e.text) for e in log if e.direction is LogKind.NOTE]
    assert notes == [(victim_peer, "handler failed: RuntimeError: boom")]
    await wait_for(lambda: log.open_connections == 0, what="both disconnects recorded")
    closes = {e.peer: (e.code, e.text) for e in log if e.direction is LogKind.DISCONNECT}
    assert closes[victim_peer] == (1011, "by server")


async def test_a_handler_that_returns_closes_its_connection_normally() -> None:
    async def one_reply(connection: ServerConnection) -> None:
        await connection.send(f"got {await connection.recv()}")

    handle = await wslab.serve(one_reply)
    async with connect(handle.url) as ws:
        await ws.send("x")
        assert await recv(ws) == "got x"
        assert await close_code(ws) == 1000


# --- the event log --------------------------------------------------------------------


async def test_the_event_log_records_a_whole_conversation() -> None:
    log = EventLog()
    handle = await wslab.serve(echo, log=log)
    async with connect(handle.url + "chat") as ws:
        peer = f"127.0.0.1:{ws.local_address[1]}"
        await ws.send("hi")
        assert await recv(ws) == "Echo: hi"
        await ws.send(b"\x00" * 7)
        assert await recv(ws) == b"\x00" * 7
    await wait_for(lambda: log.open_connections == 0, what="disconnect recorded")

    events = list(log)
    assert {e.peer for e in events} == {peer}
    assert [e.direction for e in events] == [
        LogKind.CONNECT,
        LogKind.RECEIVED,
        LogKind.SENT,
        LogKind.RECEIVED,
        LogKind.SENT,
        LogKind.DISCONNECT,
    ]
    assert events[0].text == "/chat"
    assert log.texts(LogKind.RECEIVED) == ["hi"]
    assert log.texts(LogKind.SENT) == ["Echo: hi"]
    assert [(e.size, e.text) for e in events[3:5]] == [(7, None), (7, None)]
    assert (events[-1].code, events[-1].text) == (1000, "by client")
    assert events[-1].describe() == "disconnected by client, 1000 (normal closure)"
    assert log.total == 6


async def test_the_event_log_records_a_server_side_close() -> None:
    log = EventLog()
    handle = await wslab.serve(echo, log=log)
    async with connect(handle.url) as ws:
        await ws.send("hi")
        assert await recv(ws) == "Echo: hi"
        await handle.stop()
        assert await close_code(ws) == 1001
    last = list(log)[-1]
    assert last.direction is LogKind.DISCONNECT
    assert (last.code, last.reason, last.text) == (1001, "server shutting down", "by server")


async def test_the_handler_gets_a_recording_connection_only_when_logging() -> None:
    kinds: list[type] = []

    async def spy(connection: ServerConnection) -> None:
        kinds.append(type(connection))
        await connection.send("hello")

    for log in (None, EventLog()):
        handle = await wslab.serve(spy, log=log)
        async with connect(handle.url) as ws:
            assert await recv(ws) == "hello"
    assert kinds == [ServerConnection, RecordedConnection]


async def test_the_connection_count_goes_up_and_back_down() -> None:
    log = EventLog()
    handle = await wslab.serve(echo, log=log)
    assert handle.connections == 0
    async with connect(handle.url) as first:
        await wait_for(lambda: handle.connections == 1, what="one connection")
        async with connect(handle.url):
            await wait_for(lambda: handle.connections == 2, what="two connections")
            assert log.open_connections == 2
            assert "2 connection(s)" in repr(handle)
        await wait_for(lambda: handle.connections == 1, what="back to one")
        await first.send("still counted")
        assert await recv(first) == "Echo: still counted"
    await wait_for(lambda: handle.connections == 0, what="back to zero")
    await wait_for(lambda: log.open_connections == 0, what="log agrees")
