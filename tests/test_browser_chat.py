"""Lesson 04's chat page in a real browser: Chromium (Playwright), the app, Python clients.

The app is served in-process by uvicorn (``serve_web(create_app(ChatServer(...)))``), and
the browser is driven with Playwright's *async* API, so the server, the Python
``ChatClient`` and the pages all share the test's event loop: a test can cut one user's
connection on the server and hold the page's reconnect while the others keep talking.

What only a browser can show: that ``chat.html`` + ``chat.js``, under the app's real
Content-Security-Policy, join the room, keep one transcript with everyone else, resume
after a server-side close without losing or repeating anything, and render markup as text.

The tests keep the page's real CSP (no ``bypass_csp``). Waits poll ``page.evaluate`` with a
deadline (``until``) rather than ``page.wait_for_function("...")``, which the page's README
says its CSP refuses (with Playwright 1.65 and Chromium 156 it did not, but polling does not
depend on it). Nothing sleeps to let something happen.

Needs Chromium (see ``jupyterlab_harness.find_chromium``); skipped without it, except
under ``CI=true`` where a missing browser fails.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from accessibility import check_async
from helpers import until
from support.chat_pages import (
    WAIT,
    ChatPage,
    Room,
    assert_same_room,
    hold_tokens,
)

from wslab.core.close_codes import AppCloseCode
from wslab.servers.chat import ChatServer
from wslab.servers.web import create_app, serve_web

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120)]


@pytest.fixture
async def room(chromium: Any, request: pytest.FixtureRequest) -> AsyncIterator[Room]:
    chat = ChatServer(server_id="web")
    handle = await serve_web(create_app(chat), name="browser-chat", host="127.0.0.1", port=0)
    room = Room(chromium, handle, chat)
    failed_before = request.session.testsfailed
    try:
        yield room
    finally:
        await room.close(artifacts=request.node.name if request.session.testsfailed > failed_before else None)


async def test_pages_and_python_client_share_one_transcript(room: Room) -> None:
    """Two browsers and a Python client talk; everyone shows every message once, in one order."""
    py = await room.python_client("py")
    ana = await room.open_page("ana")
    ben = await room.open_page("ben")
    await room.users_everywhere({"py", "ana", "ben"})

    # One at a time, each seen by everyone before the next ...
    expected: list[str] = []
    for author, text in [("ana", "hello from ana"), ("ben", "hi ana, ben here"), ("py", "python says hi")]:
        await (py.send(text) if author == "py" else (ana if author == "ana" else ben).send(text))
        expected.append(f"[{author}] {text}")
        await room.settle(expected)

    # ... then all three at once: the server picks one order, and everyone must show that one.
    async def burst(author: str, send: Callable[[str], Awaitable[None]]) -> list[str]:
        texts = [f"{author} burst {i}" for i in range(4)]
        for text in texts:
            await send(text)
        return [f"[{author}] {text}" for text in texts]

    sent = await asyncio.gather(burst("ana", ana.send), burst("ben", ben.send), burst("py", py.send))
    expected += [line for lines in sent for line in lines]
    transcripts = await room.settle(expected)

    reference = transcripts["py"]
    assert reference[0][1] == ">>> py joined the chat"
    assert [seq for seq, _ in reference] == list(range(reference[0][0], reference[-1][0] + 1)), "py has a gap"
    for line in expected:
        assert [shown for _, shown in reference].count(line) == 1, line
    for page in (ana, ben):
        assert_same_room(reference, transcripts[page.name], page.name)
        assert await page.lines() == [line for _, line in transcripts[page.name]]  # the hook agrees
        assert await page.hook("missing") == []
        assert await page.states() == ["connecting", "live"]
    # Each author's messages in the order they were typed.
    for author in ("ana", "ben", "py"):
        mine = [line for _, line in reference if line.startswith(f"[{author}] {author} burst")]
        assert mine == [f"[{author}] {author} burst {i}" for i in range(4)]
    room.assert_clean()


async def test_page_resumes_after_server_side_close(room: Room) -> None:
    """The server closes ben's connection with 4001 ("too slow": reconnect and resume). While
    ben's page is away (its token request held), the others talk and ben types a message;
    then the page reconnects, replays what it missed exactly once, and delivers its message."""
    py = await room.python_client("py")
    ana = await room.open_page("ana")
    ben = await room.open_page("ben")
    await room.users_everywhere({"py", "ana", "ben"})
    await ana.send("before the cut")
    before = await room.settle(["[ana] before the cut"])
    lines_before = len(before["ben"])

    # Hold ben's next token request (the first step of every reconnect) until released.
    asked, release = await hold_tokens(ben)

    # 4001 is what ChatServer itself closes an overflowing client with; chat.js reconnects
    # after anything but 1008, 4002 and a 1000 it asked for.
    assert await room.chat.disconnect("ben", code=AppCloseCode.TOO_SLOW, reason="cut by the test: resume")

    async def dropped() -> bool:
        return "ben" not in room.chat.room.users

    await until(dropped, "the server to drop ben")
    await ben.until_state("reconnecting")
    await asyncio.wait_for(asked.wait(), WAIT)

    # While ben is away: the others talk, and ben types (it waits in the page's outbox).
    missed = []
    for i in range(3):
        await py.send(f"py while ben is away {i}")
        await ana.send(f"ana while ben is away {i}")
        missed += [f"[py] py while ben is away {i}", f"[ana] ana while ben is away {i}"]
    await ben.send("ben typed this while away")
    assert await ben.hook("unacked") == ["ben typed this while away"]
    pages, room.pages = room.pages, [ana]  # settle() for those still in the room
    try:
        away = await room.settle(missed)
    finally:
        room.pages = pages
    assert ">>> ben left the chat" in [line for _, line in away["py"]]
    assert len(await ben.transcript()) == lines_before, "ben's page got messages while disconnected"
    assert await ben.state() == "reconnecting"

    release.set()
    await ben.until_state("live")
    transcripts = await room.settle([*missed, "[ben] ben typed this while away"])
    await room.users_everywhere({"py", "ana", "ben"})

    reference = transcripts["py"]
    for page in (ana, ben):
        assert_same_room(reference, transcripts[page.name], page.name)
        assert await page.hook("missing") == []
    shown = [line for _, line in transcripts["ben"]]
    for line in [*missed, "[ben] ben typed this while away", ">>> ben left the chat"]:
        assert shown.count(line) == 1, f"{line!r} shown {shown.count(line)} times on ben's page"
    assert shown.index(">>> ben left the chat") < shown.index(missed[0]) < shown.index(missed[-1])
    assert await ben.states() == ["connecting", "live", "reconnecting", "live"]
    notices = await ben.hook("notices")
    assert any(n.startswith("connection closed (4001 cut by the test") for n in notices), notices
    assert any(n.startswith("reconnected as ben") for n in notices), notices
    assert not any("missed" in n or "lost" in n or "restarted" in n for n in notices), notices
    assert await ana.states() == ["connecting", "live"]
    room.assert_clean()


async def test_markup_is_shown_as_text(room: Room) -> None:
    """Markup from the Python client (and from a page) is shown literally; nothing is parsed as HTML.

    Under the page's CSP an injected ``onerror`` handler could not run anyway (no dialog, but
    a CSP console error, which ``assert_clean`` would report): the decisive checks are the
    literal text, no such element in the DOM, and no request for the image's ``src``.
    """
    py = await room.python_client("py")
    ana = await room.open_page("ana")
    ben = await room.open_page("ben")
    await room.users_everywhere({"py", "ana", "ben"})

    attack = "<img src=x onerror=alert(1)>"
    await py.send(attack)
    await ana.send("<b>bold?</b> & <script>alert(2)</script>")
    lines = [f"[py] {attack}", "[ana] <b>bold?</b> & <script>alert(2)</script>"]
    transcripts = await room.settle(lines)

    for page in (ana, ben):
        assert [line for _, line in transcripts[page.name] if line in lines] == lines
        counts = await page.js(
            """() => ({
                 messages: document.querySelectorAll("#messages img, #messages b, #messages script").length,
                 anywhere: document.querySelectorAll("img, b").length,
                 scripts: document.scripts.length,
               })"""
        )
        assert counts == {"messages": 0, "anywhere": 0, "scripts": 2}, counts  # stream.js, chat.js
        # An <img src=x> that had been in the DOM even for a moment would have fetched /x.
        assert not [url for url in page.requests if url.rstrip("/").endswith("/x")], page.requests
        assert page.dialogs == []
    room.assert_clean()


async def test_the_instructor_mutes_clears_and_kicks_and_the_kicked_page_says_why_and_stops(
    room: Room,
) -> None:
    """What each person's page shows of the instructor's decisions (``ChatServer.mute/clear/kick``)."""
    py = await room.python_client("py")
    ana = await room.open_page("ana")
    ben = await room.open_page("ben")
    await room.users_everywhere({"py", "ana", "ben"})

    await room.chat.mute("ben")
    await room.settle([">>> ben was muted by the instructor"])
    await ben.send("may I speak?")
    await until(lambda: _answered(ben), "ben's message to be refused", describe=ben.describe)
    assert (await ben.hook("notices"))[-1].startswith("error: the instructor muted you")
    await room.chat.unmute("ben")
    await ben.send("thanks")
    await room.settle(["[ben] thanks"])

    await room.chat.clear()
    cleared = [">>> the instructor cleared the chat"]

    async def all_cleared() -> bool:
        return all([await page.lines() == cleared for page in (ana, ben)]) and py.lines() == cleared

    await until(all_cleared, "every screen to be cleared", describe=ana.describe)
    assert await ana.js('() => document.querySelectorAll("#messages li").length') == 1

    token_requests = len([url for url in ben.requests if url.endswith("/api/token")])
    await room.chat.kick("ben", reason="please take a break")
    await ben.until_state("closed")
    why = "the instructor removed you from the room: please take a break"
    assert await ben.page.text_content("#status") == f"disconnected: {why}"
    assert await ben.page.is_visible("#join-error") and await ben.page.text_content("#join-error") == why
    assert await ben.page.is_visible("#join-form")
    assert await ben.states() == ["connecting", "live", "closed"]  # never "reconnecting": it stops
    assert any(
        n.startswith("connection closed (4003 kicked: please take a break") for n in await ben.hook("notices")
    )
    room.pages.remove(ben)  # out of the room: the others' transcripts go on without it
    await room.settle([">>> ben was removed by the instructor", ">>> ben left the chat"])
    assert "please take a break" not in json.dumps(await ana.lines())  # the reason was ben's alone
    assert len([url for url in ben.requests if url.endswith("/api/token")]) == token_requests
    (await check_async(ben.page, "the kicked person's page")).assert_clean()
    assert ben.errors == [] and ben.dialogs == []
    room.assert_clean()


async def _answered(page: ChatPage) -> bool:
    return not await page.hook("unacked")


@pytest.mark.parametrize("scheme", ["light", "dark"])
async def test_the_chat_page_passes_axe_joining_and_in_the_room(room: Room, scheme: str) -> None:
    """axe-core finds no serious or critical problem on the page, before and after joining, with
    every kind of line shown (messages, presence, moderation, notices, the outbox)."""
    ana = await room.open_page("ana", scheme=scheme, join=False)
    (await check_async(ana.page, f"the join form ({scheme})")).assert_clean()
    await _background_is_set(ana)
    await ana.join()
    py = await room.python_client("py")
    await py.send("<b>hello</b> from python")
    await ana.send("hi py")
    await room.chat.mute("py")
    await room.settle(["[ana] hi py", ">>> py was muted by the instructor"])
    await ana.js('() => { document.getElementById("message").value = "a draft"; }')
    (await check_async(ana.page, f"the chat page in the room ({scheme})")).assert_clean()
    room.assert_clean()


async def _background_is_set(page: ChatPage) -> None:
    """axe measures contrast against the page's own background: one the browser paints by
    default (its canvas, dark in dark mode) would be taken for white."""
    background = await page.js("() => getComputedStyle(document.body).backgroundColor")
    assert background not in ("", "rgba(0, 0, 0, 0)", "transparent"), background
