"""Exercise checks for lesson 07: the three endpoints the learner writes, over real HTTP, and the
ETag comparison and break-even rate of the exercises.

The blanks (``status_exercise``, ``changes_exercise``, ``events_exercise``) serve the learner's
endpoint with uvicorn, in an app whose ``state.feed`` is a fleet feed of the check's own (so the
check knows every ``seq``), and talk to it as a browser tab would. A raise in the endpoint is
a failed line, never a traceback. :func:`check_conditional_get` is the conditional-GET half on
its own, by URL: wslab's dashboard passes it too.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from ..core.fleet import FleetSimulation
from ..core.sse import SseEvent, SseParser
from ..runtime.handles import wait_until
from ..servers.fleet_feed import FleetFeed
from ..servers.web.runner import serve_web
from ..solutions import lesson07 as solutions
from .report import FAILED, REPLY_TIMEOUT, CheckReport, Hints, call, error_text, exercise, serving

__all__ = [
    "changes_exercise",
    "check_break_even",
    "check_conditional_get",
    "check_etag_match",
    "events_exercise",
    "status_exercise",
]

Endpoint = Callable[[Request], Awaitable[Response]]

#: How long a long poll must stay held, with nothing new, to count as held.
HELD_FOR = 0.3


# Serving the learner's endpoint


def _guarded(report: CheckReport, path: str, endpoint: Endpoint) -> Endpoint:
    """``endpoint``, with a raise (in it, or in the stream it returns) as a failed line and a 500."""

    async def guarded_stream(body: AsyncIterable[Any]) -> AsyncIterator[Any]:
        try:
            async for chunk in body:
                yield chunk
        except NotImplementedError:
            raise
        except Exception as exc:
            report.add(False, f"GET {path}: the stream raised {error_text(exc)}")

    async def guarded(request: Request) -> Response:
        try:
            response = await endpoint(request)
        except NotImplementedError:
            return Response(status_code=500)
        except Exception as exc:
            report.add(False, f"GET {path}: raised {error_text(exc)}")
            return Response(status_code=500)
        if isinstance(response, StreamingResponse):
            response.body_iterator = guarded_stream(response.body_iterator)
        return response

    return guarded


@contextlib.asynccontextmanager
async def _served(
    report: CheckReport, path: str, endpoint: Endpoint, *, history: int = 1000
) -> AsyncIterator[tuple[FleetFeed, httpx.AsyncClient]]:
    """The learner's endpoint at ``path`` over a fresh feed, and an HTTP client for it."""
    feed = await FleetFeed(server_id="check", history=history).start()
    app = Starlette(routes=[Route(path, _guarded(report, path, endpoint))])
    app.state.feed = feed
    try:
        async with serving(report, serve_web(app, name=f"check:{path}")) as server:
            try:
                async with httpx.AsyncClient(base_url=server.url.rstrip("/"), timeout=5) as http:
                    yield feed, http
            except httpx.HTTPError as exc:
                report.add(False, f"GET {path}: the request failed: {error_text(exc)}")
            finally:
                feed.close_streams()  # ends streams still open, so the server stops at once
    finally:
        await feed.stop()


async def _changes(feed: FleetFeed, count: int) -> list[int]:
    """Report ``count`` seeded changes, and wait until the feed holds them; their seqs."""
    simulation = FleetSimulation(feed.services, seed=3)
    seqs = [(await feed.report(simulation.next_change())).seq for _ in range(count)]
    await wait_until(lambda: feed.fleet.seq >= seqs[-1], timeout=REPLY_TIMEOUT)
    return seqs


# The blank of section 2: polling done well


async def _conditional_get(
    report: CheckReport, http: httpx.AsyncClient, url: str, change: Callable[[], Awaitable[Any]]
) -> None:
    first = await http.get(url)
    etag = first.headers.get("etag")
    report.add(first.status_code == 200, f"GET: expected 200, got {first.status_code}")
    if not report.add(
        etag is not None, "GET: an ETag header" if etag else "GET: expected an ETag header, got none"
    ):
        return
    again = await http.get(url, headers={"if-none-match": etag})
    report.add(again.status_code == 304, f"GET with the tag it got: expected 304, got {again.status_code}")
    report.add(again.content == b"", f"the 304 carries no body: got {len(again.content)} bytes")
    report.add(again.headers.get("etag") == etag, "the 304 repeats the ETag")
    await change()
    after = await http.get(url, headers={"if-none-match": etag})
    report.add(
        after.status_code == 200, f"after a change, with the old tag: expected 200, got {after.status_code}"
    )
    new = after.headers.get("etag")
    report.add(
        new not in (None, etag), "after a change: a new ETag" if new != etag else "the ETag did not change"
    )


