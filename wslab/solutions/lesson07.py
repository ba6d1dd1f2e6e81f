"""Solutions to lesson 07: the blanks (the conditional poll, the long poll, the SSE stream that
resumes) and the exercises.

The endpoints read the feed they serve from ``request.app.state.feed``, as wslab's dashboard
does: the lesson's app and each check's app put one there.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse


async def status(request: Request) -> Response:
    """GET /api/status: the fleet's state with an ETag; 304 and no body when If-None-Match names it."""
    fleet = request.app.state.feed.fleet
    body = json.dumps(fleet.snapshot()).encode()
    etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'  # the same state gives the same tag
    if request.headers.get("if-none-match") == etag:  # exercise 1 makes this comparison right
        return Response(status_code=304, headers={"etag": etag})
    return Response(body, media_type="application/json", headers={"etag": etag, "cache-control": "no-cache"})


async def changes(request: Request) -> Response:
    """GET /api/changes?since=SEQ: held until there is a change after SEQ (200), or 25 s pass (204)."""
    feed = request.app.state.feed
    since = int(request.query_params["since"])
    if not await feed.wait_after(since, timeout=25):  # held here until a change, or 25 s
        return Response(status_code=204)
    news = feed.fleet.changes_after(since)
    return JSONResponse({"seq": feed.fleet.seq, "changes": [change.to_dict() for change in news]})


def sse_event(kind: str, seq: int, data: Any) -> str:
    """One event of a text/event-stream: its type, its id (the seq), its data; a blank line ends it."""
    return f"event: {kind}\nid: {seq}\ndata: {json.dumps(data)}\n\n"


async def events(request: Request) -> Response:
    """GET /api/events: retry:, then what the browser missed (or the whole state), then each change."""
    feed = request.app.state.feed
    fleet = feed.fleet
    last = request.headers.get("last-event-id", "")
    seq = int(last) if last.isdigit() else None  # it comes from the client: absent, or not a number

    async def stream(seq: int | None) -> AsyncIterator[str]:
        yield "retry: 1000\n\n"
        while True:
            missed = fleet.changes_after(seq) if seq is not None else None
            if missed is None:  # a first visit, or further back than the history: the whole state
                seq = fleet.seq
                yield sse_event("snapshot", seq, fleet.snapshot())
            for change in missed or []:
                yield sse_event("change", change.seq, change.to_dict())
                seq = change.seq
            if not await feed.wait_after(seq):
                return  # the feed closed: the server is stopping

    return StreamingResponse(stream(seq), media_type="text/event-stream")


def not_modified(if_none_match: str | None, etag: str) -> bool:
    """Exercise 1: should a GET with this ``If-None-Match`` get 304? (RFC 9110: weak comparison)"""
    if if_none_match is None:
        return False
    if if_none_match.strip() == "*":
        return True
    wanted = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
    return etag.removeprefix("W/") in wanted


def break_even_rate(interval: float, poll_bytes: float, push_bytes: float) -> float:
    """Exercise 2: polling costs poll_bytes / interval per second, pushing rate * push_bytes."""
    return poll_bytes / (interval * push_bytes)
