"""Chat servers in processes of their own, as lesson 06 runs them: ``python -m wslab serve chat``.

A process manager: it knows the command line, not the chat's classes (the stand-ins that run
in the kernel when no broker can be had are :mod:`wslab.servers.chat_cluster`'s).
"""

from __future__ import annotations

import sys
from pathlib import Path

from ..core.close_codes import CloseCode
from ..runtime.handles import register, release
from .process import START_TIMEOUT, ServerProcess

__all__ = ["ChatProcess"]


class ChatProcess(ServerProcess):
    """A lesson 02 chat server in its own OS process (``python -m wslab serve chat``).

    Lesson 06 runs two or three of these on different ports, sharing one broker, and
    crashes one mid-conversation (:meth:`crash`) to show that its clients resume elsewhere.
    It listens only once its broker subscription is up, so accepting a connection is ready.
    """

    kind = "chat"
    scheme = "ws"
    path = "/"

    def __init__(
        self,
        broker_url: str,
        *,
        server_id: str,
        room: str = "lobby",
        host: str = "127.0.0.1",
        port: int = 0,
        stop_code: int = CloseCode.GOING_AWAY,
        log_format: str = "text",
        compression: str | None = "deflate",
    ) -> None:
        super().__init__(Path(sys.executable), name=f"chat-{server_id}", host=host, port=port)
        self.broker_url = broker_url
        self.server_id = server_id
        #: Servers over one broker share a room by this name.
        self.room = room
        #: The close code its clients get when it is stopped (SIGTERM): 1012 for a restart.
        self.stop_code = stop_code
        self.log_format = log_format
        #: permessage-deflate ("deflate", if the client offers it) or None: off (lesson 08).
        self.compression = compression
        self.origin = f"python -m wslab serve chat --id {server_id}"

    def command(self) -> list[str]:
        where = ["--host", self.host, "--port", str(self.port), "--id", self.server_id, "--room", self.room]
        broker = ["--broker", self.broker_url] if self.broker_url else []
        stopping = ["--stop-code", str(int(self.stop_code)), "--log-format", self.log_format]
        compression = ["--compression", self.compression or "none"]
        return [str(self.binary), "-m", "wslab", "serve", "chat", *where, *broker, *stopping, *compression]

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
