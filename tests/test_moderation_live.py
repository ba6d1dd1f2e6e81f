"""Kick, mute and clear over real connections: lesson 04's app and Python clients, and two chat
servers sharing one broker (the person moderated is on the other server).

Every client is a real :class:`ChatClient` (or a raw websockets connection, to read the frames
themselves) on 127.0.0.1; waits are conditions with deadlines.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx
import pytest
from helpers import TIMEOUT, close_code, wait_for
from support.web_app import start_web, stream
from websockets.asyncio.client import connect

from wslab.brokers.memory import MemoryBroker
from wslab.clients.chat import ChatClient
from wslab.core.close_codes import AppCloseCode
from wslab.core.moderation import ModerationError
from wslab.servers.chat import ChatServer
from wslab.servers.web import AsgiServerHandle, create_app, serve_web


@dataclass
class Room:
    """Lesson 04's app, and the people in it."""

    handle: AsgiServerHandle
    chat: ChatServer
    clients: dict[str, ChatClient] = field(default_factory=dict)

    async def token(self, name: str) -> str:
        async with httpx.AsyncClient(base_url=self.handle.url, trust_env=False, timeout=TIMEOUT) as http:
            response = await http.post("/api/token", json={"name": name})
        assert response.status_code == 200, response.text
        return response.json()["token"]

    async def join(self, name: str) -> ChatClient:
        client = ChatClient(
            self.handle.ws_url,
            name,
            get_token=lambda: self.token(name),
            delays=lambda: itertools.repeat(0.05),  # would come back at once, if it came back
        ).start()
        self.clients[name] = client
        await wait_for(lambda: client.live, what=f"{name} live")
        return client


@pytest.fixture
async def room() -> AsyncIterator[Room]:
    chat = ChatServer(server_id="web")
    room = Room(await serve_web(create_app(chat), name="moderated"), chat)
    yield room
    for client in room.clients.values():
        await client.stop()


async def test_a_kicked_person_reads_the_reason_and_does_not_come_back(room: Room) -> None:
    ana, bob = await room.join("ana"), await room.join("bob")
    await wait_for(lambda: set(ana.users) == {"ana", "bob"})

    await room.chat.kick("bob", reason="please stop posting links")

    await wait_for(lambda: bob.closes, what="bob's connection closed")
    await bob.wait()  # the client stopped by itself: no reconnect
    assert bob.closes == [(AppCloseCode.KICKED, "kicked: please stop posting links")]
    assert bob.rejected == "the instructor removed you from the room: please stop posting links"
    assert bob.connects == 1
    await wait_for(lambda: ">>> bob left the chat" in ana.lines(), what="ana hears bob leave")
    assert ana.lines()[-2:] == [">>> bob was removed by the instructor", ">>> bob left the chat"]
    assert "please stop posting links" not in json.dumps(ana.lines())  # the reason was bob's alone
    assert room.chat.room.users == ["ana"]

    # Coming back by hand (a reload) is refused too, with the same code.
    async with connect(room.handle.ws_url) as again:
        await again.send(json.dumps({"type": "hello", "name": "bob", "token": await room.token("bob")}))
        error = json.loads(await again.recv())
        assert (error["type"], error["code"]) == ("error", "kicked")
        assert await close_code(again) == AppCloseCode.KICKED
    with pytest.raises(ModerationError, match="nobody called 'bob'"):
        await room.chat.kick("bob")


async def test_a_muted_person_reads_on_but_cannot_send_until_unmuted(room: Room) -> None:
    ana, bob = await room.join("ana"), await room.join("bob")
    await room.chat.mute("Bob")  # as the instructor types it
    await wait_for(lambda: ">>> bob was muted by the instructor" in bob.lines(), what="bob told")

    await bob.send("can anyone hear me?")
    await wait_for(lambda: not bob.unacknowledged, what="bob's message answered")
    assert bob.notices[-1].startswith("error: the instructor muted you")
    await ana.send("bob still reads this")
    await wait_for(lambda: "[ana] bob still reads this" in bob.lines(), what="bob reads on")
    assert "can anyone hear me?" not in ana.texts() and bob.live and bob.closes == []

    await room.chat.unmute("bob")
    await wait_for(lambda: ">>> bob was unmuted by the instructor" in bob.lines(), what="bob told again")
    await bob.send("thanks")
    await wait_for(lambda: "[bob] thanks" in ana.lines(), what="ana hears bob again")
    with pytest.raises(ModerationError, match="'bob' is not muted"):
        await room.chat.unmute("bob")


async def test_clear_empties_every_transcript_and_the_room_talks_on(room: Room) -> None:
    ana, bob = await room.join("ana"), await room.join("bob")
    await ana.send("something regrettable")
    await wait_for(lambda: "[ana] something regrettable" in bob.lines())

    await room.chat.clear()
    cleared = [">>> the instructor cleared the chat"]
    await wait_for(lambda: ana.lines() == cleared and bob.lines() == cleared, what="both cleared")
    assert [event.kind for event in room.chat.room.transcript] == ["clear"]
    await bob.send("fresh start")
    await wait_for(lambda: ana.lines() == [*cleared, "[bob] fresh start"], what="talk goes on")
    assert ana.tracker.missing == [] and bob.tracker.missing == []  # a clear is no gap


async def test_decisions_reach_people_on_another_server_through_the_broker() -> None:
    """The instructor acts on server "front"; bob and cy are connected to server "back"."""
    broker = MemoryBroker()
    front, back = ChatServer(broker=broker, server_id="front"), ChatServer(broker=broker, server_id="back")
    front_url = (await front.serve(name="front")).url
    back_url = (await back.serve(name="back")).url
    ana, bob, cy = ChatClient(front_url, "ana"), ChatClient(back_url, "bob"), ChatClient(back_url, "cy")
    clients = [ana.start(), bob.start(), cy.start()]
    try:
        await wait_for(lambda: set(front.room.everyone) == {"ana", "bob", "cy"}, what="front knows everyone")

        await front.mute("cy")
        await wait_for(lambda: back.room.moderation.is_muted("cy"), what="back learns the mute")
        await cy.send("muted on back?")
        await wait_for(lambda: not cy.unacknowledged)
        assert cy.notices[-1].startswith("error: the instructor muted you")

        await front.kick("bob", reason="see me after class")
        await wait_for(lambda: bob.closes, what="bob closed by back")
        assert bob.closes == [(AppCloseCode.KICKED, "kicked: see me after class")]
        assert bob.rejected == "the instructor removed you from the room: see me after class"
        await wait_for(lambda: "bob" not in front.room.everyone, what="bob's leave reaches front")

        await front.clear()
        await wait_for(lambda: cy.lines() == [">>> the instructor cleared the chat"], what="cy cleared")
        assert [event.kind for event in back.room.transcript] == ["clear"]
    finally:
        for client in clients:
            await client.stop()


async def test_a_kick_reaches_a_page_on_the_plain_http_fallback_with_its_reason_and_code() -> None:
    """Over ``/api/stream`` (for networks that refuse WebSockets) the error and the close frame
    travel as events, so a page there stops as one on a WebSocket does."""
    web = await start_web()
    async with stream(web, "ann") as ann:
        await ann.message("live")
        await web.chat.kick("ann", reason="enough for today")
        told = await ann.message("error")
        events = await ann.ended()
    assert (told["code"], told["text"]) == (
        "kicked",
        "the instructor removed you from the room: enough for today",
    )
    assert events[-1].event == "close"
    assert json.loads(events[-1].data) == {"code": AppCloseCode.KICKED, "reason": "kicked: enough for today"}
