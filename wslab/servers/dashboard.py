"""Lesson 07: one fleet, served four ways by one Starlette app.

* ``GET /api/status``: the whole state as JSON with an ``ETag``; a request whose
  ``If-None-Match`` names it gets ``304 Not Modified`` and no body (polling, done well);
* ``GET /api/changes?since=N``: long polling, held until something after ``N`` exists
  (then 200 with the changes) or ``timeout`` seconds pass (then 204);
* ``GET /api/events``: Server-Sent Events: ``retry:``, then a snapshot, then one event per
  change with ``id:`` its ``seq``; a reconnect's ``Last-Event-ID`` replays what was missed;
* ``/ws``: a WebSocket: a snapshot (or, with ``?since=N``, what was missed), then each change.

And ``GET /`` the dashboard page, ``POST /api/deploys`` where a deploy system reports a
change (from this machine only), ``GET /health``. The same pure ASGI middleware as
lesson 04 guards the WebSocket's ``Origin``; the page gets lesson 04's policy.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import json
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from ..brokers.base import BrokerUnavailable
from ..core import sse
from ..core.fleet import Change, etag_matches, parse_seq
from ..runtime.handles import ServerHandle, register
from .fleet_feed import FleetFeed
from .web.app import page_routes
from .web.middleware import AccessLog, OriginGuard
from .web.runner import AsgiServerHandle, serve_web

__all__ = [
    "LONG_POLL_TIMEOUT",
    "SSE_RETRY_MS",
    "DashboardHandle",
    "add_dashboard_options",
    "create_dashboard_app",
    "serve_dashboard",
    "start_dashboard_from_args",
]

#: The longest a long poll is held: under the 60 s idle timeout of common proxies.
LONG_POLL_TIMEOUT = 25.0
#: What an SSE stream tells the browser to wait before reconnecting.
SSE_RETRY_MS = 1000
#: A comment line this often keeps an idle SSE stream open through proxies.
SSE_KEEPALIVE = 15.0

#: Polls must be revalidated every time: a cache may keep the body, never serve it unasked.
_NO_CACHE = {"cache-control": "no-cache"}


def _json(data: Any) -> str:
    return json.dumps(data, separators=(",", ":"))


def _from_this_machine(request: Request) -> bool:
    host = request.client.host if request.client else ""
    with contextlib.suppress(ValueError):
        return ipaddress.ip_address(host).is_loopback
    return False


def create_dashboard_app(
    feed: FleetFeed, *, allowed_origins: Sequence[str] = (), log: Any = None
) -> Starlette:
    """The dashboard app around ``feed`` (started by :func:`serve_dashboard`)."""
    fleet = feed.fleet

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok", "server": feed.server_id, "seq": fleet.seq})

    async def status(request: Request) -> Response:
        body, etag = fleet.body()
        headers = {"etag": etag, **_NO_CACHE}
        if etag_matches(request.headers.get("if-none-match"), etag):
            return Response(status_code=304, headers=headers)
        return Response(body, media_type="application/json", headers=headers)

    async def changes(request: Request) -> Response:
        return await _long_poll(feed, request)

    async def events(request: Request) -> Response:
        last = parse_seq(request.headers.get("last-event-id"))
        stream = _event_stream(feed, last)
        headers = {**_NO_CACHE, "x-accel-buffering": "no"}  # nginx: pass each event on at once
        return StreamingResponse(stream, media_type="text/event-stream", headers=headers)

    async def deploys(request: Request) -> Response:
        return await _report(feed, request)

    async def websocket_endpoint(websocket: WebSocket) -> None:
        await websocket.accept()
        await _websocket_feed(websocket, feed, parse_seq(websocket.query_params.get("since")))

    routes = [
        *page_routes("dashboard.html"),
        Route("/health", health),
        Route("/api/status", status),
        Route("/api/changes", changes),
        Route("/api/events", events),
        Route("/api/deploys", deploys, methods=["POST"]),
        WebSocketRoute("/ws", websocket_endpoint),
    ]
    middleware = [Middleware(AccessLog, log=log), Middleware(OriginGuard, allowed=allowed_origins)]
    app = Starlette(routes=routes, middleware=middleware)
    app.state.feed = feed
    return app


async def _long_poll(feed: FleetFeed, request: Request) -> Response:
    """``GET /api/changes?since=N[&timeout=S]``: held until there is news after ``N`` (200), or 204."""
    fleet = feed.fleet
    since = parse_seq(request.query_params.get("since"))
    try:
        timeout = min(float(request.query_params.get("timeout", LONG_POLL_TIMEOUT)), LONG_POLL_TIMEOUT)
    except ValueError:
        timeout = LONG_POLL_TIMEOUT
    if since is None:
        return JSONResponse({"error": "give ?since=SEQ (0 for everything)"}, status_code=400)
    if not await feed.wait_after(since, max(timeout, 0.0)):
        return Response(status_code=204, headers=_NO_CACHE)
    missed = fleet.changes_after(since)
    if missed is None:  # too far behind: the whole state instead
        return JSONResponse({"seq": fleet.seq, "snapshot": fleet.snapshot()}, headers=_NO_CACHE)
    return JSONResponse({"seq": fleet.seq, "changes": [c.to_dict() for c in missed]}, headers=_NO_CACHE)


async def _report(feed: FleetFeed, request: Request) -> Response:
    """``POST /api/deploys``: a change reported by a deploy system on this machine (202), numbered."""
    if not _from_this_machine(request):
        return JSONResponse({"error": "deploys are reported from this machine only"}, status_code=403)
    try:
        change = Change.from_dict(json.loads(await request.body()))
    except (ValueError, KeyError, TypeError):
        return JSONResponse(
            {"error": 'send {"service": ..., "version": N, "status": "deploying", "healthy", ...}'},
            status_code=400,
        )
    try:
        numbered = await feed.report(change)
    except BrokerUnavailable as exc:
        return JSONResponse({"error": str(exc)}, status_code=503)
    return JSONResponse(numbered.to_dict(), status_code=202)


async def _event_stream(feed: FleetFeed, last: int | None) -> AsyncIterator[str]:
    """``retry:``, then what was missed after ``last`` (or a snapshot), then every change."""
    fleet = feed.fleet
    yield f"retry: {SSE_RETRY_MS}\n\n"
    missed = fleet.changes_after(last) if last is not None else None
    if missed is None:
        seq = fleet.seq
        yield sse.format_event(_json(fleet.snapshot()), id=seq, event="snapshot")
    else:
        seq = last if last is not None else 0
    while True:
        for change in missed or []:
            yield sse.format_event(_json(change.to_dict()), id=change.seq, event="change")
            seq = change.seq
        if not await feed.wait_after(seq, SSE_KEEPALIVE):
            if feed.closed:
                return  # the server is stopping: end the stream; the browser reconnects elsewhere
            yield sse.comment("keep-alive")
            missed = []
            continue
        missed = fleet.changes_after(seq)
        if missed is None:
            seq = fleet.seq
            yield sse.format_event(_json(fleet.snapshot()), id=seq, event="snapshot")


async def _websocket_feed(websocket: WebSocket, feed: FleetFeed, since: int | None) -> None:
    """The tutorial's two tasks: one sends the fleet's changes, one reads until the client leaves."""
    fleet = feed.fleet

    async def send_changes() -> None:
        seq = since if since is not None else -1
        while True:
            missed = fleet.changes_after(seq) if seq >= 0 else None
            if missed is None:
                seq = fleet.seq
                await websocket.send_text(_json({"type": "snapshot", **fleet.snapshot()}))
            for change in missed or []:
                await websocket.send_text(_json({"type": "change", **change.to_dict()}))
                seq = change.seq
            if not await feed.wait_after(seq):
                await websocket.close(1001, "server shutting down")
                return

    async def read_until_closed() -> None:
        with contextlib.suppress(WebSocketDisconnect):
            while True:
                await websocket.receive_text()  # nothing to say to the server; it only listens

    tasks = [asyncio.create_task(send_changes()), asyncio.create_task(read_until_closed())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def serve_dashboard(
    feed: FleetFeed | None = None,
    *,
    name: str = "dashboard",
    host: str = "127.0.0.1",
    port: int = 0,
    allowed_origins: Sequence[str] = (),
    log: Any = None,
) -> DashboardHandle:
    """Start ``feed`` (a fresh in-process one by default) and serve its dashboard in this loop.

    Stopping the server stops the feed, its simulation and its broker connection.
    """
    feed = feed or FleetFeed()
    await feed.start()
    try:
        app = create_dashboard_app(feed, allowed_origins=allowed_origins, log=log)
        handle = await serve_web(app, name=name, host=host, port=port)
    except BaseException:
        await feed.stop()
        raise
    return register(DashboardHandle(handle, feed))


class DashboardHandle(ServerHandle):
    """The dashboard server: uvicorn's handle, plus its feed, which must end the open SSE
    streams and WebSocket feeds *before* uvicorn waits for its connections to finish."""

    scheme = "http"

    def __init__(self, server: AsgiServerHandle, feed: FleetFeed) -> None:
        super().__init__(server.name, (server.host, server.port))
        self.server = server
        self.feed = feed

    @property
    def ws_url(self) -> str:
        return self.server.ws_url

    @property
    def connections(self) -> int:
        return self.server.connections

    @property
    def serving(self) -> bool:
        return self.server.serving

    async def _close(self, code: int, reason: str) -> None:
        self.feed.close_streams()
        try:
            await self.server.stop(code=code, reason=reason)
        finally:
            await self.feed.stop()


# From the command line: ``python -m wslab serve dashboard``


def add_dashboard_options(parser: argparse.ArgumentParser, *, broker_url: Callable[[str], str]) -> None:
    """``serve dashboard``'s own options (``broker_url`` checks a ``--broker`` URL)."""
    parser.add_argument(
        "--public", action="store_true", help="bind every interface and print URLs and a QR code for a room"
    )
    parser.add_argument(
        "--rate", type=float, default=0.2, help="simulated changes per second, 0 for none (default: 0.2)"
    )
    parser.add_argument("--seed", type=int, default=7, help="the simulated fleet's seed (default: 7)")
    parser.add_argument("--id", default="dashboard", help="this server's name in each change ('via')")
    parser.add_argument(
        "--broker",
        type=broker_url,
        default=None,
        metavar="URL",
        help="redis://, nats:// or kafka://host:port to share the fleet with other dashboard servers "
        "(default: in-process)",
    )
    parser.add_argument(
        "--allow-origin", action="append", default=[], metavar="ORIGIN", help="another site's page allowed"
    )
    parser.set_defaults(join_code=None)


async def start_dashboard_from_args(args: argparse.Namespace, log: Any = None) -> DashboardHandle:
    """What ``serve dashboard`` starts: a feed (over ``--broker``), its simulation, the app."""
    from ..brokers.by_url import broker_from_url

    if args.host is None:  # every interface for a room; this machine only otherwise
        args.host = "0.0.0.0" if args.public else "127.0.0.1"
    broker = broker_from_url(args.broker)
    feed = FleetFeed(broker, server_id=args.id)
    handle = await serve_dashboard(
        feed,
        name=f"dashboard-{args.id}",
        host=args.host,
        port=args.port,
        allowed_origins=args.allow_origin,
        log=log,
    )
    handle.on_stop(broker.close)
    if args.rate > 0:
        feed.simulate(args.rate, seed=args.seed)
    return handle
