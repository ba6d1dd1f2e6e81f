"""Exercise checks for lesson 05: heartbeats, tried through a real :class:`~wslab.faults.FaultProxy`.

The blank (``heartbeat_exercise``: the learner's ``heartbeat(connection, interval, timeout)``,
run beside an echo loop) and the end-of-lesson exercises (``check_every_message_counts``,
``check_watchdog``) are :class:`~wslab.checks.report.Exercise` objects, with hints and wslab's
answer. ``check_heartbeat`` tries any echo handler with a heartbeat (``websockets``' keepalive,
wslab's ``keep_alive``) the way the blank's check tries the learner's.

Each check runs a few *trials* at once, each on its own loopback server behind its own
proxy: a slow but alive link that must be kept, a stalled one that must be given up on
within ``interval + timeout``, and for lesson 05's first exercise a client that talks all
the time and so needs no pings. Running them side by side keeps a check to about one
detection bound, which is what lets the lesson run quickly.

Timers in asyncio never fire early but may fire late, when the event loop gets round to
them; every bound here is ``interval + timeout`` plus :data:`LATE_TIMERS` for that.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.frames import Frame, Opcode
from websockets.protocol import State

from ..faults.proxy import FaultProxy
from ..runtime.handles import Handler, ServerHandle, serve, wait_until
from ..solutions import lesson05 as solutions
from .report import REPLY_TIMEOUT, CheckReport, Hints, error_text, exercise

__all__ = [
    "LATE_TIMERS",
    "check_every_message_counts",
    "check_heartbeat",
    "check_watchdog",
    "heartbeat_exercise",
]

#: Seconds allowed on top of a detection bound: the lateness of the event loop's timers.
LATE_TIMERS = 0.5
#: The slow link of the checks: this much latency each way.
SLOW = 0.1

_trial_ids = itertools.count(1)

#: Advice for what a heartbeat's trials catch, shown under the results.
HEARTBEAT_HINTS: Hints = [
    ("slow link", "a quiet client is alive as long as its pongs come back: count silence from the last pong"),
    ("stalled", "a tick that finds more than `timeout` since the last pong drops the connection"),
    ("raised", "the heartbeat runs in a task of its own: an exception there stops it for good"),
    (None, "a task beside the echo loop: sleep(interval), ping, note the time of each pong"),
]

EVERY_MESSAGE_HINTS: Hints = [
    ("expected no pings", "note the time of every message the client sends, as you do for pongs"),
    ("expected no pings", "then ping only when the client has been silent for `interval`"),
    ("slow link", "a quiet client still needs pings: its pongs are all you will hear from it"),
    ("stalled", "silence longer than `timeout` means dead: connection.transport.abort()"),
]

#: One line of a report: did it hold, and what it says.
Line = tuple[bool, str]


class _PingCountingConnection(ClientConnection):
    """A client connection that counts the protocol pings it receives (it still answers them)."""

    pings = 0

    def process_event(self, event: Any) -> None:
        if (
            isinstance(event, Frame) and event.opcode is Opcode.PING
        ):  # the handshake's response is not a frame
            self.pings += 1
        super().process_event(event)


@dataclass
class _Trial:
    """One server, one proxy in front of it, one client through the proxy."""

    server: ServerHandle
    proxy: FaultProxy
    client: _PingCountingConnection

    async def echoes(self, text: str) -> Line:
        await self.client.send(text)
        try:
            got = await asyncio.wait_for(self.client.recv(), REPLY_TIMEOUT + 2 * self.proxy_latency)
        except Exception as exc:
            return False, f"sent {text!r}: expected 'Echo: {text}', got {type(exc).__name__} {exc}"
        if got == f"Echo: {text}":
            return True, f"sent {text!r}, got {got!r}"
        return False, f"sent {text!r}: expected 'Echo: {text}', got {got!r}"

    @property
    def proxy_latency(self) -> float:
        return self.proxy.stats.client_to_server.latency


@asynccontextmanager
async def _trial(handler: Handler, what: str, **serve_options: Any) -> AsyncIterator[_Trial]:
    """A fresh server for ``handler`` and a client reaching it through a fresh proxy."""
    name = f"check:{what}:{next(_trial_ids)}"
    serve_options.setdefault("ping_interval", None)
    server = await serve(handler, name=name, **serve_options)
    proxy = await FaultProxy.start(server.host, server.port, name=f"{name}:proxy")
    client = None
    try:
        # No keepalive of the client's own: only the server's heartbeat is on trial.
        client = await connect(
            proxy.url_for("/"),
            ping_interval=None,
            close_timeout=0.2,
            open_timeout=REPLY_TIMEOUT,
            create_connection=_PingCountingConnection,
        )
        assert isinstance(client, _PingCountingConnection)  # create_connection= made it one
        yield _Trial(server, proxy, client)
    finally:
        if client is not None:
            client.transport.abort()  # no close handshake through a stalled proxy
        await proxy.stop()
        await server.stop()


async def _slow_link_kept(handler: Handler, *, bound: float, **serve_options: Any) -> list[Line]:
    """A client that says nothing over a slow link is kept, and still answered afterwards."""
    async with _trial(handler, "slow", **serve_options) as trial:
        lines = [await trial.echoes("hello")]
        trial.proxy.set_latency(SLOW)
        await asyncio.sleep(bound)  # the experiment: time passes, with heartbeats crossing the slow link
        kept = trial.server.connections == 1
        lines.append((kept, f"a quiet client on a slow link ({SLOW:g} s each way) is kept for {bound:g} s"))
        if kept:
            lines.append(await trial.echoes("still there?"))
        return lines


async def _stall_dropped(
    handler: Handler, *, interval: float, bound: float, **serve_options: Any
) -> list[Line]:
    """A client behind a stalled network is dropped within the bound, and not suspiciously early."""
    async with _trial(handler, "stall", **serve_options) as trial:
        first = await trial.echoes("hello")
        if not first[0]:
            return [first]
        loop = asyncio.get_running_loop()
        stalled_at = loop.time()
        trial.proxy.stall()
        latest = bound + LATE_TIMERS
        try:
            await wait_until(lambda: trial.server.connections == 0, timeout=latest)
        except TimeoutError:
            return [(False, f"a stalled client is still connected {latest:g} s after the stall")]
        took = loop.time() - stalled_at
        if took < interval / 2:
            return [
                (
                    False,
                    f"a stalled client was dropped after {took:.2f} s: before any ping could go unanswered",
                )
            ]
        return [
            (True, f"a stalled client is dropped within {bound:g} s (+{LATE_TIMERS:g} s for late timers)")
        ]


async def _busy_client_not_pinged(handler: Handler, *, interval: float, **serve_options: Any) -> list[Line]:
    """A client that sends a message every interval / 3 needs no pings: it is plainly alive."""
    async with _trial(handler, "busy", **serve_options) as trial:
        lines = []
        for n in range(9):
            ok, line = await trial.echoes(f"busy {n}")
            if not ok:
                return [(False, line)]
            await asyncio.sleep(interval / 3)  # the experiment: a client that talks this often
        pings = trial.client.pings
        talked, every = round(9 * interval / 3, 2), round(interval / 3, 3)
        talking = f"a client talking every {every:g} s for {talked:g} s"
        lines.append(
            (
                pings == 0,
                f"{talking} is not pinged" if pings == 0 else f"{talking} was pinged: expected no pings",
            )
        )
        lines.append((trial.server.connections == 1, "the talking client is kept"))
        return lines


async def _run_trials(report: CheckReport, trials: list[Awaitable[list[Line]]]) -> CheckReport:
    for outcome in await asyncio.gather(*trials, return_exceptions=True):
        if isinstance(outcome, BaseException):
            report.add(False, f"the server failed: {error_text(outcome)}")
        else:
            for ok, line in outcome:
                report.add(ok, line)
    return report


async def check_heartbeat(
    handler: Handler, *, interval: float, timeout: float, **serve_options: Any
) -> CheckReport:
    """A server's heartbeat keeps a slow client and drops a stalled one within ``interval + timeout``.

    ``handler`` runs on a real server with websockets' keepalive off, unless ``serve_options``
    turn it on (``ping_interval=..., ping_timeout=...``): then the built-in keepalive is on trial.
    """
    report = await _heartbeat_trials(handler, interval=interval, timeout=timeout, **serve_options)
    report.hints_for(HEARTBEAT_HINTS)
    return report


async def _heartbeat_trials(
    handler: Handler, *, interval: float, timeout: float, **serve_options: Any
) -> CheckReport:
    """A slow link kept and a stall dropped, side by side, as a report with no hints yet."""
    bound = round(interval + timeout, 3)
    report = CheckReport("heartbeat")
    trials: list[Awaitable[list[Line]]] = [
        _slow_link_kept(handler, bound=bound, **serve_options),
        _stall_dropped(handler, interval=interval, bound=bound, **serve_options),
    ]
    return await _run_trials(report, trials)


# --- the blank: the learner's heartbeat, beside an echo loop ----------------------------------


def _beside_echo(
    heartbeat: Callable[..., Awaitable[None]], interval: float, timeout: float, errors: list[str]
) -> Handler:
    """The lesson's ``echo_with_heartbeat``: an echo loop, with ``heartbeat`` in a task beside it.

    What the heartbeat raises (other than NotImplementedError, which the exercise reports as
    not written yet) is noted in ``errors``, so that it reads as a line of the report, never
    as "Task exception was never retrieved".
    """

    async def beating(connection: Any) -> None:  # a wrong signature raises here, in the task
        await heartbeat(connection, interval, timeout)

    async def echo_with_heartbeat(connection: Any) -> None:
        beat = asyncio.create_task(beating(connection))
        try:
            async for message in connection:
                await connection.send(f"Echo: {message}")
        finally:
            exc = beat.exception() if beat.done() and not beat.cancelled() else None
            if exc is not None and not isinstance(exc, NotImplementedError) and error_text(exc) not in errors:
                errors.append(error_text(exc))
            beat.cancel()

    return echo_with_heartbeat


@exercise(
    reference=solutions.heartbeat,
    hints=[
        "one loop: wait `interval` with asyncio.sleep, then decide whether the client is dead;"
        " if it is not, ping it",
        "`await connection.ping()` sends a ping and returns a future that is done when the pong"
        " arrives; the future's add_done_callback() runs a function of yours at that moment",
        "keep the time of the last pong (time.monotonic()) in a variable the callback updates"
        " (nonlocal); start it at the time the heartbeat starts",
        "dead means more than `timeout` since the last pong: abort the connection's transport"
        " (no close handshake: a dead peer never answers) and return",
        "a future that ends because the connection closed is cancelled or holds an exception:"
        " that is not a pong, so check pong.cancelled() and pong.exception() first",
    ],
)
async def heartbeat_exercise(
    heartbeat: Callable[..., Awaitable[None]], *, interval: float, timeout: float
) -> CheckReport:
    """Section 2's blank: ``heartbeat(connection, interval, timeout)``, run in a task beside an
    echo loop, keeps a quiet client on a slow link and drops a stalled one within
    ``interval + timeout``."""
    errors: list[str] = []
    handler = _beside_echo(heartbeat, interval, timeout, errors)
    report = await _heartbeat_trials(handler, interval=interval, timeout=timeout)
    for error in errors:
        report.add(False, f"your heartbeat raised {error}")
    report.hints_for(HEARTBEAT_HINTS)
    return report


@exercise(
    reference=solutions.every_message_counts,
    hints=[
        "start from your heartbeat: the same loop, the same timeout, one more source of news",
        "note the time of every message the client sends, in the echo loop, as the pong callback does",
        "on each turn, ping only if the client has been silent for `interval`; otherwise sleep"
        " until it would be",
    ],
)
async def check_every_message_counts(handler: Handler, *, interval: float, timeout: float) -> CheckReport:
    """Lesson 05, exercise 1: any message from the client counts as a sign of life.

    A client that talks all the time gets no pings; a quiet one on a slow link is pinged
    and kept; a stalled one is dropped within ``interval + timeout``.
    """
    bound = round(interval + timeout, 3)
    report = CheckReport("every message counts")
    await _run_trials(
        report,
        [
            _busy_client_not_pinged(handler, interval=interval),
            _slow_link_kept(handler, bound=bound),
            _stall_dropped(handler, interval=interval, bound=bound),
        ],
    )
    report.hints_for(EVERY_MESSAGE_HINTS)
    return report


# --- exercise 2: the client's side -----------------------------------------------------------


def _ticker(every: float) -> Handler:
    """A server that sends ``tick 1``, ``tick 2``, ... every ``every`` seconds: an app-level ping."""

    async def ticks(connection: Any) -> None:
        for n in itertools.count(1):
            await connection.send(f"tick {n}")
            await asyncio.sleep(every)

    return ticks


@exercise(
    reference=solutions.watchdog,
    hints=[
        "the silence that matters is the time since the last message, so wait for each message"
        " with its own deadline",
        "asyncio.wait_for(ws.recv(), timeout) raises TimeoutError when no message came in time;"
        " cancelling recv() that way loses nothing",
        "on TimeoutError: abort the connection's transport (a silent server would never answer a"
        " close frame) and return the list",
    ],
)
async def check_watchdog(
    watchdog: Callable[[ClientConnection, float], Awaitable[list[Any]]], *, timeout: float
) -> CheckReport:
    """Lesson 05, exercise 2: ``await watchdog(ws, timeout)`` collects messages until the server goes silent.

    The server ticks every ``timeout / 3`` through a real proxy: first over a slow link (the
    watchdog must keep going), then the proxy stalls (it must give up within ``timeout``
    plus :data:`LATE_TIMERS`, close the connection, and return the ticks in order).
    """
    report = CheckReport("watchdog")
    every = timeout / 3
    async with _trial(_ticker(every), "watchdog") as trial:
        watching = asyncio.ensure_future(watchdog(trial.client, timeout))
        try:
            await _watch_then_stall(report, trial, watching, timeout)
        finally:
            watching.cancel()
    return report


async def _watch_then_stall(
    report: CheckReport, trial: _Trial, watching: asyncio.Future[Any], timeout: float
) -> None:
    trial.proxy.set_latency(SLOW)
    slow_for = round(1.5 * timeout, 3)
    await asyncio.sleep(slow_for)  # the experiment: a slow server that still ticks
    if watching.done():
        got = watching.exception() or watching.result()
        report.add(False, f"over a slow link that still ticks, it gave up within {slow_for:g} s: {got!r}")
        report.hint("count silence from the last message received, not from the start")
        return
    report.add(
        True, f"keeps watching a slow server ({SLOW:g} s each way) that still ticks, for {slow_for:g} s"
    )

    loop = asyncio.get_running_loop()
    stalled_at = loop.time()
    trial.proxy.stall()
    latest = timeout + LATE_TIMERS
    await asyncio.wait({watching}, timeout=latest)
    took = loop.time() - stalled_at
    if not watching.done():
        report.add(False, f"the server went silent; the watchdog is still waiting {latest:g} s later")
        report.hint("wait for each message at most `timeout` seconds: asyncio.wait_for or asyncio.timeout")
        return
    if watching.exception() is not None:
        exc = watching.exception()
        report.add(False, f"the server went silent; the watchdog raised {type(exc).__name__}: {exc}")
        report.hint("catch the timeout and return what you received")
        return
    early = took < timeout / 2
    report.add(
        not early,
        f"the server went silent; it gave up within {timeout:g} s (+{LATE_TIMERS:g} s for late timers)"
        + (f", but after only {took:.2f} s" if early else ""),
    )
    await _closed_and_returned(report, trial.client, watching.result())


async def _closed_and_returned(report: CheckReport, ws: ClientConnection, got: Any) -> None:
    try:
        await wait_until(lambda: ws.state is State.CLOSED, timeout=LATE_TIMERS)
        report.add(True, "it closed the connection it gave up on")
    except TimeoutError:
        report.add(False, f"it closed the connection it gave up on: expected CLOSED, got {ws.state.name}")
        report.hint("abort the connection: a close handshake needs an answer the silent server will not send")
    ticks = [f"tick {n}" for n in range(1, len(got) + 1)] if isinstance(got, list) else []
    ok = isinstance(got, list) and len(got) >= 3 and got == ticks
    line = "it returned the ticks it received, in order from 'tick 1'"
    if not ok:
        shown = got if not isinstance(got, list) or len(got) <= 4 else [*got[:2], "...", got[-1]]
        line += f": got {shown!r}"
        report.hint("return every message received, in the order it came")
    report.add(ok, line)