async def check_conditional_get(url: str, change: Callable[[], Awaitable[Any]]) -> CheckReport:
    """A polling endpoint done well, over real HTTP: ``url`` serves the fleet; ``change()`` changes it."""
    report = CheckReport("conditional GET")
    async with httpx.AsyncClient(timeout=5) as http:
        await _conditional_get(report, http, url, change)
    return report


STATUS_HINTS: Hints = [
    ("an ETag header", "label each answer with an etag header: a hash of the body names this state"),
    ("expected 304", "compare the request's if-none-match header with the tag of the current state"),
    ("no body", "a 304 says 'what you have is current': it carries the ETag and no body"),
    ("did not change", "hash the state's bytes, so that a change gives a new tag"),
    ("the body is", "the body is the fleet's snapshot() as JSON, from request.app.state.feed"),
]


@exercise(
    reference=solutions.status,
    hints=[
        "the body is json.dumps(fleet.snapshot()) as bytes; fleet is request.app.state.feed.fleet",
        "an ETag names one state: a hash of those bytes (hashlib.sha256), in double quotes",
        "if the request's if-none-match header equals that tag, answer 304 with the ETag and no body",
        "otherwise 200 with the body, the ETag and cache-control: no-cache (ask again every time)",
    ],
    title="conditional poll",
)
async def status_exercise(status: Endpoint) -> CheckReport:
    """Section 2: ``GET /api/status`` answers the state with an ETag, and 304 to a tab that has it."""
    report = CheckReport("conditional poll")
    async with _served(report, "/api/status", status) as (feed, http):
        await _changes(feed, 2)
        first = await http.get("/api/status")
        with contextlib.suppress(ValueError):
            body = first.json() if first.status_code == 200 else None
            same = body == json.loads(json.dumps(feed.fleet.snapshot()))
            report.add(
                same,
                "GET: the body is the fleet's state" if same else "GET: the body is not the fleet's state",
            )
        await _conditional_get(report, http, "/api/status", lambda: _changes(feed, 1))
    report.hints_for(STATUS_HINTS)
    return report


# The blank of section 3: long polling


async def _long_poll(http: httpx.AsyncClient, since: int, timeout: float) -> httpx.Response | str:
    """The answer to ``?since=``, or why there is none (no answer within ``timeout``)."""
    try:
        return await http.get("/api/changes", params={"since": since}, timeout=timeout)
    except httpx.TimeoutException:
        return f"no answer within {timeout:g} s"


def _seqs_in(response: httpx.Response) -> tuple[Any, list[Any]]:
    """The ``seq`` and the changes' seqs of a long poll's answer; (None, []) if it is not one."""
    try:
        data = response.json()
        return data.get("seq"), [change["seq"] for change in data.get("changes", [])]
    except (ValueError, AttributeError, TypeError, KeyError):
        return None, []


def _answered(
    report: CheckReport, what: str, response: httpx.Response | str, seq: int, want: list[int]
) -> None:
    if isinstance(response, str):
        report.add(False, f"{what}: expected 200 with seq {seq}, changes {want}; {response}")
        return
    got_seq, got = _seqs_in(response)
    ok = response.status_code == 200 and (got_seq, got) == (seq, want)
    shown = f"{response.status_code} with seq {got_seq}, changes {got}"
    report.add(ok, f"{what}: expected 200 with seq {seq}, changes {want}; got {shown}")


async def _held(http: httpx.AsyncClient, since: int) -> tuple[asyncio.Task[httpx.Response | str], bool]:
    """A long poll started and left alone for :data:`HELD_FOR`: its task, and whether it is still held."""
    poll = asyncio.create_task(_long_poll(http, since, timeout=30))
    await asyncio.wait({poll}, timeout=HELD_FOR)
    return poll, not poll.done()


async def _outcome(poll: asyncio.Task[httpx.Response | str]) -> httpx.Response | str:
    """What a held poll ends with, once something should have ended it."""
    done, _ = await asyncio.wait({poll}, timeout=REPLY_TIMEOUT)
    if not done:
        poll.cancel()
        return f"no answer within {REPLY_TIMEOUT:g} s"
    return poll.result()


CHANGES_HINTS: Hints = [
    ("answered at once", "wait_after(since, ...) returns only once the fleet holds something after since"),
    (
        "expected 204",
        "wait_after returns False when it gives up (a timeout, or the feed closing): answer 204",
    ),
    ("changes [", "with news: JSON with the fleet's seq, and changes_after(since) as to_dict()s"),
]


