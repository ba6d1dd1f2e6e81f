"""``python -m wslab serve chat`` and ``python -m wslab client``: real processes, real sockets.

Every wait reads a process's output line by line with a deadline; nothing sleeps to let
something happen.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import signal

import pytest
from helpers import (
    TIMEOUT,
    Wslab,
    close_code,
    quick_delays,
    refused_port,
    serve_chat,
    wait_for,
)
from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import ServerConnection
from websockets.http11 import Request

import wslab
from wslab.brokers import MemoryBroker
from wslab.cli.main import _chat_broker, build_parser
from wslab.clients.chat import ChatClient
from wslab.core.actions import OverflowPolicy
from wslab.servers.chat import ChatServer


async def start(processes: list[Wslab], *args: str) -> Wslab:
    process = await Wslab.start(*args)
    processes.append(process)
    return process


async def chat_client(processes: list[Wslab], url: str, name: str) -> Wslab:
    """A CLI client that has joined: its handshake succeeded and it saw its own join."""
    client = await start(processes, "client", url, "--name", name)
    await client.expect(rf"^connected to {re.escape(url)}: 101 Switching Protocols$", starting=True)
    await client.expect(rf"^>>> {name} joined the chat$")
    return client


async def plain_user(url: str, name: str) -> ClientConnection:
    """A user in the original tutorial's dialect: the first message is the name."""
    connection = await connect(url)
    await connection.send(name)
    assert await asyncio.wait_for(connection.recv(), TIMEOUT) == f"Welcome, {name}!"
    return connection


async def read_until(connection: ClientConnection, line: str) -> None:
    while await asyncio.wait_for(connection.recv(), TIMEOUT) != line:
        pass


# --- serve chat ---------------------------------------------------------------------------


async def test_serve_chat_stops_cleanly_on_sigterm(processes: list[Wslab]) -> None:
    server, url = await serve_chat(processes)
    async with connect(url) as ws:
        await ws.send(json.dumps({"type": "hello", "name": "alice"}))
        welcome = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
        assert welcome["type"] == "welcome"
        assert welcome["name"] == "alice"

        server.process.send_signal(signal.SIGTERM)

        assert await close_code(ws) == 1001  # going away
    code, out, err = await server.finish()

    assert code == 0
    assert "Traceback" not in err
    assert re.search(r"127\.0\.0\.1:\d+ connected", err), err
    assert re.search(r"127\.0\.0\.1:\d+ disconnected by server, 1001 \(going away\)", err), err
    assert "stopped by SIGTERM" in err
    assert out == [f"chat server listening on {url} (Ctrl-C to stop)"]


async def test_serve_chat_options_reach_the_server(processes: list[Wslab]) -> None:
    server, url = await serve_chat(processes, "--history", "2", "--overflow", "drop", "--max-backlog", "4096")
    carol = await plain_user(url, "carol")  # seq 1: carol joined
    for text in ("m1", "m2", "m3"):  # seq 2, 3, 4
        await carol.send(text)
    async with connect(url) as late:
        # Resuming from the very start: history keeps only the last 2 events (seq 3 and 4).
        await late.send(json.dumps({"type": "hello", "name": "dave", "resume": 0}))
        kinds = []
        while not kinds or kinds[-1]["type"] != "live":
            kinds.append(json.loads(await asyncio.wait_for(late.recv(), TIMEOUT)))
    await carol.close()
    server.process.send_signal(signal.SIGTERM)
    code, _, err = await server.finish()

    lost = next(message for message in kinds if message["type"] == "history-lost")
    assert (lost["first"], lost["last"]) == (1, 2)
    assert [m["text"] for m in kinds if m["type"] == "chat"] == ["m2", "m3"]
    assert "above 4096 bytes of backlog a client is skipped (drop)" in err
    assert code == 0


