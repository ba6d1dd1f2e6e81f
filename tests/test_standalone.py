"""Lesson 08's standalone server: ``python -m wslab serve chat`` as a real process under SIGTERM.

Every client gets the stop code (1001, or 1012 for a restart), the process exits in bounded
time even with a client that never finishes the closing handshake, and its log is one JSON
object per line. Waits read the process's output with deadlines.
"""

from __future__ import annotations

import asyncio
import json
import signal

from helpers import TIMEOUT, Wslab, close_code, serve_chat
from websockets.asyncio.client import ClientConnection, connect
from websockets.uri import parse_uri

#: The close handshake websockets waits for by default (close_timeout): what a stuck
#: client would cost a shutdown without a drain timeout.
CLOSE_TIMEOUT = 10.0


async def _join(url: str, name: str) -> ClientConnection:
    ws = await connect(url)
    await ws.send(json.dumps({"type": "hello", "name": name}))
    assert json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))["type"] == "welcome"
    return ws


async def _stuck_client(url: str) -> asyncio.StreamWriter:
    """A client that completes the opening handshake, then never reads again."""
    uri = parse_uri(url)
    host, port = uri.host, uri.port
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(
        f"GET / HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    assert (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)).startswith(b"HTTP/1.1 101")
    return writer


async def test_sigterm_closes_every_client_with_1001_and_exits_within_the_drain_timeout(
    processes: list[Wslab],
) -> None:
    server, url = await serve_chat(processes, "--log-format", "json", "--drain-timeout", "1")
    clients = [await _join(url, name) for name in ("ana", "ben", "cleo")]
    stuck = await _stuck_client(url)
    loop = asyncio.get_running_loop()
    sent = loop.time()
    server.process.send_signal(signal.SIGTERM)
    assert [await close_code(ws) for ws in clients] == [1001, 1001, 1001]
    code, _, err = await server.finish(timeout=CLOSE_TIMEOUT + TIMEOUT)
    took = loop.time() - sent
    stuck.close()
    assert code == 0
    # A drain timeout of 1 s: without one, the stuck client would hold the exit CLOSE_TIMEOUT.
    assert took < CLOSE_TIMEOUT, f"exited {took:.1f} s after SIGTERM: the drain timeout did not bound it"
    records = [json.loads(line) for line in err.splitlines()]  # every line is one JSON object
    assert "Traceback" not in err
    assert any("dropping 1 connection(s) still closing" in r["message"] for r in records), err
    stopped = [r for r in records if r.get("event") == "stopped"]
    assert stopped and stopped[0]["code"] == 1001 and stopped[0]["signal"] == "SIGTERM"
    disconnects = [r for r in records if r.get("event") == "disconnect"]
    assert sorted(r.get("code") for r in disconnects).count(1001) >= 3


async def test_a_restart_stop_code_sends_1012_and_key_value_logs(processes: list[Wslab]) -> None:
    server, url = await serve_chat(processes, "--stop-code", "1012", "--log-format", "kv")
    ws = await _join(url, "ana")
    server.process.send_signal(signal.SIGTERM)
    assert await close_code(ws) == 1012
    assert ws.close_reason == "server restarting"
    code, _, err = await server.finish()
    assert code == 0
    last = err.splitlines()[-1]
    assert "level=info" in last and "event=stopped" in last and "code=1012" in last, last