@exercise(
    reference=solutions.changes,
    hints=[
        "since comes from request.query_params, as text: make it an int",
        "request.app.state.feed.wait_after(since, timeout=25) waits for a change after since",
        "it returns False when no change came in time (or the feed closed): answer 204 then",
        "with news: JSON with the fleet's seq and each change after since, as change.to_dict()",
    ],
    title="long poll",
)
async def changes_exercise(changes: Endpoint) -> CheckReport:
    """Section 3: ``GET /api/changes?since=N`` is answered at once when there is news after N,
    held while there is none, answered when a change comes, and 204 when the wait ends without one."""
    report = CheckReport("long poll")
    async with _served(report, "/api/changes", changes) as (feed, http):
        await _changes(feed, 3)
        news = await _long_poll(http, 1, timeout=REPLY_TIMEOUT)
        _answered(report, "since=1, with 2 and 3 already there", news, 3, [2, 3])
        poll, held = await _held(http, 3)
        what = "since=3, nothing newer"
        report.add(
            held, f"{what}: held ({HELD_FOR:g} s, no answer yet)" if held else f"{what}: answered at once"
        )
        await _changes(feed, 1)
        _answered(report, "since=3, then change 4", await _outcome(poll), 4, [4])
        poll, _ = await _held(http, 4)
        feed.close_streams()  # wait_after gives up, as it does at the timeout
        ended = await _outcome(poll)
        got = ended if isinstance(ended, str) else f"got {ended.status_code}"
        ok = not isinstance(ended, str) and ended.status_code == 204
        report.add(ok, f"since=4, and the wait ends with no news: expected 204, {got}")
    report.hints_for(CHANGES_HINTS)
    return report


# The blank of section 4: Server-Sent Events that resume


async def _read_events(
    http: httpx.AsyncClient, last_event_id: str | None, count: int, then: Callable[[], Awaitable[Any]]
) -> tuple[list[SseEvent], SseParser, str]:
    """Open ``/api/events`` (with ``Last-Event-ID``, if given); read ``count`` events, call
    ``then()`` (a change), read one more. The events, the parser, and what went wrong ("" if nothing)."""
    parser, events = SseParser(), []
    headers = {} if last_event_id is None else {"last-event-id": last_event_id}

    async def read() -> str:
        async with http.stream("GET", "/api/events", headers=headers) as response:
            kind = response.headers.get("content-type", "")
            if response.status_code != 200 or not kind.startswith("text/event-stream"):
                return (
                    f"expected 200 text/event-stream, got {response.status_code} {kind or 'no content-type'}"
                )
            changed = False
            async for text in response.aiter_text():
                events.extend(parser.feed(text))
                if len(events) >= count and not changed:
                    changed = True
                    await then()
                if len(events) > count:
                    return ""
            return "the stream ended"

    try:
        return events, parser, await asyncio.wait_for(read(), REPLY_TIMEOUT)
    except TimeoutError:
        return events, parser, f"nothing more within {REPLY_TIMEOUT:g} s"


def _shown(events: list[SseEvent]) -> list[str]:
    """Events as the report shows them: ``snapshot 7``, ``change 8``, with the seq their data says."""
    shown = []
    for event in events:
        try:
            seq = json.loads(event.data).get("seq")
        except (ValueError, AttributeError):
            seq = "?"
        label = f"{event.event} {event.id or '(no id)'}"
        shown.append(label if str(seq) == event.id else f"{label} (data for seq {seq})")
    return shown


#: ``Last-Event-ID`` (``{}``: a seq, this many behind the fleet's), and how many changes that
#: misses (-1: a snapshot is due instead). The history keeps 5 changes; the fleet is at 7 first.
_SSE_CASES: list[tuple[str | None, int, str]] = [
    (None, -1, "a first visit"),
    ("{}", 2, "back, 2 changes missed"),
    ("{}", 0, "back, nothing missed"),
    ("not-a-number", -1, "a header that is not a number"),
    ("1", -1, "back after 1, further than the history"),
]

SSE_HINTS: Hints = [
    ("(no id)", "give every event an id: line, its seq, or the browser's Last-Event-ID never moves"),
    ("data for seq", "an event's id is the seq of the change (or state) its data holds"),
    (
        ("got []", "nothing more"),
        "an event ends with a blank line; without one the browser dispatches nothing",
    ),
    (("missed)", "snapshot"), "Last-Event-ID names the last event the browser has: send what came after it"),
    ("'not-a-number'", "a header comes from the client: treat one that is not a number as absent"),
    ("'1' (back", "changes_after returns None when the history no longer reaches back: send the state"),
    ("no retry", "start the stream with a retry: line (milliseconds), ended by a blank line"),
]


