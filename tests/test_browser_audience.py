"""Lesson 04's chat page in a real browser when the room is hard to get into: a full room, a
wrong join code, and a network that refuses WebSockets (the page falls back to plain HTTP).

Same harness as ``test_browser_chat.py`` (``support.chat_pages``: Chromium through Playwright's
async API, the app served in-process, the page's real CSP); each test builds the app it needs.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from helpers import until
from support.chat_pages import STATE_RECORDER, WAIT, ChatPage, Room, assert_same_room, hold_tokens

from wslab.core.close_codes import AppCloseCode
from wslab.servers.chat import ChatServer
from wslab.servers.web import create_app, serve_web

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120)]

#: Run before the page's own scripts: a browser whose network refuses every WebSocket.
WEBSOCKETS_THROW = """window.WebSocket = function () {
  throw new DOMException("WebSockets are blocked here", "SecurityError");
};"""
#: The other way a network refuses them: the handshake never completes (a proxy answers 403).
WEBSOCKETS_NEVER_OPEN = """(() => {
  const Real = window.WebSocket;
  window.WebSocket = class extends EventTarget {
    constructor(url) {
      super();
      this.url = url;
      this.readyState = Real.CONNECTING;
      setTimeout(() => {
        this.readyState = Real.CLOSED;
        this.dispatchEvent(new Event("error"));
        const close = new Event("close");
        Object.assign(close, { code: 1006, reason: "", wasClean: false });
        this.dispatchEvent(close);
      }, 20);
    }
    send() { throw new DOMException("not open", "InvalidStateError"); }
    close() {}
  };
  Object.assign(window.WebSocket, { CONNECTING: 0, OPEN: 1, CLOSING: 2, CLOSED: 3 });
})();"""


@dataclass
class Rooms:
    """What a test serves: apps of its own making, in the test's browser."""

    browser: Any
    made: list[Room] = field(default_factory=list)

    async def serve(self, chat: ChatServer, **app_options: Any) -> Room:
        handle = await serve_web(create_app(chat, **app_options), name=f"audience-{len(self.made)}")
        room = Room(self.browser, handle, chat)
        self.made.append(room)
        return room


@pytest.fixture
async def rooms(chromium: Any, request: pytest.FixtureRequest) -> AsyncIterator[Rooms]:
    """The rooms a test serves, each closed afterwards with its pages and clients."""
    served = Rooms(chromium)
    failed_before = request.session.testsfailed
    yield served
    failed = request.session.testsfailed > failed_before
    for room in served.made:
        await room.close(artifacts=request.node.name if failed else None)


async def open_page(room: Room, name: str, *, fragment: str = "", init: str = "") -> ChatPage:
    """The chat page, not joined yet: ``init`` runs before its scripts."""
    context = await room.browser.new_context(viewport={"width": 1000, "height": 800})
    context.set_default_timeout(WAIT * 1000)
    page = await context.new_page()
    chat_page = ChatPage(name, context, page)
    page.on("pageerror", lambda error: chat_page.errors.append(f"pageerror: {error}"))
    page.on("request", lambda request: chat_page.requests.append(request.url))
    await page.add_init_script(STATE_RECORDER + init)
    room.pages.append(chat_page)
    response = await page.goto(room.handle.url + fragment)
    assert response is not None and response.ok
    await page.fill("#name", name)
    return chat_page


async def join_error(page: ChatPage) -> str:
    return await page.hook("joinError")


# --- a full room ----------------------------------------------------------------------------------


async def test_a_full_room_says_so_and_lets_the_page_in_when_a_place_frees(rooms: Rooms) -> None:
    room = await rooms.serve(ChatServer(server_id="web", max_users=1), room_full_retry=1)
    first = await room.python_client("first")
    tried: list[float] = []

    async def count_token_requests(route: Any) -> None:
        tried.append(time.monotonic())
        await route.continue_()

    ana = await open_page(room, "ana")
    await ana.context.route("**/api/token", count_token_requests)
    await ana.page.click("#join")

    async def told() -> bool:
        return await join_error(ana) == "the room is full, try again in a moment"

    async def retried() -> bool:
        return len(tried) >= 3

    await until(told, "the page to say the room is full", describe=ana.describe)
    await until(retried, "the page to try twice more, by itself")
    status = await ana.page.text_content("#status") or ""
    assert status.startswith("the room is full; trying again in "), status
    assert await ana.page.is_visible("#join-view") and not await ana.page.is_visible("#chat-view")
    # Slowly: never sooner than the server's Retry-After (1 s here), and never over a WebSocket.
    gaps = [later - earlier for earlier, later in itertools.pairwise(tried)]
    assert all(gap >= 0.9 for gap in gaps), gaps
    assert not [url for url in ana.requests if url.startswith("ws")], ana.requests

    await first.stop()  # a place frees: the page gets in without a click
    await ana.until_state("live")
    assert await ana.page.is_visible("#chat-view")
    assert ana.errors == []


