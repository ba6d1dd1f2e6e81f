"""Lesson 08's nginx configuration, against a real nginx (Debian's package in CI).

nginx runs as a child process (``daemon off``) with its files in a temporary directory,
on a free port of 127.0.0.1. Without nginx these tests skip and say why, unless CI=true,
where they fail: CI must test the proxied path (``make test`` installs nginx as root).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import pytest
from helpers import MS, TIMEOUT, assert_stays, close_code
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection
from websockets.protocol import State

import wslab
from wslab.core.forwarded import client_address
from wslab.services.nginx import NginxServer, find_nginx, nginx_config

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="clients bind 127.0.0.5: Linux only")
#: nginx's proxy_read_timeout in the tests: whole seconds (nginx reads "1s", not "0.5s").
READ_TIMEOUT = max(1, round(1_000 * MS))


@pytest.fixture
def nginx() -> Path:
    found = find_nginx()
    if found is None:
        reason = "no nginx on this machine (apt-get install nginx)"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"CI must test the proxied path: {reason}", pytrace=False)
        pytest.skip(reason)
    return found


async def echo_who(connection: ServerConnection) -> None:
    """Says who connected (as the server sees it), then echoes until the client leaves."""
    assert connection.request is not None
    headers = connection.request.headers
    peer = connection.remote_address[0]
    forwarded = headers.get("X-Forwarded-For")
    client = client_address(peer, forwarded, trusted={"127.0.0.1"})
    await connection.send(
        json.dumps({"peer": peer, "client": client, "proto": headers.get("X-Forwarded-Proto")})
    )
    async for message in connection:
        await connection.send(message)


async def _nginx_in_front(binary: Path, *, read_timeout: float, ping_interval: float | None) -> NginxServer:
    server = await wslab.serve(echo_who, ping_interval=ping_interval)
    return await NginxServer(
        binary, nginx_config([(server.host, server.port)], read_timeout=read_timeout)
    ).start()


def test_the_configuration_sets_what_websockets_need() -> None:
    http = nginx_config([("127.0.0.1", 9001), ("127.0.0.1", 9002)], read_timeout=60)
    for line in (
        "map $http_upgrade $connection_upgrade {",
        "proxy_http_version 1.1;",
        "proxy_set_header Upgrade $http_upgrade;",
        "proxy_set_header Connection $connection_upgrade;",
        "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
        "proxy_read_timeout 60s;",
        "server 127.0.0.1:9001;",
        "server 127.0.0.1:9002;",
    ):
        assert line in http


async def test_a_websocket_through_nginx_and_the_real_client_address(nginx: Path) -> None:
    proxy = await _nginx_in_front(nginx, read_timeout=60, ping_interval=None)
    async with connect(proxy.url, local_addr=("127.0.0.5", 0)) as ws:
        who = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
        assert who == {"peer": "127.0.0.1", "client": "127.0.0.5", "proto": "http"}
        await ws.send("through nginx")
        assert await asyncio.wait_for(ws.recv(), TIMEOUT) == "through nginx"


async def test_nginx_cuts_a_quiet_websocket_unless_the_heartbeat_is_faster(nginx: Path) -> None:
    quiet = await _nginx_in_front(nginx, read_timeout=READ_TIMEOUT, ping_interval=None)
    async with connect(quiet.url, ping_interval=None) as ws:
        await ws.recv()
        assert (
            await close_code(ws, timeout=READ_TIMEOUT + TIMEOUT) == 1006
        )  # nginx closed TCP: no close frame
    await quiet.stop()
    beating = await _nginx_in_front(nginx, read_timeout=READ_TIMEOUT, ping_interval=READ_TIMEOUT / 5)
    async with connect(beating.url, ping_interval=None) as ws:
        await ws.recv()
        # Three read timeouts of silence but for the server's pings: nginx never cuts it.
        await assert_stays(lambda: ws.state is State.OPEN, 3 * READ_TIMEOUT, what="the connection is open")
        await ws.send("still here")
        assert await asyncio.wait_for(ws.recv(), TIMEOUT) == "still here"
