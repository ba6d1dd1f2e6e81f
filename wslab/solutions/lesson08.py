"""Solutions to lesson 08's exercises.

Exercise 2's solution is this file run as a script: ``python lesson08.py PORT``.
"""

from __future__ import annotations

import asyncio
import signal
import sys


def ping_interval_for(idle_timeout: float) -> float:
    """Exercise 1: a third of the proxy's idle timeout: a late ping still beats it."""
    return idle_timeout / 3


async def echo(websocket) -> None:
    async for message in websocket:
        await websocket.send(message)


async def main(port: int) -> None:
    """Exercise 2: serve until SIGTERM, then 1012 to everyone, and exit within 3 s."""
    from websockets.asyncio.server import serve

    stop = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set_result, None)
    # close_timeout: a client that never answers the closing handshake is dropped after 1 s.
    async with serve(echo, "127.0.0.1", port, close_timeout=1) as server:
        await stop
        server.close(code=1012, reason="restarting")
        await server.wait_closed()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
