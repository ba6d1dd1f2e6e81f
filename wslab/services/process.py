"""One server running as a child process: start it, know when it is ready, stop it, restart it.

The lifecycle is written once, as waits (:mod:`wslab.waiting`) that check and yield how
long to sleep; ``await server.start()`` runs them in the event loop, ``start_blocking()``
in code with no loop (a pytest session fixture), and the exit hook at interpreter exit.

A server started here listens on 127.0.0.1 only, writes nothing outside a temporary
directory, runs in its own process group (a Ctrl-C in the terminal reaches this process,
which stops it), and on Linux gets SIGTERM if this process dies without stopping it.
Stopping waits for the process to exit, killing it if it must, and removes its directory.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import weakref
from pathlib import Path
from typing import Self

from ..core.errors import WslabError
from ..runtime import net
from ..runtime.handles import ServerHandle, unregister
from ..runtime.waiting import Steps, poll, run_async, run_blocking

__all__ = ["START_TIMEOUT", "STOP_TIMEOUT", "ServerProcess", "ServiceUnavailable", "die_with_parent"]

logger = logging.getLogger("wslab.services")

#: Seconds a server gets to accept connections after starting, and to exit after SIGTERM.
START_TIMEOUT = 15.0
STOP_TIMEOUT = 5.0

#: Every server process started here, for the exit hook.
_started: weakref.WeakSet[ServerProcess] = weakref.WeakSet()


class ServiceUnavailable(WslabError, RuntimeError):
    """No such server can be had here: the message says what was tried and what to install."""


def die_with_parent() -> None:  # pragma: no cover - runs in the child
    """In a child, before exec: if this Python dies, the child gets SIGTERM (Linux only).

    Pass as ``preexec_fn`` (see :data:`DIE_WITH_PARENT`) when starting a child process.
    """
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


#: ``preexec_fn`` for child processes that must not outlive this one (None where unsupported).
DIE_WITH_PARENT = die_with_parent if sys.platform.startswith("linux") else None


class ServerProcess(ServerHandle):
    """A server program running as a child process of this one, on one port across restarts.

    Subclasses say how to start the program (:meth:`command`) and how to tell that it is
    ready (:meth:`is_ready`); Redis and NATS also say how to keep or forget their data.
    """

    kind = "server"
    path = ""
    #: What asks the program to stop (Kafka's tansu needs another: see KafkaServer).
    stop_signal = signal.SIGTERM

    def __init__(
        self, binary: Path, *, name: str | None = None, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        super().__init__(name or self.kind, (host, port or net.free_port(host)))
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
        """The program and its arguments."""
        raise NotImplementedError

    def is_ready(self, sock: socket.socket) -> bool:
        """Talk to the server on a connected socket: True if it is ready for clients."""
        return True

    def before_stop(self, keep_data: bool) -> None:
        """Called while the server still runs, before SIGTERM (Redis saves here)."""

    def clear_data(self) -> None:
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
        return 0  # not counted: its clients are not this process's

    def __repr__(self) -> str:
        state = f"running (pid {self.pid})" if self.serving else "stopped"
        origin = self.origin or self.binary
        return f"<{self.name} server {state} at {self.url}, {self.binary.name} from {origin}>"

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    # The lifecycle, once: waits that the methods below run with or without an event loop

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
                start_new_session=True,  # its own process group: we stop it, not the terminal
                preexec_fn=DIE_WITH_PARENT,
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
                return self.is_ready(sock)
        except OSError:
            return False

    def _port_taken(self) -> bool:
        """After a failed start on a port picked here: move to another one, and say so."""
        if self._any_port and self.starts <= 3 and "address already in use" in self.log_tail().lower():
            self.port = net.free_port(self.host)
            return True
        return False

    def _starting(self, timeout: float) -> Steps[None]:
        while True:
            self._spawn()
            try:
                ready = yield from poll(self._probe, timeout=timeout, interval=0.02)
            except ServiceUnavailable:
                if self._port_taken():
                    continue
                raise
            if not ready:
                yield from self._stopping(keep_data=False)
                raise ServiceUnavailable(
                    f"{self.binary.name} not ready after {timeout:g} s:\n{self.log_tail()}"
                )
            self._any_port = False  # from now on, restarts keep this port
            return

    def _stopping(self, keep_data: bool) -> Steps[None]:
        """Let the subclass prepare (Redis saves), ask it to stop (SIGTERM), wait, SIGKILL if it must."""
        process = self.process
        if process is None:
            return
        if process.poll() is None:
            with contextlib.suppress(Exception):
                self.before_stop(keep_data)
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(self.stop_signal)
            exited = yield from poll(lambda: process.poll() is not None, timeout=STOP_TIMEOUT)
            if not exited:
                logger.warning("%s did not stop within %g s; killing it", self.binary.name, STOP_TIMEOUT)
                process.kill()
                process.wait()
        self.process = None

    # Starting and stopping

    async def start(self, timeout: float = START_TIMEOUT) -> Self:
        """Start (if stopped) and wait until it accepts clients."""
        await run_async(self._starting(timeout))
        return self

    def start_blocking(self, timeout: float = START_TIMEOUT) -> Self:
        """:meth:`start` for code with no event loop."""
        run_blocking(self._starting(timeout))
        return self

    async def _close(self, code: int, reason: str) -> None:
        await run_async(self._stopping(keep_data=False))
        shutil.rmtree(self.workdir, ignore_errors=True)

    def stop_blocking(self) -> None:
        """:meth:`stop` for code with no event loop: the process ends, its directory goes."""
        run_blocking(self._stopping(keep_data=False))
        shutil.rmtree(self.workdir, ignore_errors=True)
        unregister(self)

    # The outage demo

    async def kill(self, *, keep_data: bool = False) -> None:
        """Stop the server process but keep this handle (same port) for :meth:`start`.

        ``keep_data=False`` is a crash of a server without persistence: what it held is
        gone when it comes back. ``keep_data=True`` is a planned restart: it saves
        first and loads again on start.
        """
        await run_async(self._stopping(keep_data))
        if not keep_data:
            self.clear_data()

    async def crash(self) -> None:
        """SIGKILL: the process dies mid-sentence, as in a real crash; its clients see 1006."""
        process = self.process
        if process is not None and process.poll() is None:
            process.kill()
            await asyncio.to_thread(process.wait)
        self.process = None

    async def restart(self, *, keep_data: bool = True, downtime: float = 0.0) -> Self:
        """Stop and start again on the same port, after ``downtime`` seconds down."""
        await self.kill(keep_data=keep_data)
        if downtime:
            await asyncio.sleep(downtime)
        return await self.start()


@atexit.register
def _stop_leftovers() -> None:
    """At interpreter exit (a kernel shutting down), stop any server still running."""
    for server in list(_started):
        with contextlib.suppress(Exception):
            server.stop_blocking()
