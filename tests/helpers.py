"""Shared helpers for the wslab tests: ``from helpers import ...`` in a test module.

Fixtures live in ``conftest.py`` (pytest finds them there); what a test calls lives here.
Test modules import from this module only, never from each other.

Time in the suite is counted in :data:`MS`, one scaled millisecond, as in websockets' own
tests: a slow or busy machine runs it with ``WSLAB_TESTS_TIMEOUT_FACTOR=3`` (every wait,
timeout and bound three times longer, the ratios between them unchanged).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import html
import itertools
import json
import os
import re
import socket
import ssl
import sys
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import pytest
import trustme
from websockets.asyncio.client import ClientConnection

from wslab.clients.chat import ChatClient
from wslab.core.actions import Action, FanOut, FetchHistory, GoLive, Publish
from wslab.core.backoff import backoff_delays
from wslab.core.member import Member
from wslab.core.room import ChatRoom
from wslab.core.room_event import RoomEvent
from wslab.runtime.waiting import poll, run_async
from wslab.servers.chat import ChatServer
from wslab.services import start_services
from wslab.services.broker_servers import BrokerServer, Services, plan_services
from wslab.services.process import ServiceUnavailable

if TYPE_CHECKING:
    from wslab.checks.report import CheckReport

ROOT = Path(__file__).resolve().parent.parent
T = TypeVar("T")

# --- time -------------------------------------------------------------------------------

#: How much slower than a quiet 2-core machine this one may be (CI may raise it).
TIMEOUT_FACTOR = float(os.environ.get("WSLAB_TESTS_TIMEOUT_FACTOR", "1"))
#: One millisecond, scaled: every timeout, interval and bound in the tests is a multiple of it.
MS = 0.001 * TIMEOUT_FACTOR
#: Upper bound for any single wait in the suite; a healthy run needs a fraction of it.
TIMEOUT = 5_000 * MS
#: The same for a wait that includes a Python process starting or exiting: its imports alone
#: take a second of CPU, several seconds when the machine is busy.
PROCESS_TIMEOUT = 3 * TIMEOUT


async def wait_for(
    predicate: Callable[[], object], timeout: float = TIMEOUT, what: str | Callable[[], str] = ""
) -> None:
    """Poll ``predicate`` every 10 ms until it is true; fail the test after ``timeout`` s.

    ``what`` names the condition in the failure; a callable is asked then, to show the state it saw.
    """
    clock = asyncio.get_running_loop().time
    if not await run_async(poll(predicate, timeout=timeout, clock=clock)):
        described = what() if callable(what) else what
        raise AssertionError(f"condition {described or predicate!r} still false after {timeout:g} s")


async def wait_while_progressing(
    predicate: Callable[[], object], progress: Callable[[], object], stall: float = TIMEOUT, what: str = ""
) -> None:
    """Like :func:`wait_for`, for long work: fail only if ``progress()`` stays the same for ``stall`` s.

    A burst of thousands of messages through a real broker takes a few seconds on an idle
    machine and many more on a busy one; what must not happen is that it stops moving.
    """
    loop = asyncio.get_running_loop()
    seen, deadline = progress(), loop.time() + stall
    while not predicate():
        if (now := progress()) != seen:
            seen, deadline = now, loop.time() + stall
        elif loop.time() >= deadline:
            raise AssertionError(f"condition {what or predicate!r} still false, no progress for {stall:g} s")
        await asyncio.sleep(0.01)


async def assert_stays(predicate: Callable[[], object], duration: float, what: str = "") -> None:
    """Check that ``predicate`` holds all through ``duration`` s (loop time); fail the moment it does not.

    The one deliberate wait in the suite: a test that shows something does *not* happen
    (a connection is not cut, a client is not dropped) has to let the time pass, and says
    so by calling this, with the window written in :data:`MS`. Checked every 10 ms, so a
    failure names the moment, not only the end of the window.
    """
    loop = asyncio.get_running_loop()
    started = loop.time()
    while (elapsed := loop.time() - started) < duration:
        assert predicate(), f"{what or predicate!r} stopped holding after {elapsed:.3f} s of {duration:g} s"
        await asyncio.sleep(0.01)
    assert predicate(), f"{what or predicate!r} stopped holding at the end of {duration:g} s"


def cpu_seconds(pid: int) -> float | None:
    """The CPU time process ``pid`` has used so far; None once it is gone."""
    import psutil  # IPython requires it

    try:
        used = psutil.Process(pid).cpu_times()
    except psutil.Error:
        return None
    return used.user + used.system


async def while_working(pid: int, step: Awaitable[T], stall: float = TIMEOUT, what: str = "") -> T:
    """``await step`` for as long as process ``pid`` keeps using CPU; fail after ``stall`` s without.

    For what a process does as it starts (imports, then its first lines): seconds of CPU on
    an idle machine, many times that beside a busy one, where no fixed deadline fits; a
    process that hangs uses none.
    """
    task = asyncio.ensure_future(step)
    try:
        used = cpu_seconds(pid)
        while True:
            done, _ = await asyncio.wait({task}, timeout=stall)
            if done:
                return task.result()
            if (now := cpu_seconds(pid)) == used:
                raise AssertionError(f"{what or step!r}: process {pid} used no CPU for {stall:g} s")
            used = now
    finally:
        task.cancel()


async def until(
    check: Callable[[], Awaitable[Any]],
    what: str,
    timeout: float = 3 * TIMEOUT,
    describe: Callable[[], Awaitable[str]] | None = None,
) -> Any:
    """Poll the async ``check`` until it returns something truthy (returned); fail after ``timeout``.

    For conditions that take a round trip to read, such as a page's state in a browser.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = await check()
        if result:
            return result
        if loop.time() >= deadline:
            detail = f"\n{await describe() if describe else result!r}"
            raise AssertionError(f"still waiting after {timeout:g} s for {what}{detail}")
        await asyncio.sleep(0.02)


