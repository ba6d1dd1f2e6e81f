"""Several chat servers sharing one broker, as lesson 06 runs them: OS processes, or in-kernel stand-ins."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from websockets.frames import CloseCode

from ..brokers.memory import MemoryBroker
from ..runtime.handles import ServerHandle, register, release
from ..servers.chat import ChatServer
from .process import START_TIMEOUT, ServerProcess

__all__ = ["ChatProcess", "InProcessChat", "start_chat_servers"]


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
        host: str = "127.0.0.1",
        port: int = 0,
        stop_code: int = CloseCode.GOING_AWAY,
        log_format: str = "text",
    ) -> None:
        super().__init__(Path(sys.executable), name=f"chat-{server_id}", host=host, port=port)
        self.broker_url = broker_url
        self.server_id = server_id
        #: The close code its clients get when it is stopped (SIGTERM): 1012 for a restart.
        self.stop_code = stop_code
        self.log_format = log_format
        self.origin = f"python -m wslab serve chat --id {server_id}"

    def command(self) -> list[str]:
        where = ["--host", self.host, "--port", str(self.port), "--id", self.server_id]
        broker = ["--broker", self.broker_url] if self.broker_url else []
        stopping = ["--stop-code", str(int(self.stop_code)), "--log-format", self.log_format]
        return [str(self.binary), "-m", "wslab", "serve", "chat", *where, *broker, *stopping]

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
        if self.handle is not None:
            await self.handle.crash()

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