@exercise(
    reference=solutions.events,
    hints=[
        "return a StreamingResponse(media_type='text/event-stream') around an async generator",
        "first yield a retry: line; with no usable Last-Event-ID, a snapshot event with id the fleet's seq",
        "with a Last-Event-ID, fleet.changes_after(that seq) is what the browser missed (None: too far back)",
        "then loop: await feed.wait_after(seq), yield each change after seq, until wait_after returns False",
    ],
    title="SSE stream",
)
async def events_exercise(events: Endpoint) -> CheckReport:
    """Section 4: ``GET /api/events`` sends ``retry:``, a snapshot (or, after ``Last-Event-ID``,
    what was missed), then each change as it happens, every event with its seq as ``id``."""
    report = CheckReport("SSE stream")
    async with _served(report, "/api/events", events, history=5) as (feed, http):
        await _changes(feed, 7)  # seqs 1-7; the history keeps 3-7
        for header, missed, why in _SSE_CASES:
            current = feed.fleet.seq
            last = None if header is None else header.format(current - missed)
            replay = [f"change {seq}" for seq in range(current - missed + 1, current + 1)]
            want = [*(replay if missed >= 0 else [f"snapshot {current}"]), f"change {current + 1}"]
            got, parser, problem = await _read_events(http, last, len(want) - 1, lambda: _changes(feed, 1))
            what = f"Last-Event-ID {last!r} ({why})"
            shown = _shown(got)
            ok = shown == want and not problem
            report.add(ok, f"{what}: expected {want}, got {shown}{'; ' + problem if problem else ''}")
            if header is None and parser.retry is None:
                report.add(False, f"{what}: no retry: line before the events")
    report.hints_for(SSE_HINTS)
    return report


# The exercises


ETAG_HINTS: Hints = [
    ("weak", "If-None-Match compares weakly (RFC 9110 13.1.2): a W/ prefix does not make tags differ"),
    ("list", "the header may carry several tags, separated by commas"),
    ("* (any", "* matches whatever the current representation is"),
    ("prefix", "compare whole tags, not parts of them"),
]
BREAK_EVEN_HINTS: Hints = [
    (None, "polling costs poll_bytes once per interval; pushing costs push_bytes once per change"),
    (None, "write both as bytes per second, set them equal, solve for the rate"),
]
TAG = '"7f3a"'


@exercise(
    reference=solutions.not_modified,
    hints=[
        'RFC 9110 13.1.2: If-None-Match compares weakly, so W/"x" and "x" name the same state',
        "the header may be *, or a list of tags separated by commas (with spaces around them)",
        "split the list, strip each tag and its W/ prefix, and look for the current tag among them",
    ],
    title="ETag check",
)
def check_etag_match(not_modified: Callable[[str | None, str], bool]) -> CheckReport:
    """Exercise 1: ``not_modified(if_none_match, etag)``: should the answer be 304?"""
    report = CheckReport("ETag check")
    cases = [
        (None, TAG, False, "no If-None-Match (a first request)"),
        (TAG, TAG, True, "the current tag"),
        ('"7f3b"', TAG, False, "another tag"),
        ('"7f3"', TAG, False, "a tag that is a prefix of the current one"),
        ('W/"7f3a"', TAG, True, "the current tag, marked weak"),
        (TAG, 'W/"7f3a"', True, "a weak current tag"),
        ('"01", "7f3a"', TAG, True, "a list holding the current tag"),
        ('"01", "02"', TAG, False, "a list without it"),
        ("*", TAG, True, "* (any representation)"),
    ]
    for header, etag, want, why in cases:
        got = call(report, f"{why}: If-None-Match {header!r}, ETag {etag}", not_modified, header, etag)
        if got is FAILED:
            continue
        verdict = f"{want} ({304 if want else 200})"
        ok = got is want or (isinstance(got, bool) is False and bool(got) is want)
        report.add(ok, f"{why}: If-None-Match {header!r}, ETag {etag}: expected {verdict}, got {got!r}")
    report.hints_for(ETAG_HINTS)
    return report


@exercise(
    reference=solutions.break_even_rate,
    hints=[
        "polling costs poll_bytes once per interval; pushing costs push_bytes once per change",
        "write both as bytes per second, set them equal, solve for the rate",
    ],
    title="break-even rate",
)
def check_break_even(break_even_rate: Callable[[float, float, float], float]) -> CheckReport:
    """Exercise 2: ``break_even_rate(interval, poll_bytes, push_bytes)``: changes per second
    at which pushing every change costs one tab as many bytes as polling every ``interval``."""
    report = CheckReport("break-even rate")
    cases = [
        (2.0, 600.0, 150.0, 2.0),
        (1.0, 100.0, 100.0, 1.0),
        (10.0, 500.0, 50.0, 1.0),
        (0.5, 300.0, 200.0, 3.0),
    ]
    for interval, poll_bytes, push_bytes, want in cases:
        what = f"interval {interval:g} s, {poll_bytes:g} B per poll, {push_bytes:g} B per pushed change"
        got = call(report, what, lambda *a: float(break_even_rate(*a)), interval, poll_bytes, push_bytes)
        if got is FAILED:
            continue
        ok = math.isclose(got, want, rel_tol=1e-6)
        report.add(ok, f"{what}: expected {want:g} changes/s, got {got:g}")
    report.hints_for(BREAK_EVEN_HINTS)
    return report
