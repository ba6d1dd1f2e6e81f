"""Lesson 04's web app served for a test, and what a test needs to talk to it.

Shared by ``test_web.py``, ``test_web_stream.py``, ``test_web_audience.py`` and
``test_moderation_live.py``: the real app on uvicorn on 127.0.0.1; HTTP with httpx, WebSockets
with the websockets client or wslab's ChatClient, the plain-HTTP chat as Server-Sent Events.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
from helpers import TIMEOUT
from websockets.asyncio.client import ClientConnection, connect

from wslab import EventLog
from wslab.clients.chat import ChatClient
from wslab.core import SseParser
from wslab.core.sse import SseEvent
from wslab.servers.chat import ChatServer
from wslab.servers.web import AsgiServerHandle, create_app, serve_web


@dataclass
class Web:
    """A served app and what a test needs to talk to it."""

    handle: AsgiServerHandle
    chat: ChatServer
    log: EventLog

    @property
    def ws_url(self) -> str:
        return self.handle.ws_url

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.handle.port}"

    def http(self, **options: Any) -> httpx.AsyncClient:
        # trust_env=False: a proxy configured in the environment must not see these requests.
        return httpx.AsyncClient(base_url=self.handle.url, trust_env=False, timeout=TIMEOUT, **options)

    async def token(self, name: str, **body: str) -> str:
        async with self.http() as http:
            response = await http.post("/api/token", json={"name": name, **body})
        assert response.status_code == 200, response.text
        return response.json()["token"]

    async def join(self, name: str, **options: Any) -> ClientConnection:
        """A raw json-dialect user with a valid token, live in the room."""
        connection = await connect(self.ws_url, **options)
        await hello(connection, name, token=await self.token(name))
        welcome = await message_of_type(connection, "welcome")
        assert welcome["name"] == name
        await message_of_type(connection, "live")
        return connection

    def client(self, name: str) -> ChatClient:
        """A started ChatClient that fetches its token over HTTP before each hello."""

        async def get_token() -> str:
            return await self.token(name)

        return ChatClient(
            self.ws_url, name, get_token=get_token, delays=lambda: itertools.repeat(0.01)
        ).start()


async def start_web(
    chat: ChatServer | None = None,
    *,
    name: str = "web",
    port: int = 0,
    max_message: int = 64 * 1024,
    **app_options: Any,
) -> Web:
    chat = chat or ChatServer(server_id="web")
    log = app_options.pop("log", None) or EventLog()
    app = create_app(chat, log=log, **app_options)
    handle = await serve_web(app, name=name, host="127.0.0.1", port=port, max_message=max_message)
    return Web(handle, chat, log)


async def hello(connection: ClientConnection, name: str, **fields: object) -> None:
    await connection.send(json.dumps({"type": "hello", "name": name, **fields}))


async def receive(connection: ClientConnection) -> dict[str, Any]:
    return json.loads(await asyncio.wait_for(connection.recv(), TIMEOUT))


async def message_of_type(connection: ClientConnection, kind: str, **match: object) -> dict[str, Any]:
    """Read json messages until one of type ``kind`` (with the ``match`` fields) arrives."""
    while True:
        message = await receive(connection)
        if message["type"] == kind and all(message.get(k) == v for k, v in match.items()):
            return message


async def chat_texts(connection: ClientConnection, count: int) -> list[str]:
    """The next ``count`` chat texts from others that arrive, skipping everything else."""
    texts: list[str] = []
    while len(texts) < count:
        message = await receive(connection)
        if message["type"] == "chat":
            texts.append(message["text"])
    return texts


# --- the chat over plain HTTP: a stream of Server-Sent Events, and posts -----------------


class Stream:
    """One page's chat over HTTP: the open event stream, and posting to its session."""

    def __init__(self, http: httpx.AsyncClient, response: httpx.Response) -> None:
        self.http = http
        self.response = response
        self.parser = SseParser()
        self.chunks = response.aiter_text()
        self.pending: list[SseEvent] = []
        self.session = ""

    async def event(self) -> SseEvent:
        while not self.pending:
            self.pending += self.parser.feed(await asyncio.wait_for(anext(self.chunks), TIMEOUT))
        return self.pending.pop(0)

    async def message(self, kind: str) -> dict[str, Any]:
        """The next protocol message of type ``kind`` (others are skipped)."""
        while True:
            event = await self.event()
            if event.event == "message" and (data := json.loads(event.data))["type"] == kind:
                return data

    async def ended(self) -> list[SseEvent]:
        """Every event until the stream ends."""
        events = [*self.pending]
        self.pending = []
        with contextlib.suppress(StopAsyncIteration):
            while True:
                events += self.parser.feed(await asyncio.wait_for(anext(self.chunks), TIMEOUT))
        return events

    async def send(self, *messages: dict[str, Any]) -> httpx.Response:
        body = {"session": self.session, "messages": list(messages)}
        return await self.http.post("/api/send", json=body)


@contextlib.asynccontextmanager
async def stream(web: Web, name: str, **hello: Any) -> AsyncIterator[Stream]:
    """A live stream for ``name`` (welcomed, with its session), closed on exit."""
    token = await web.token(name)
    headers = hello.pop("headers", {})
    async with web.http() as http:
        body = {"type": "hello", "name": name, "token": token, **hello}
        async with http.stream("POST", "/api/stream", json=body, headers=headers) as response:
            assert response.status_code == 200, await response.aread()
            assert response.headers["content-type"].startswith("text/event-stream")
            opened = Stream(http, response)
            first = await opened.event()
            assert first.event == "session"
            opened.session = json.loads(first.data)["session"]
            yield opened
