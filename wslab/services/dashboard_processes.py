"""Lesson 07's dashboard servers as OS processes sharing one Redis (``python -m wslab serve dashboard``)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from ..runtime.handles import register, release
from .process import START_TIMEOUT, ServerProcess

__all__ = ["DashboardProcess", "start_dashboard_servers"]


class DashboardProcess(ServerProcess):
    """A dashboard server in its own process, over a broker; it listens once its feed is current.

    ``rate`` > 0 makes this one also run the simulated fleet (one simulator is enough: every
    server shares what it reports).
    """

    kind = "dashboard"
    scheme = "http"
    path = "/"

    def __init__(
        self, broker_url: str, *, server_id: str, rate: float = 0.0, host: str = "127.0.0.1"
    ) -> None:
        super().__init__(Path(sys.executable), name=f"dashboard-{server_id}", host=host)
        self.broker_url = broker_url
        self.server_id = server_id
        self.rate = rate
        self.origin = f"python -m wslab serve dashboard --id {server_id}"

    @property
    def ws_url(self) -> str:
        return self.url.replace("http", "ws", 1) + "ws"

    def command(self) -> list[str]:
        where = ["--host", self.host, "--port", str(self.port), "--id", self.server_id]
        return [str(self.binary), "-m", "wslab", "serve", "dashboard", *where, "--rate", str(self.rate),
                "--broker", self.broker_url]  # fmt: skip

    async def start(self, timeout: float = START_TIMEOUT) -> DashboardProcess:
        """Start it and register it, so that ``wslab.stop_all()`` stops it with the lesson."""
        if not self.serving:
            await release(self.name, self.host, 0)
        await super().start(timeout)
        register(self)
        return self


async def start_dashboard_servers(ids: list[str], broker_url: str) -> list[DashboardProcess]:
    """Dashboard servers sharing the fleet through the Redis at ``broker_url``, started together."""
    servers = [DashboardProcess(broker_url, server_id=i) for i in ids]
    await asyncio.gather(*(server.start() for server in servers))
    return servers
