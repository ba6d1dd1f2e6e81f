"""Lesson 07's dashboard app, each mode over real sockets on 127.0.0.1.

Polling (304 on an unchanged ETag), long polling (answers on a change and on its timeout),
SSE (``retry:``, a snapshot, ids, resume from ``Last-Event-ID``), the WebSocket (snapshot,
deltas, resume with ``?since=``), the page's policy, and ``serve dashboard`` from a terminal.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from helpers import TIMEOUT, while_working
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from wslab.checks.lesson07 import check_conditional_get
from wslab.core.sse import SseParser
from wslab.servers.dashboard import DashboardHandle, serve_dashboard
from wslab.servers.web import CONTENT_SECURITY_POLICY


@pytest.fixture
async def dashboard() -> AsyncIterator[tuple[DashboardHandle, httpx.AsyncClient]]:
    handle = await serve_dashboard(name="test-dashboard")
    async with httpx.AsyncClient(base_url=handle.url, timeout=TIMEOUT) as http:
        yield handle, http


async def deploy(
    http: httpx.AsyncClient, service: str = "api", version: int = 2, status: str = "deploying"
) -> int:
    response = await http.post(
        "/api/deploys", json={"service": service, "version": version, "status": status}
    )
    assert response.status_code == 202, response.text
    return int(response.json()["seq"])


async def test_polling_gets_304_while_nothing_changes_and_200_after(dashboard: Any) -> None:
    handle, http = dashboard
    first = await http.get("/api/status")
    etag = first.headers["etag"]

    unchanged = await http.get("/api/status", headers={"if-none-match": etag})
    assert (unchanged.status_code, unchanged.content, unchanged.headers["etag"]) == (304, b"", etag)
    assert unchanged.headers["cache-control"] == "no-cache"
    await deploy(http)
    changed = await http.get("/api/status", headers={"if-none-match": etag})
    assert changed.status_code == 200 and changed.headers["etag"] != etag
    assert changed.json()["seq"] == 1
    assert (await check_conditional_get(handle.url + "api/status", lambda: deploy(http, version=3))).passed


async def test_long_poll_answers_with_the_change_it_waited_for(dashboard: Any) -> None:
    _, http = dashboard
    seq = await deploy(http)
    waiting = asyncio.create_task(http.get(f"/api/changes?since={seq}&timeout=20"))
    later = await deploy(http, "auth", 5, "failed")
    answer = await waiting

    assert answer.status_code == 200
    assert [(c["seq"], c["service"], c["status"]) for c in answer.json()["changes"]] == [
        (later, "auth", "failed")
    ]


async def test_long_poll_answers_204_when_its_timeout_passes_and_400_without_since(dashboard: Any) -> None:
    _, http = dashboard
    assert (await http.get("/api/changes?since=0&timeout=0.1")).status_code == 204
    assert (await http.get("/api/changes")).status_code == 400


async def sse_events(http: httpx.AsyncClient, count: int, headers: dict[str, str] | None = None) -> list[Any]:
    parser, events = SseParser(), []
    async with http.stream("GET", "/api/events", headers=headers or {}) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        async for text in response.aiter_text():
            events += parser.feed(text)
            if len(events) >= count:
                break
    assert parser.retry == 1000
    return events


async def test_sse_sends_a_snapshot_then_each_change_with_its_seq_as_id(dashboard: Any) -> None:
    _, http = dashboard
    await deploy(http)
    parser, events = SseParser(), []
    async with http.stream("GET", "/api/events") as response:
        async for text in response.aiter_text():
            events += parser.feed(text)
            if len(events) == 1:  # the snapshot arrived: now a change
                seq = await deploy(http, "auth", 3, "healthy")
            if len(events) == 2:
                break
    snapshot, change = events

    assert (snapshot.event, snapshot.id, json.loads(snapshot.data)["seq"]) == ("snapshot", "1", 1)
    assert (change.event, change.id, json.loads(change.data)["service"]) == ("change", str(seq), "auth")


async def test_sse_resumes_after_last_event_id_without_a_snapshot(dashboard: Any) -> None:
    _, http = dashboard
    seqs = [await deploy(http, "api", v) for v in range(2, 7)]
    events = await sse_events(http, 3, {"last-event-id": str(seqs[1])})

    assert [(e.event, e.id) for e in events] == [("change", str(s)) for s in seqs[2:]]


async def test_websocket_sends_a_snapshot_then_deltas_and_resumes_after_a_cut(dashboard: Any) -> None:
    handle, http = dashboard
    async with connect(handle.ws_url) as ws:
        snapshot = json.loads(await ws.recv())
        assert (snapshot["type"], snapshot["seq"], len(snapshot["services"])) == ("snapshot", 0, 12)
        first = [await deploy(http, "search", v) for v in (2, 3)]
        got = [json.loads(await ws.recv()) for _ in first]
        assert [(m["type"], m["seq"], m["version"]) for m in got] == [
            ("change", first[0], 2),
            ("change", first[1], 3),
        ]
    missed = [await deploy(http, "search", v) for v in (4, 5)]  # while the tab is cut off
    async with connect(f"{handle.ws_url}?since={first[-1]}") as ws:
        resumed = [json.loads(await ws.recv()) for _ in missed]
        assert [(m["type"], m["seq"]) for m in resumed] == [("change", s) for s in missed]


async def test_the_page_is_served_with_lesson_04s_policy_and_relative_urls(dashboard: Any) -> None:
    handle, http = dashboard
    page = await http.get("/")
    assert page.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert 'src="static/dashboard.js"' in page.text and "http" not in page.text.split("<body>")[0].lower()
    assert (await http.get("/static/dashboard.js")).status_code == 200
    with pytest.raises(InvalidStatus) as refused:
        async with connect(handle.ws_url, origin="https://evil.example"):
            pass
    assert refused.value.response.status_code == 403


async def test_a_malformed_deploy_gets_400_and_changes_nothing(dashboard: Any) -> None:
    handle, http = dashboard
    for body in [
        b"not json",
        b'{"service": "api"}',
        b'{"service": "api", "version": 2, "status": "on fire"}',
    ]:
        response = await http.post("/api/deploys", content=body)
        assert response.status_code == 400 and "error" in response.json()
    assert handle.feed.fleet.seq == 0


async def test_stopping_the_server_ends_open_sse_streams_cleanly(dashboard: Any) -> None:
    handle, http = dashboard
    parser, stopping = SseParser(), None
    async with http.stream("GET", "/api/events") as response:
        async for text in response.aiter_text():
            if parser.feed(text) and stopping is None:  # the snapshot: the stream is open
                stopping = asyncio.create_task(handle.stop())
        # Here the chunked body ended properly: no cut, no wait for uvicorn's grace period.
    assert stopping is not None
    await stopping
    assert not handle.serving


async def test_serve_dashboard_from_a_terminal_prints_its_url_and_serves() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "wslab", "serve", "dashboard", "--port", "0", "--rate", "20",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        line = (await while_working(process.pid, process.stdout.readline(), what="its first line")).decode()
        assert line.startswith("dashboard server listening on http://127.0.0.1:"), line
        url = line.split()[4]
        async with connect(url.replace("http", "ws", 1) + "ws") as ws:
            assert json.loads(await ws.recv())["type"] == "snapshot"
            assert json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))["type"] == "change"  # simulated
    finally:
        process.terminate()
        await process.wait()