class LoopLag:
    """The worst lateness of a 10 ms sleep while it watches: how busy the machine is.

    On a busy machine every wake-up comes late; a bound that adds a few times this moves
    with the machine, not with a guess, and stays tight on an idle one.
    """

    def __init__(self) -> None:
        self.worst = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _watch(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            asked = loop.time() + 0.01
            await asyncio.sleep(0.01)
            self.worst = max(self.worst, loop.time() - asked)

    def start(self) -> None:
        self.worst = 0.0
        self._task = asyncio.ensure_future(self._watch())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()


async def on_time(run: Callable[[], Awaitable[T]], margin: float, attempts: int = 4) -> T:
    """``await run()`` until one run keeps time: the loop never ``margin`` s or more late.

    For the exercise checks, whose verdicts rest on timers a fraction of a second apart in
    one event loop (a client's next message and a server's ping, a ping and a proxy's idle
    timeout): a loop starved for longer than that by a busy machine fires them together, and
    the verdict says nothing about the code under test. Such a run is set aside whatever it
    found (or raised), and the result of the first run that kept time is returned, for the
    test to assert. If none did, the test is skipped and says why, or fails under ``CI=true``.
    """
    lag = LoopLag()
    for _ in range(attempts):
        lag.start()
        try:
            result = await run()
        except Exception:
            if lag.worst < margin:
                raise
            continue
        finally:
            lag.stop()
        if lag.worst < margin:
            return result
    too_busy(
        f"the event loop was {lag.worst:.2f} s late in each of {attempts} runs; this check needs it"
        f" within {margin:g} s (a machine this busy cannot tell a slow heartbeat from a late timer)"
    )


# --- sockets ----------------------------------------------------------------------------


async def close_code(connection: ClientConnection, timeout: float = TIMEOUT) -> int | None:
    """Wait until ``connection`` is closed and return the close code the client received."""
    await asyncio.wait_for(connection.wait_closed(), timeout)
    return connection.close_code


async def refuses_connections(port: int, host: str = "127.0.0.1") -> bool:
    """True if nothing listens on ``host:port`` any more (the TCP connect is refused)."""
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), TIMEOUT)
    except ConnectionRefusedError:
        return True
    writer.close()
    await writer.wait_closed()
    return False


