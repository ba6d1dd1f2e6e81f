"""A dashboard tab in Python: the WebSocket feed of lesson 07, kept current across cuts and servers.

It does what the page (``wslab/static/dashboard.js``) does: a snapshot on connect, then
each change by sequence number; when the connection drops it reconnects, to the next of
its URLs, with ``?since=<last seq>``, and the server replays what it missed. It records
what a benchmark or a test wants to know: which changes it saw, and how late.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable, Sequence

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from ..core.backoff import backoff_delays
from ..core.fleet import Change, Fleet

__all__ = ["FleetClient"]


class FleetClient:
    """Follows the fleet over ``/ws`` of one or more dashboard servers (``ws://.../ws`` URLs).

    Attributes:
        fleet: this tab's copy of the state.
        seen: the ``seq`` of every change applied, in order.
        lateness: for each change seen, seconds from its publication to its arrival here.
        closes: the close code of every connection that ended (None: no close frame).
        server: the URL it is connected to now, or was last.
    """

    def __init__(self, urls: str | Sequence[str], *, name: str = "tab") -> None:
        self.urls = [urls] if isinstance(urls, str) else list(urls)
        self.name = name
        self.fleet = Fleet(())
        self.seen: list[int] = []
        self.lateness: list[float] = []
        self.closes: list[int | None] = []
        self.snapshots = 0
        self.server = self.urls[0]
        self.live = False
        self.stopped = False
        self.on_change: Callable[[FleetClient], object] | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> FleetClient:
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"fleet-client-{self.name}")
        return self

    async def stop(self) -> None:
        self.stopped = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.live = False
        self._changed()

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change(self)

    async def _run(self) -> None:
        delays = backoff_delays(first=0.05, cap=2.0)
        index = 0
        while True:
            self.server = self.urls[index % len(self.urls)]
            query = f"?since={self.fleet.seq}" if self.seen or self.snapshots else ""
            try:
                async with connect(self.server + query, open_timeout=5) as connection:
                    delays = backoff_delays(first=0.05, cap=2.0)
                    self.live = True
                    self._changed()
                    async for message in connection:
                        self._receive(json.loads(message))
                self.closes.append(connection.close_code)
            except ConnectionClosed as exc:
                self.closes.append(exc.rcvd.code if exc.rcvd else None)
            except (OSError, InvalidHandshake, TimeoutError):
                index += 1  # not reachable: try the next server
            self.live = False
            self._changed()
            if len(self.urls) > 1 and self.closes and self.closes[-1] in (None, 1001, 1012):
                index += 1  # that server went away: resume on another
            await asyncio.sleep(next(delays))

    def _receive(self, message: dict[str, object]) -> None:
        if message.get("type") == "snapshot":
            self.fleet.load(message)
            self.snapshots += 1
        elif message.get("type") == "change":
            change = Change.from_dict(message)
            if self.fleet.apply(change):
                self.seen.append(change.seq)
                self.lateness.append(time.time() - change.at)
        self._changed()
