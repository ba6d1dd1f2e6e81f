"""``python -m wslab`` as a learner runs it: a real process, real signals, real sockets."""

from __future__ import annotations

import asyncio
import re
import signal

import pytest
from helpers import (
    TIMEOUT,
    Wslab,
    close_code,
    refused_port,
)
from websockets.asyncio.client import connect

import wslab
from wslab.servers import echo

LISTENING = r"^echo server listening on (ws://127\.0\.0\.1:(\d+)/) "


@pytest.fixture
async def echo_process(processes: list[Wslab]) -> tuple[Wslab, str]:
    """``python -m wslab serve echo`` on port 0, and the URL it printed."""
    process = await Wslab.start("serve", "echo", "--host", "127.0.0.1", "--port", "0")
    processes.append(process)
    match = await process.expect(LISTENING, starting=True)
    return process, match.group(1)


async def run_wslab(processes: list[Wslab], *args: str) -> Wslab:
    process = await Wslab.start(*args)
    processes.append(process)
    return process


async def test_serve_echoes_and_stops_cleanly_on_sigterm(echo_process: tuple[Wslab, str]) -> None:
    process, url = echo_process
    async with connect(url) as ws:
        await ws.send("hello")
        assert await asyncio.wait_for(ws.recv(), TIMEOUT) == "Echo: hello"

        process.process.send_signal(signal.SIGTERM)

        assert await close_code(ws) == 1001  # going away
    code, out, err = await process.finish()

    assert code == 0
    assert "Traceback" not in err
    assert re.search(r"127\.0\.0\.1:\d+ connected", err), err
    assert re.search(r"127\.0\.0\.1:\d+ disconnected by server, 1001 \(going away\)", err), err
    assert "stopped by SIGTERM" in err
    assert out[1:] == []  # nothing after the "listening" line


async def test_serve_on_a_port_taken_by_another_process_explains_itself(processes: list[Wslab]) -> None:
    handle = await wslab.serve(echo, name="squatter")
    process = await run_wslab(processes, "serve", "echo", "--host", "127.0.0.1", "--port", str(handle.port))
    code, out, err = await process.finish()

    assert code == 1
    assert "address already in use" in err
    assert "Traceback" not in err
    assert not any("listening" in line for line in out)


async def test_send_prints_one_reply_per_message(processes: list[Wslab]) -> None:
    handle = await wslab.serve(echo)
    process = await run_wslab(processes, "send", handle.url, "hello", "world")
    code, out, err = await process.finish()

    assert code == 0, err
    assert out == ["Echo: hello", "Echo: world"]
    assert "Traceback" not in err


async def test_send_to_a_closed_port_exits_1_with_an_explanation(processes: list[Wslab]) -> None:
    with refused_port() as port:
        process = await run_wslab(processes, "send", f"ws://127.0.0.1:{port}/", "hello")
        code, out, err = await process.finish()

    assert code == 1
    assert "connection refused" in err
    assert "Traceback" not in err
    assert out == []


def test_each_server_keeps_its_own_defaults() -> None:
    """serve web's public-friendly defaults must not leak into serve echo or serve chat."""
    from wslab.cli.main import build_parser

    parser = build_parser()
    for server in ("echo", "chat"):
        args = parser.parse_args(["serve", server])
        assert (args.host, args.max_size) == ("127.0.0.1", 2**20), server
    web = parser.parse_args(["serve", "web"])
    assert (web.host, web.max_size) == (None, 4096)


@pytest.mark.parametrize(("compression", "negotiated"), [("deflate", True), (None, False)])
async def test_serve_chat_compression_is_a_choice(compression: str | None, negotiated: bool) -> None:
    """``--compression none`` (lesson 08) refuses permessage-deflate even when a client offers it."""
    from wslab.services import ChatProcess

    server = await ChatProcess("", server_id=f"z-{compression}", compression=compression).start()
    try:
        assert f"--compression {compression or 'none'}" in " ".join(server.command())
        async with connect(server.url) as ws:  # a websockets client offers permessage-deflate
            extensions = ws.response.headers.get("Sec-WebSocket-Extensions", "")
        assert extensions.startswith("permessage-deflate") is negotiated, extensions
    finally:
        await server.stop()