def test_serve_options_belong_to_their_server() -> None:
    parser = build_parser()
    chat = parser.parse_args(["serve", "chat", "--history", "5", "--overflow", "drop", "--max-backlog", "10"])
    assert (chat.server, chat.history, chat.overflow, chat.max_backlog) == ("chat", 5, "drop", 10)
    assert isinstance(_chat_broker(chat), MemoryBroker)  # where lesson 06's --broker URL will go
    assert OverflowPolicy(chat.overflow) is OverflowPolicy.DROP

    echo = parser.parse_args(["serve", "echo", "--host", "0.0.0.0", "--port", "0", "--max-size", "10", "-v"])
    assert (echo.server, echo.host, echo.port, echo.max_size, echo.verbose) == (
        "echo",
        "0.0.0.0",
        0,
        10,
        True,
    )
    with pytest.raises(SystemExit):
        parser.parse_args(["serve", "echo", "--history", "5"])  # a chat option
    with pytest.raises(SystemExit):
        parser.parse_args(["serve", "chat", "--history", "0"])
    assert (chat.room, parser.parse_args(["serve", "chat", "--room", "physics"]).room) == ("lobby", "physics")
    for bad_room in ("", "  ", "x" * 65):
        with pytest.raises(SystemExit):
            parser.parse_args(["serve", "chat", "--room", bad_room])


# --- client -------------------------------------------------------------------------------


async def test_two_terminals_chat_and_quit(processes: list[Wslab]) -> None:
    _, url = await serve_chat(processes)
    bob = await chat_client(processes, url, "bob")
    alice = await chat_client(processes, url, "alice")
    await bob.expect(r"^>>> alice joined the chat$")

    await alice.type("hello bob")
    await bob.expect(r"^\[alice\] hello bob$")
    await alice.type("/quit")
    code, out, err = await alice.finish()

    assert code == 0, err
    assert "[alice] hello bob" not in out  # your own messages are not echoed back
    assert "Traceback" not in err
    await bob.expect(r"^>>> alice left the chat$")


async def test_end_of_input_delivers_what_was_typed_then_leaves(processes: list[Wslab]) -> None:
    _, url = await serve_chat(processes)
    async with await plain_user(url, "carol") as carol:
        alice = await start(processes, "client", url, "--name", "alice")
        await alice.type("typed before the connection was up")
        alice.close_stdin()  # Ctrl-D, or the end of a pipe
        code, out, err = await alice.finish()

        assert code == 0, err
        assert out[0] == f"connected to {url}: 101 Switching Protocols"
        assert not any("not delivered" in line for line in out)
        assert "Traceback" not in err
        await read_until(carol, "[alice] typed before the connection was up")
        await read_until(carol, ">>> alice left the chat")


async def test_ctrl_c_leaves_with_a_close_frame(processes: list[Wslab]) -> None:
    server, url = await serve_chat(processes)
    alice = await chat_client(processes, url, "alice")
    alice.process.send_signal(signal.SIGINT)
    code, _, err = await alice.finish()

    assert code == 130
    assert "Traceback" not in err
    server.process.send_signal(signal.SIGTERM)
    _, _, server_log = await server.finish()
    assert re.search(r"disconnected by client, 1000 \(normal closure\)", server_log), server_log


async def test_a_taken_name_exits_1_with_the_servers_reason(processes: list[Wslab]) -> None:
    _, url = await serve_chat(processes)
    async with await plain_user(url, "alice"):
        taken = await start(processes, "client", url, "--name", "ALICE")
        code, out, err = await taken.finish()  # stdin still open: the refusal alone ends it

    assert code == 1
    assert "wslab: closed by server: 1008 the username 'ALICE' is already taken" in err
    assert "Traceback" not in err
    assert out == [f"connected to {url}: 101 Switching Protocols"]


async def test_a_refused_connection_exits_1_with_an_explanation(processes: list[Wslab]) -> None:
    with refused_port() as port:
        client = await start(processes, "client", f"ws://127.0.0.1:{port}/", "--name", "alice")
        code, out, err = await client.finish()

    assert code == 1
    assert "wslab: connection refused: is the server running" in err
    assert "Traceback" not in err
    assert out == []


async def test_input_that_ends_at_once_still_hears_of_a_refused_connection(processes: list[Wslab]) -> None:
    # `wslab client URL < /dev/null`: end of input arrives before the connection attempt fails
    with refused_port() as port:
        client = await start(processes, "client", f"ws://127.0.0.1:{port}/", "--name", "alice")
        client.close_stdin()
        code, out, err = await client.finish()

    assert code == 1
    assert "wslab: connection refused: is the server running" in err
    assert out == []


