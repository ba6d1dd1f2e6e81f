"""``python -m wslab serve chat --broker URL`` started before its broker: waits, says so, stays stoppable.

Real processes and a real Redis, or Kafka (tansu); every wait reads a process's output line by
line with a deadline.
"""

from __future__ import annotations

import asyncio
import re
import signal
import socket
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from helpers import PROCESS_TIMEOUT, TIMEOUT, unavailable
from websockets.asyncio.client import connect

from wslab.services import start_services
from wslab.services.process import ServiceUnavailable

ROOT = Path(__file__).resolve().parent.parent
RETRY = r"{kind} at 127\.0\.0\.1:{port} unavailable; retrying in (\d+\.\d) s$"
LISTENING = r"^chat server listening on (ws://127\.0\.0\.1:\d+/) \(Ctrl-C to stop\)$"


async def read_until(stream: asyncio.StreamReader, pattern: str, timeout: float = TIMEOUT) -> re.Match[str]:
    """Read ``stream`` line by line until one matches ``pattern`` (searched); fail on timeout or EOF."""
    seen: list[str] = []
    async with asyncio.timeout(timeout):
        while raw := await stream.readline():
            line = raw.decode().rstrip("\n")
            seen.append(line)
            if match := re.search(pattern, line):
                return match
    raise AssertionError(f"output ended before {pattern!r}: {seen!r}")


@pytest.fixture
def closed_port() -> Iterator[socket.socket]:
    """A port of 127.0.0.1 held by a socket that is bound but not listening: connecting is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock


@pytest.fixture(params=["redis", "kafka"])
def kind(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
async def serve_chat(closed_port: socket.socket, kind: str) -> AsyncIterator[asyncio.subprocess.Process]:
    port = closed_port.getsockname()[1]
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "wslab", "serve", "chat", "--port", "0"),
        *("--broker", f"{kind}://127.0.0.1:{port}"),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        yield process
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_serve_chat_waits_for_its_broker_with_backoff_and_stops_on_sigterm(
    closed_port: socket.socket, serve_chat: asyncio.subprocess.Process, kind: str
) -> None:
    assert serve_chat.stderr is not None
    retry = RETRY.format(kind=kind, port=closed_port.getsockname()[1])
    delays = [float((await read_until(serve_chat.stderr, retry)).group(1)) for _ in range(3)]
    assert delays[0] < delays[1] < delays[2]  # backing off, not hammering the broker

    serve_chat.send_signal(signal.SIGTERM)

    assert await asyncio.wait_for(serve_chat.wait(), PROCESS_TIMEOUT) == 0
    rest = (await serve_chat.stderr.read()).decode()
    assert "stopped by SIGTERM" in rest and "Traceback" not in rest


async def test_serve_chat_serves_once_its_broker_comes_up(
    closed_port: socket.socket, serve_chat: asyncio.subprocess.Process, kind: str
) -> None:
    assert serve_chat.stderr is not None and serve_chat.stdout is not None
    port = closed_port.getsockname()[1]
    await read_until(serve_chat.stderr, RETRY.format(kind=kind, port=port))

    closed_port.close()  # the port is free again: the broker takes it
    try:
        services = await start_services(
            redis=kind == "redis",
            nats=False,
            kafka=kind == "kafka",
            required=True,
            register=False,
            **{f"{kind}_port": port},
        )
    except ServiceUnavailable as exc:
        unavailable(str(exc))
    try:
        if getattr(services, kind) is None:
            unavailable(f"{kind.upper()}_URL is set: the test cannot start it on a port of its choosing")
        url = (await read_until(serve_chat.stdout, LISTENING, timeout=PROCESS_TIMEOUT)).group(1)
        async with connect(url) as user:
            await user.send("alice")
            assert await asyncio.wait_for(user.recv(), TIMEOUT) == "Welcome, alice!"
        serve_chat.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(serve_chat.wait(), PROCESS_TIMEOUT) == 0
    finally:
        await services.stop()
