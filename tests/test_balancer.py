"""Lesson 08's load balancer and X-Forwarded-For: real WebSocket connections on loopback.

Clients connect from other loopback addresses (127.0.0.5, 127.0.0.6: Linux routes all of
127/8 to this machine) so that the real client and the proxy have different addresses.
"""

from __future__ import annotations

import asyncio
import json
import sys

import pytest
from helpers import TIMEOUT, refused_port, wait_for
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import InvalidStatus

import wslab
from wslab.core.forwarded import client_address
from wslab.servers.balancer import Balancer, add_forwarded_for

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="clients bind 127.0.0.5: Linux only")
TRUSTED = {"127.0.0.1"}


async def whoami(connection: ServerConnection) -> None:
    assert connection.request is not None
    peer = connection.remote_address[0]
    forwarded = connection.request.headers.get("X-Forwarded-For")
    answer = {
        "peer": peer,
        "forwarded": forwarded,
        "client": client_address(peer, forwarded, trusted=TRUSTED),
    }
    await connection.send(json.dumps(answer))
    await connection.wait_closed()


async def _ask(url: str, source: str, **options: object) -> dict[str, str]:
    async with connect(url, local_addr=(source, 0), **options) as ws:  # type: ignore[arg-type]
        return json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))


def test_client_address_believes_only_trusted_proxies() -> None:
    assert client_address("127.0.0.1", "203.0.113.7", trusted=TRUSTED) == "203.0.113.7"
    assert client_address("198.51.100.2", "203.0.113.7", trusted=TRUSTED) == "198.51.100.2"  # forged
    assert client_address("127.0.0.1", None, trusted=TRUSTED) == "127.0.0.1"
    # A chain: a forged first entry, then what our own proxy appended.
    assert client_address("127.0.0.1", "6.6.6.6, 203.0.113.7", trusted=TRUSTED) == "203.0.113.7"
    assert client_address("127.0.0.1", "203.0.113.7, 127.0.0.1", trusted=TRUSTED) == "203.0.113.7"
    assert client_address("10.0.0.9", "6.6.6.6, 203.0.113.7", trusted={"*"}) == "6.6.6.6"


def test_add_forwarded_for_appends_to_the_chain() -> None:
    head = b"GET / HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 6.6.6.6\r\nUpgrade: websocket\r\n\r\n"
    assert add_forwarded_for(head, "127.0.0.5") == (
        b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
        b"X-Forwarded-For: 6.6.6.6, 127.0.0.5\r\nX-Forwarded-Proto: http\r\n\r\n"
    )


async def test_the_server_learns_the_real_client_through_the_balancer_only() -> None:
    server = await wslab.serve(whoami)
    balancer = await Balancer.start([(server.host, server.port)])
    through = await _ask(balancer.url, "127.0.0.5")
    assert through == {"peer": "127.0.0.1", "forwarded": "127.0.0.5", "client": "127.0.0.5"}
    forged = await _ask(server.url, "127.0.0.6", additional_headers={"X-Forwarded-For": "203.0.113.7"})
    assert forged == {"peer": "127.0.0.6", "forwarded": "203.0.113.7", "client": "127.0.0.6"}


async def test_round_robin_skips_a_backend_that_refuses_and_502_when_none_is_left() -> None:
    first = await wslab.serve(whoami, name="first")
    second = await wslab.serve(whoami, name="second")
    with refused_port() as down:  # held, not listening: refused, and no other program's meanwhile
        balancer = await Balancer.start(
            [(first.host, first.port), ("127.0.0.1", down), (second.host, second.port)]
        )
        for _ in range(6):
            await _ask(balancer.url, "127.0.0.5")
    assert balancer.routed == {f"127.0.0.1:{first.port}": 3, f"127.0.0.1:{second.port}": 3}
    assert balancer.skipped == [f"127.0.0.1:{down}"] * 3  # every other turn
    await first.stop()
    await second.stop()
    with pytest.raises(InvalidStatus) as refused:
        await _ask(balancer.url, "127.0.0.5")
    assert refused.value.response.status_code == 502
    await wait_for(lambda: balancer.connections == 0)