@contextlib.contextmanager
def refused_port() -> Iterator[int]:
    """A port on 127.0.0.1 that refuses connections until the ``with`` block ends.

    Bound but not listening: a connect gets a reset (refused) on Linux and macOS, and no
    other program can take the port meanwhile, as it could one picked free and closed.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


# --- broker servers ---------------------------------------------------------------------


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def unavailable(reason: str) -> None:
    """Skip, or under ``CI=true`` fail: CI must run every broker test against a real server."""
    if in_ci():
        pytest.fail(f"CI needs this broker server: {reason}", pytrace=False)
    pytest.skip(reason)


def too_busy(reason: str) -> NoReturn:
    """Skip a timing verdict this machine cannot give, or under ``CI=true`` fail: CI must give it."""
    if in_ci():
        pytest.fail(f"CI's machine is too busy for this test: {reason}", pytrace=False)
    pytest.skip(reason)


@contextlib.asynccontextmanager
async def own_broker_server(kind: str, *, persistent: bool = False) -> AsyncIterator[BrokerServer]:
    """A ``redis``, ``nats`` or ``kafka`` server for one test alone, so restarting it disturbs no
    other; ``persistent``: one that keeps every write across a SIGKILL (see ``start_services``)."""
    try:
        services = await start_services(
            redis=kind == "redis",
            nats=kind == "nats",
            kafka=kind == "kafka",
            required=True,
            register=False,
            persistent=persistent,
        )
    except ServiceUnavailable as exc:
        unavailable(str(exc))
    server = getattr(services, kind)
    try:
        if server is None:
            unavailable(f"{kind} comes from an environment URL; restarting it is not up to the tests")
        assert server is not None
        yield server
    finally:
        await services.stop()


# --- chat clients -----------------------------------------------------------------------


def backlogs(chat: ChatServer) -> dict[str, int]:
    """Bytes waiting to be sent, per user connected to ``chat``."""
    return {name: member.connection.backlog for name, member in chat.room.members.items()}


def quick_delays() -> Iterator[float]:
    """Reconnection delays for tests: 10 ms, 20 ms, 40 ms, then 50 ms; no randomness."""
    return backoff_delays(first=10 * MS, cap=50 * MS, jitter=lambda: 1.0)


def assert_complete_transcript(client: ChatClient) -> None:
    """Each event once, in order, nothing missing: consecutive sequence numbers."""
    seqs = [event.seq for event in client.events]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), f"not consecutive: {seqs}"
    assert client.tracker.missing == []
    assert client.tracker.duplicates == 0


class Clients:
    """Starts :class:`ChatClient` objects that reconnect quickly; ``stop_all()`` after the test."""

    def __init__(self) -> None:
        self.started: list[ChatClient] = []

    def start(self, url: str, name: str, **options: Any) -> ChatClient:
        options.setdefault("delays", quick_delays)
        client = ChatClient(url, name, **options).start()
        self.started.append(client)
        return client

    async def join(self, url: str, name: str, **options: Any) -> ChatClient:
        """Start a client and wait until it is live (welcomed, replay over)."""
        client = self.start(url, name, **options)
        await wait_for(lambda: client.live, what=f"{name} is live")
        return client

    async def stop_all(self) -> None:
        for client in self.started:
            await asyncio.wait_for(client.stop(), TIMEOUT)


# --- the room without sockets (wslab.core) ----------------------------------------------


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class NumberingBroker:
    """Numbers events like a real broker would: the room never numbers anything itself."""

    def __init__(self) -> None:
        self.seqs = itertools.count(1)

    def number(self, event: RoomEvent) -> RoomEvent:
        return event.with_seq(next(self.seqs))


def hello(name: str, **fields: object) -> str:
    return json.dumps({"type": "hello", "name": name, **fields})


def shell(room: ChatRoom, actions: list[Action], last_seq: int = 0) -> list[Action]:
    """What the chat server does with the room's actions, without sockets or a broker: history
    is the room's ``last_seq`` and nothing before it; sends are done at once; published events
    are handed back. Returns the actions that reach the outside: sends, closes, publishes."""
    out: list[Action] = []
    todo = deque(actions)
    while todo:
        action = todo.popleft()
        match action:
            case FetchHistory(member):
                todo.extendleft(reversed(room.history_arrived(member, last_seq, [])))
            case GoLive(member):
                todo.extendleft(reversed(room.go_live(member)))
            case Publish(event):
                room.published(event)
                out.append(action)
            case _:
                out.append(action)
    return out


def say(text: str, ref: str = "") -> str:
    return json.dumps({"type": "chat", "text": text, "ref": ref})


def live_member(room: ChatRoom, name: str, first: str | None = None, seq: int = 0) -> Member:
    """Admit ``name``, welcome it at ``seq`` and take it live, as the server does."""
    actions = shell(room, room.hello(f"conn-{name}", first if first is not None else hello(name)), seq)
    assert name in room.members, actions
    return room.members[name]


def texts(plan: FanOut) -> dict[str, list[str]]:
    """Who receives what in a fan-out: member name -> texts."""
    received: dict[str, list[str]] = {}
    for delivery in plan.deliveries.values():
        for member in delivery.to:
            received.setdefault(member.name, []).append(delivery.text)
    return received


# --- exercise check reports -------------------------------------------------------------


def failing(report: CheckReport, fragment: str) -> str:
    """The one failure line containing ``fragment``; fails if there is none."""
    lines = [line for line in report.failures if fragment in line]
    assert lines, f"no failure mentions {fragment!r}:\n{report}"
    return lines[0]


def assert_hint(report: CheckReport, fragment: str) -> None:
    """A hint mentioning ``fragment`` is shown under the results."""
    shown = [line for line in str(report).splitlines() if line.startswith("  hint: ")]
    assert any(fragment in line for line in shown), f"no hint mentions {fragment!r}:\n{report}"


def assert_passed(report: CheckReport) -> None:
    assert report.passed, str(report)
    assert report.failures == []
    assert "hint:" not in str(report)
    n = len(report.results)
    assert str(report).splitlines()[0] == f"{report.exercise}: PASSED ({n} of {n} checks hold)"


def assert_not_yet(report: CheckReport) -> None:
    assert not report
    assert "NOT YET" in str(report).splitlines()[0]
    assert "  FAIL " in str(report)


# --- widget state saved in a notebook ---------------------------------------------------

#: The MIME type under which a notebook's metadata keeps its widgets' state.
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"


def plain(html_text: str) -> str:
    """The text an HTML widget shows: tags dropped, entities decoded."""
    return html.unescape(re.sub(r"<[^>]+>", "", html_text))


# --- what only the tests use, kept out of the package -------------------------------------


def new_key() -> str:
    """A fresh random ``Sec-WebSocket-Key``: 16 random bytes, base64-encoded, as a client sends."""
    return base64.b64encode(os.urandom(16)).decode()


@dataclass
class LocalCA:
    """A certificate authority made on the spot (``trustme``), as lesson 08 makes one by hand:
    it signs a server certificate, and clients that trust it (and only those) accept it."""

    hosts: tuple[str, ...] = ("localhost", "127.0.0.1", "::1")
    _ca: Any = field(init=False, repr=False)
    _cert: Any = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._ca = trustme.CA()
        self._cert = self._ca.issue_cert(*self.hosts)

    def server_context(self) -> ssl.SSLContext:
        """For ``serve(..., ssl=...)``: presents the certificate issued for :attr:`hosts`."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._cert.configure_cert(context)
        return context

    def client_context(self) -> ssl.SSLContext:
        """For ``connect("wss://...", ssl=...)``: verifies certificates against this CA only."""
        context = ssl.create_default_context()  # verifies the chain and the host name
        context.load_verify_locations(cadata=self.ca_pem)
        return context

    def write_server_files(self, cert: Path, key: Path) -> None:
        """The server's certificate chain and private key as PEM files, for ``--tls CERT KEY``."""
        for pem in self._cert.cert_chain_pems:
            with cert.open("ab") as out:
                out.write(pem.bytes())
        self._cert.private_key_pem.write_to_path(str(key))

    @property
    def ca_pem(self) -> str:
        """The CA's certificate (public): what a client must trust, e.g. in a file."""
        return self._ca.cert_pem.bytes().decode()


