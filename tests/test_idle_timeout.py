"""The fault proxy's idle timeout, against real WebSocket connections on 127.0.0.1.

What lesson 08 shows: a proxy that closes quiet connections cuts a WebSocket without a
heartbeat, and leaves alone one whose heartbeat interval is below its timeout. The "stays
open" tests watch (``assert_stays``) for several timeouts, with a wide margin between the
ping interval and the timeout so that a busy machine's late timers cannot make them flake.
"""

from __future__ import annotations

import asyncio

import pytest
from helpers import MS, TIMEOUT, assert_stays, close_code, wait_for
from websockets.asyncio.client import connect
from websockets.protocol import State

import wslab
from wslab import EventLog
from wslab.core.connection_log import LogKind
from wslab.faults import FaultProxy
from wslab.servers import echo

#: The proxy's idle timeout.
IDLE = 500 * MS


async def _through_proxy(ping_interval: float | None, idle_timeout: float | None = IDLE) -> FaultProxy:
    server = await wslab.serve(echo, ping_interval=ping_interval)
    return await FaultProxy.start(server.host, server.port, idle_timeout=idle_timeout, log=EventLog())


async def test_a_quiet_connection_without_heartbeat_is_cut_with_1006() -> None:
    proxy = await _through_proxy(ping_interval=None)
    async with connect(proxy.url, ping_interval=None) as ws:
        await ws.send("hello")
        assert await ws.recv() == "Echo: hello"
        started = asyncio.get_running_loop().time()
        assert await close_code(ws, timeout=TIMEOUT) == 1006  # no close frame
        quiet_for = asyncio.get_running_loop().time() - started
    assert quiet_for >= IDLE * 0.9, f"cut after {quiet_for:.2f} s, before the idle timeout"
    assert proxy.stats.idle_closed == 1
    assert proxy.log is not None
    disconnects = [e for e in proxy.log if e.direction is LogKind.DISCONNECT]
    assert [e.text for e in disconnects] == ["idle timeout"]


async def test_a_heartbeat_below_the_timeout_keeps_the_connection() -> None:
    proxy = await _through_proxy(ping_interval=IDLE / 5)
    async with connect(proxy.url, ping_interval=None) as ws:
        # Quiet but for the server's pings, for four idle timeouts: the proxy never cuts it.
        await assert_stays(lambda: ws.state is State.OPEN, IDLE * 4, what="the connection is open")
        await ws.send("still there?")
        assert await ws.recv() == "Echo: still there?"
    assert proxy.stats.idle_closed == 0


async def test_application_traffic_keeps_the_connection_too() -> None:
    proxy = await _through_proxy(ping_interval=None)
    async with connect(proxy.url, ping_interval=None) as ws:
        for i in range(8):  # 8 x IDLE/5: well past the timeout in total
            await ws.send(f"m{i}")
            assert await ws.recv() == f"Echo: m{i}"
            await asyncio.sleep(IDLE / 5)  # the traffic's pace, not a wait for anything
    assert proxy.stats.idle_closed == 0


async def test_the_timeout_applies_to_open_connections_and_can_be_turned_off() -> None:
    proxy = await _through_proxy(ping_interval=None, idle_timeout=None)
    async with (
        connect(proxy.url, ping_interval=None) as quiet,
        connect(proxy.url, ping_interval=None) as other,
    ):
        await wait_for(lambda: proxy.connections == 2)
        proxy.set_idle_timeout(IDLE / 2)  # applies at once to the connections already open
        assert await close_code(quiet) == 1006
        assert await close_code(other) == 1006
    assert proxy.idle_timeout == IDLE / 2 and proxy.stats.idle_closed == 2
    proxy.set_idle_timeout(None)
    async with connect(proxy.url, ping_interval=None) as ws:
        # Turned off: quiet for two of the earlier timeouts, and nothing cuts it.
        await assert_stays(lambda: ws.state is State.OPEN, IDLE, what="the connection is open")
    with pytest.raises(ValueError, match="positive"):
        proxy.set_idle_timeout(0)
