"""``python -m wslab`` as a learner runs it: a real process, real signals, real sockets."""

from __future__ import annotations

import asyncio
import re
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from helpers import (  # noqa: F401  (stop_servers: autouse fixture)
    TIMEOUT,
    close_code,
    refused_port,
    stop_servers,
)
from websockets.asyncio.client import connect

import wslab
from wslab.servers import echo

ROOT = Path(__file__).resolve().parent.parent
LISTENING = re.compile(r"^echo server listening on (ws://127\.0\.0\.1:(\d+)/) ")


async def run_wslab(*args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "wslab",
        *args,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def finish(process: asyncio.subprocess.Process) -> tuple[int, str, str]:
    """Wait for ``process`` to exit; its return code, stdout and stderr."""
    out, err = await asyncio.wait_for(process.communicate(), 10)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


@pytest.fixture
async def echo_process() -> AsyncIterator[tuple[asyncio.subprocess.Process, str]]:
    """``python -m wslab serve echo`` on a free port, and the URL it printed."""
    process = await run_wslab("serve", "echo", "--host", "127.0.0.1", "--port", "0")
    try:
        assert process.stdout is not None
        first = (await asyncio.wait_for(process.stdout.readline(), 15)).decode()
        match = LISTENING.match(first)
        assert match, f"unexpected first line {first!r}"
        yield process, match.group(1)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_serve_echoes_and_stops_cleanly_on_sigterm(
    echo_process: tuple[asyncio.subprocess.Process, str],
) -> None:
    process, url = echo_process
    async with connect(url) as ws:
        await ws.send("hello")
        assert await asyncio.wait_for(ws.recv(), TIMEOUT) == "Echo: hello"

        process.send_signal(signal.SIGTERM)

        assert await close_code(ws) == 1001  # going away
    code, out, err = await finish(process)

    assert code == 0
    assert "Traceback" not in err
    assert re.search(r"127\.0\.0\.1:\d+ connected", err), err
    assert re.search(r"127\.0\.0\.1:\d+ disconnected by server, 1001 \(going away\)", err), err
    assert "stopped by SIGTERM" in err
    assert out == ""  # nothing after the "listening" line


async def test_serve_on_a_port_taken_by_another_process_explains_itself() -> None:
    handle = await wslab.serve(echo, name="squatter")
    process = await run_wslab("serve", "echo", "--host", "127.0.0.1", "--port", str(handle.port))
    code, out, err = await finish(process)

    assert code == 1
    assert "address already in use" in err
    assert "Traceback" not in err
    assert "listening" not in out


async def test_send_prints_one_reply_per_message() -> None:
    handle = await wslab.serve(echo)
    process = await run_wslab("send", handle.url, "hello", "world")
    code, out, err = await finish(process)

    assert code == 0, err
    assert out.splitlines() == ["Echo: hello", "Echo: world"]
    assert "Traceback" not in err


async def test_send_to_a_closed_port_exits_1_with_an_explanation() -> None:
    with refused_port() as port:
        process = await run_wslab("send", f"ws://127.0.0.1:{port}/", "hello")
        code, out, err = await finish(process)

    assert code == 1
    assert "connection refused" in err
    assert "Traceback" not in err
    assert out == ""


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