# --- a wrong join code ------------------------------------------------------------------------------


async def test_a_wrong_code_is_told_apart_from_a_missing_one(rooms: Rooms) -> None:
    room = await rooms.serve(ChatServer(server_id="web"), join_code="314159")
    ana = await open_page(room, "ana")
    await ana.page.click("#join")
    await until(lambda: join_error(ana), "the page to ask for the code")
    assert await join_error(ana) == "this room needs its join code"
    assert await ana.page.is_visible("#code")

    await ana.page.fill("#code", "271828")
    await ana.page.click("#join")

    async def wrong() -> bool:
        return await join_error(ana) == "that join code is wrong"

    await until(wrong, "the page to say the code is wrong", describe=ana.describe)
    assert await ana.state() == "closed"

    await ana.page.fill("#code", "314159")
    await ana.page.click("#join")
    await ana.until_state("live")
    assert ana.errors == []


async def test_the_code_in_the_join_link_is_used_and_a_wrong_one_is_said(rooms: Rooms) -> None:
    room = await rooms.serve(ChatServer(server_id="web"), join_code="314159")
    ben = await open_page(room, "ben", fragment="#code=314150")  # a typo in the printed link
    await ben.page.click("#join")

    async def wrong() -> bool:
        return await join_error(ben) == "that join code is wrong"

    await until(wrong, "the page to say the code is wrong")
    assert await ben.page.input_value("#code") == "314150"


# --- a network that refuses WebSockets: the same chat over plain HTTP -------------------------------


@pytest.mark.parametrize("blocked", [WEBSOCKETS_THROW, WEBSOCKETS_NEVER_OPEN], ids=["throws", "never-opens"])
async def test_without_websockets_the_page_chats_over_http_and_resumes_after_a_cut(
    rooms: Rooms, blocked: str
) -> None:
    room = await rooms.serve(ChatServer(server_id="web"))
    py = await room.python_client("py")
    ana = await open_page(room, "ana", init=blocked)
    await ana.page.click("#join")
    await ana.until_state("live")
    assert await ana.hook("transport") == "http"
    assert await ana.page.text_content("#status") == "live (over plain HTTP)"
    assert any("the chat goes over plain HTTP instead" in n for n in await ana.hook("notices"))
    await room.users_everywhere({"py", "ana"})

    # Both ways: the page's message reaches the Python client, and the other way round.
    await ana.send("typed in a browser without WebSockets")
    await py.send("and a reply from Python")
    before = await room.settle(
        ["[ana] typed in a browser without WebSockets", "[py] and a reply from Python"]
    )

    # A cut (the server closes ana's stream with 4001: reconnect and resume), with traffic meanwhile.
    asked, release = await hold_tokens(ana)
    assert await room.chat.disconnect("ana", code=AppCloseCode.TOO_SLOW, reason="cut by the test: resume")
    await ana.until_state("reconnecting")
    await asyncio.wait_for(asked.wait(), WAIT)
    missed = [f"[py] while ana is away {n}" for n in range(3)]
    for n in range(3):
        await py.send(f"while ana is away {n}")
    await ana.send("ana typed this while away")
    release.set()
    await ana.until_state("live")
    after = await room.settle([*missed, "[ana] ana typed this while away"])

    assert await ana.hook("transport") == "http"
    assert_same_room(after["py"], after["ana"], "ana")
    shown = [line for _, line in after["ana"]]
    for line in [*missed, "[ana] ana typed this while away", "[py] and a reply from Python"]:
        assert shown.count(line) == 1, f"{line!r} shown {shown.count(line)} times"
    assert await ana.hook("missing") == []
    assert len(after["ana"]) > len(before["ana"])
    assert not [url for url in ana.requests if url.startswith("ws")]  # nothing got past the block
    assert ana.errors == []