def start_services_blocking(
    *,
    redis: bool = True,
    nats: bool = True,
    kafka: bool = False,
    required: bool = False,
    redis_port: int = 0,
    nats_port: int = 0,
    kafka_port: int = 0,
) -> Services:
    """``start_services`` for code with no event loop (a pytest session fixture); not registered."""
    wanted = {"redis": redis, "nats": nats, "kafka": kafka}
    ports = {"redis": redis_port, "nats": nats_port, "kafka": kafka_port}
    services, servers = plan_services(wanted=wanted, required=required, ports=ports)
    try:
        for server in servers:
            services.adopt(server.start_blocking())
    except BaseException:
        for server in servers:
            server.stop_blocking()
        raise
    return services


# --- `python -m wslab ...` as a process -------------------------------------------------


class Wslab:
    """One ``python -m wslab ...`` process; its stdout is read line by line, with deadlines."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        #: Every stdout line read so far, without line endings.
        self.lines: list[str] = []

    @classmethod
    async def start(cls, *args: str) -> Wslab:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "wslab",
            *args,
            cwd=ROOT,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        return cls(process)

    async def expect(
        self, pattern: str, timeout: float = PROCESS_TIMEOUT, *, starting: bool = False
    ) -> re.Match[str]:
        """Read stdout until a line matches ``pattern`` (a regex, searched); fail on timeout or exit.

        ``starting``: the line comes as the process starts, so wait while it works
        (:func:`while_working`) instead of until a deadline.
        """
        assert self.process.stdout is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            reading = self.process.stdout.readline()
            try:
                if starting:
                    raw = await while_working(self.process.pid, reading, what=f"waiting for {pattern!r}")
                else:
                    raw = await asyncio.wait_for(reading, deadline - loop.time())
            except (TimeoutError, AssertionError):
                raw = None
            if not raw:
                err = await self._stop_and_read_stderr()
                why = "timed out" if raw is None else "stdout ended"
                raise AssertionError(
                    f"{why} waiting for {pattern!r}; stdout so far: {self.lines!r}; stderr: {err}"
                )
            line = raw.decode().rstrip("\r\n")
            self.lines.append(line)
            match = re.search(pattern, line)
            if match:
                return match

    async def type(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(f"{line}\n".encode())
        await self.process.stdin.drain()

    def close_stdin(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()

    async def finish(self, timeout: float = PROCESS_TIMEOUT) -> tuple[int, list[str], str]:
        """Wait for the exit: its status, every stdout line (including those read before), stderr."""
        out, err = await asyncio.wait_for(self.process.communicate(), timeout)
        self.lines += out.decode().splitlines()
        assert self.process.returncode is not None
        return self.process.returncode, self.lines, err.decode()

    async def _stop_and_read_stderr(self) -> str:
        if self.process.returncode is None:
            self.process.kill()
        _, err = await self.process.communicate()
        return err.decode()

    async def kill(self) -> None:
        if self.process.returncode is None:
            self.process.kill()
            await self.process.wait()


#: The line ``serve chat`` prints once it listens: its URL and port.
LISTENING = re.compile(r"^chat server listening on (ws://127\.0\.0\.1:(\d+)/) \(Ctrl-C to stop\)$")


async def serve_chat(processes: list[Wslab], *options: str, port: int = 0) -> tuple[Wslab, str]:
    """``serve chat`` on 127.0.0.1 (as a process, kept in ``processes``) and the URL it announced."""
    server = await Wslab.start("serve", "chat", "--host", "127.0.0.1", "--port", str(port), *options)
    processes.append(server)
    match = await server.expect(LISTENING.pattern, starting=True)
    return server, match.group(1)
