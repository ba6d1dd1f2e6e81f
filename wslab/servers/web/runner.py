"""Serving an ASGI app with uvicorn in the running event loop: in a kernel, a script or the CLI.

Nothing happens on import: the log filters that keep uvicorn's records useful are installed
when the first server starts (:func:`serve_web`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Iterator
from typing import Any

from starlette.applications import Starlette

from ...runtime.event_log import EventLog
from ...runtime.handles import ServerHandle, register, release, wait_until
from ..chat import ChatServer

__all__ = ["AsgiServerHandle", "serve_web"]


class _DenialNoise(logging.Filter):
    """uvicorn's sans-I/O WebSockets log an error after every refused handshake (HTTP 403 or
    503 sent on purpose through the denial-response extension); that is not an error here."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "returned without completing handshake" not in record.getMessage()


class _NoQueryStrings(logging.Filter):
    """uvicorn logs each WebSocket request's path with its query string (``"WebSocket
    /ws?token=..." [accepted]``, at INFO), and so does the websockets protocol's debug log:
    keep the path, drop the query, as :class:`AccessLog` does."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(_without_query(arg) for arg in record.args)
        return True


def _without_query(arg: object) -> object:
    if isinstance(arg, str) and arg.startswith("/") and "?" in arg:
        return f"{arg.partition('?')[0]}?(not logged)"
    return arg


def _quiet_uvicorn() -> None:
    """Install the filters above, once. Quiet unless the user configures logging (as the
    command line does): in a kernel, stray records from background tasks would land in
    whichever cell happens to run."""
    errors = logging.getLogger("uvicorn.error")
    if any(isinstance(f, _DenialNoise) for f in errors.filters):
        return
    logging.getLogger("uvicorn").addHandler(logging.NullHandler())
    errors.addFilter(_DenialNoise())
    errors.addFilter(_NoQueryStrings())


def _server_class() -> type:
    import uvicorn

    class KernelServer(uvicorn.Server):
        """uvicorn without its signal handlers: in a Jupyter kernel, SIGINT is the
        kernel's own interrupt, and a script stops through :func:`serve_until_signalled`."""

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield

    return KernelServer


class AsgiServerHandle(ServerHandle):
    """A uvicorn server running an ASGI app in this event loop."""

    scheme = "http"

    def __init__(
        self,
        name: str,
        server: Any,
        sock: socket.socket,
        task: asyncio.Task[None],
        chat: ChatServer | None,
        *,
        log: EventLog | None = None,
    ) -> None:
        super().__init__(name, sock.getsockname(), log=log)
        self.server = server
        self._socket = sock
        self._task = task
        self.chat = chat

    @property
    def ws_url(self) -> str:
        return self.url.replace("http", "ws", 1) + "ws"

    @property
    def connections(self) -> int:
        return (
            len(self.chat.room.users) if self.chat is not None else len(self.server.server_state.connections)
        )

    @property
    def serving(self) -> bool:
        return self.server.started and not self._task.done()

    async def _close(self, code: int, reason: str) -> None:
        if self.chat is not None:
            await self.chat.close_connections(code, reason)
        self.server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._socket.close()


async def serve_web(
    app: Starlette,
    *,
    name: str = "web",
    host: str = "127.0.0.1",
    port: int = 0,
    max_message: int = 64 * 1024,
    ping_interval: float | None = 20.0,
    ping_timeout: float | None = 20.0,
    tls: tuple[str, str] | None = None,
) -> AsgiServerHandle:
    """Serve ``app`` with uvicorn in the running event loop and return at once.

    Re-run safe like :func:`wslab.serve`: a server of this process already under
    ``name`` or on ``port`` is stopped first. WebSockets use uvicorn's implementation on
    top of the :mod:`websockets` sans-I/O protocol; messages over ``max_message`` bytes
    close the connection with 1009. ``tls`` is ``(certificate file, key file)``, both PEM:
    then the app answers ``https://`` and ``wss://`` only.
    """
    import uvicorn

    _quiet_uvicorn()
    await release(name, host, port)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    sock.setblocking(False)
    config = uvicorn.Config(
        app,
        ws="websockets-sansio",
        ws_max_size=max_message,
        ws_ping_interval=ping_interval,
        ws_ping_timeout=ping_timeout,
        lifespan="off",
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=5,
        ssl_certfile=tls[0] if tls else None,
        ssl_keyfile=tls[1] if tls else None,
    )
    server = _server_class()(config)
    task = asyncio.get_running_loop().create_task(server.serve(sockets=[sock]), name=f"uvicorn-{name}")
    await wait_until(lambda: server.started or task.done(), timeout=10)
    if task.done():
        sock.close()
        task.result()  # raises what stopped it
        raise RuntimeError("uvicorn stopped before it started")
    chat = getattr(app.state, "chat", None)
    handle = AsgiServerHandle(name, server, sock, task, chat)
    if tls:
        handle.scheme = "https"
    if chat is not None:
        await chat.attach()
        handle.on_stop(chat.detach)
    return register(handle)