async def test_a_rejected_handshake_exits_1_with_the_status(processes: list[Wslab]) -> None:
    async def handler(connection: ServerConnection) -> None:
        raise AssertionError("the handshake should have been refused")

    def forbid(connection: ServerConnection, request: Request):  # type: ignore[no-untyped-def]
        return connection.respond(403, "origin not allowed\n")

    handle = await wslab.serve(handler, name="forbidding", process_request=forbid)
    client = await start(processes, "client", handle.url, "--name", "alice")
    code, out, err = await client.finish()

    assert code == 1
    assert "wslab: server rejected the WebSocket handshake: HTTP 403 Forbidden (origin not allowed)" in err
    assert "Traceback" not in err
    assert out == []


async def test_a_client_survives_a_server_restart(processes: list[Wslab]) -> None:
    server, url = await serve_chat(processes)
    port = url.rsplit(":", 1)[1].rstrip("/")
    alice = await chat_client(processes, url, "alice")  # seq 1
    async with await plain_user(url, "carol") as carol:  # seq 2
        for text in ("one", "two", "three"):  # seq 3, 4, 5
            await carol.send(text)
        await alice.expect(r"^\[carol\] three$")

        server.process.send_signal(signal.SIGTERM)
        assert await close_code(carol) == 1001
    await alice.expect(r"^\* connection lost \(code 1001: server shutting down\), reconnecting$")
    assert (await server.finish())[0] == 0

    # A new process on the same port: its in-memory broker numbers the room from 0 again.
    await serve_chat(processes, port=int(port))
    await alice.expect(r"^\* reconnected, resumed after seq 5$")
    await alice.expect(r"^\* the room's numbering went back to seq 0$")
    await alice.expect(r"^\* the room.s history was reset .*: messages after seq 5 that had not reached you")
    await alice.expect(r"^>>> alice joined the chat$")  # seq 1 of the new epoch: not a duplicate
    async with await plain_user(url, "dave") as dave:
        await dave.send("after the restart")
        await alice.expect(r"^\[dave\] after the restart$")
    await alice.type("/quit")
    code, _, err = await alice.finish()
    assert code == 0, err
    assert "Traceback" not in err


# --- ChatClient: what the terminal client relies on ------------------------------------------


async def test_chat_client_starts_a_new_epoch_when_the_servers_numbering_restarts() -> None:
    first = await ChatServer().serve(name="epoch-1")
    alice = ChatClient(first.url, "alice", delays=quick_delays).start()
    try:
        await wait_for(lambda: alice.live, what="alice is live")
        carol = await plain_user(first.url, "carol")
        for text in ("one", "two"):
            await carol.send(text)
        await wait_for(lambda: alice.texts(author="carol") == ["one", "two"], what="alice has carol's")
        assert alice.tracker.last == 4
        await first.stop()

        second = await ChatServer().serve(name="epoch-2", port=first.port)  # a fresh broker
        await wait_for(lambda: alice.connects == 2 and alice.live, what="alice is back")
        carol = await plain_user(second.url, "carol")
        await carol.send("after")
        await wait_for(lambda: "after" in alice.texts(), what="alice has the new message")

        assert "messages after seq 4 that had not reached you are gone" in alice.notices[-1]
        assert alice.lost_after_reset == [4]
        assert alice.resumed_after == 4
        assert alice.tracker.duplicates == 0
        assert alice.tracker.last == 3  # alice joined, carol joined, "after"
        assert alice.responses == [(101, "Switching Protocols")] * 2
        await carol.close()
    finally:
        await asyncio.wait_for(alice.stop(), TIMEOUT)


async def test_chat_client_stops_while_it_waits_to_reconnect() -> None:
    handle = await ChatServer().serve(name="gone-soon")
    alice = ChatClient(handle.url, "alice", delays=lambda: itertools.repeat(60.0)).start()
    await wait_for(lambda: alice.live, what="alice is live")
    await handle.stop()
    await wait_for(lambda: alice.closes, what="alice lost the connection")

    await asyncio.wait_for(alice.stop(), TIMEOUT)  # does not wait out the 60 s delay

    assert alice.closes == [(1001, "server shutting down")]
