"""Several chat servers sharing one broker, as lesson 06 runs them: OS processes
(:class:`~wslab.services.chat_processes.ChatProcess`), or, when no broker can be had,
:class:`InProcessChat` stand-ins in this kernel sharing an in-process broker.
"""

from __future__ import annotations

import asyncio

from ..brokers.memory import MemoryBroker
from ..runtime.handles import ServerHandle
from ..services.chat_processes import ChatProcess
from .chat import ChatServer

__all__ = ["InProcessChat", "start_chat_servers"]


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
