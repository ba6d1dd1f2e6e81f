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
import contextlib
import itertools
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from accessibility import check_async
from helpers import stop_servers  # noqa: F401  (autouse: every server a test starts is stopped)
from jupyterlab_harness import ARTIFACTS, CHROMIUM_ARGS, find_chromium, skip_or_fail

from wslab.clients.chat import ChatClient
from wslab.core.close_codes import AppCloseCode
from wslab.core.protocol import render_plain
from wslab.servers.chat import ChatServer
from wslab.servers.web import AsgiServerHandle, create_app, serve_web

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120)]

#: Deadline of any single wait (seconds); a healthy run needs a small fraction of it.
WAIT = 15.0
#: The room as the pages render it: li.msg lines as (data-seq, text of the line).
TRANSCRIPT_JS = """() => [...document.querySelectorAll("#messages li.msg")].map(
  (li) => [Number(li.dataset.seq), li.querySelector(".text").textContent])"""
#: Every value #status[data-state] takes, in order (installed before the page's own script).
STATE_RECORDER = """(() => {
  window.__wslabStates = [];
  new MutationObserver((records) => {
    for (const record of records) {
      const state = record.target.dataset.state;
      const states = window.__wslabStates;
      if (record.target.id === "status" && states[states.length - 1] !== state) states.push(state);
    }
  }).observe(document, {subtree: true, attributes: true, attributeFilter: ["data-state"]});
})();"""

Transcript = list[tuple[int, str]]


async def until(
    check: Callable[[], Awaitable[Any]],
    what: str,
    timeout: float = WAIT,
    describe: Callable[[], Awaitable[str]] | None = None,
) -> Any:
    """Poll the async ``check`` until it returns something truthy (returned); fail after ``timeout``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = await check()
        if result:
            return result
        if loop.time() >= deadline:
            detail = f"\n{await describe() if describe else result!r}"
            raise AssertionError(f"still waiting after {timeout:g} s for {what}{detail}")
        await asyncio.sleep(0.02)


@dataclass
class ChatPage:
    """One person's chat page in a browser context of its own, with what it logged."""

    name: str
    context: Any
    page: Any
    errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)

    async def js(self, script: str, arg: Any = None) -> Any:
        return await self.page.evaluate(script, arg)

    async def hook(self, method: str) -> Any:
        """``window.wslabChat.<method>()``: the page's test hook."""
        return await self.js(f"() => window.wslabChat.{method}()")

    async def state(self) -> str:
        return await self.hook("state")

    async def lines(self) -> list[str]:
        return await self.hook("lines")

    async def transcript(self) -> Transcript:
        return [(seq, text) for seq, text in await self.js(TRANSCRIPT_JS)]

    async def states(self) -> list[str]:
        return await self.js("() => window.__wslabStates")

    async def shown_users(self) -> list[str]:
        return await self.js('() => [...document.querySelectorAll("#users li")].map((li) => li.textContent)')

    async def join(self) -> None:
        await self.page.fill("#name", self.name)
        await self.page.click("#join")
        await self.until_state("live")

    async def until_state(self, state: str) -> None:
        async def shown() -> bool:
            attribute = await self.page.get_attribute("#status", "data-state")
            return attribute == state and await self.state() == state

        await until(shown, f"{self.name}'s page to be {state}", describe=self.describe)

    async def send(self, text: str) -> None:
        """Type ``text`` into the message field and press Send, as a person would."""
        await self.page.fill("#message", text)
        await self.page.click("#send")

    async def describe(self) -> str:
        details = {
            "state": await self.state(),
            "lines": await self.lines(),
            "notices": await self.hook("notices"),
            "missing": await self.hook("missing"),
            "unacked": await self.hook("unacked"),
        }
        return f"{self.name}'s page: {json.dumps(details, indent=1)}"

    async def save_artifacts(self, test: str) -> None:
        """Screenshot and text of the page into .test-artifacts/ (gitignored)."""
        ARTIFACTS.mkdir(exist_ok=True)
        stem = ARTIFACTS / re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{test}-{self.name}")
        with contextlib.suppress(Exception):
            await self.page.screenshot(path=f"{stem}.png", full_page=True, timeout=10_000)
        with contextlib.suppress(Exception):
            stem.with_suffix(".txt").write_text(f"{await self.describe()}\nerrors: {self.errors}\n")


@dataclass
class Room:
    """The served app, its chat server, and the people in the room."""

    browser: Any
    handle: AsgiServerHandle
    chat: ChatServer
    pages: list[ChatPage] = field(default_factory=list)
    clients: list[ChatClient] = field(default_factory=list)

    async def token(self, name: str) -> str:
        # trust_env=False: a proxy configured in the environment must not see these requests.
        async with httpx.AsyncClient(base_url=self.handle.url, trust_env=False, timeout=WAIT) as http:
            response = await http.post("/api/token", json={"name": name, "code": ""})
        assert response.status_code == 200, response.text
        return response.json()["token"]

    async def python_client(self, name: str) -> ChatClient:
        """A live ChatClient that fetches a fresh token over HTTP before each hello."""

        async def get_token() -> str:
            return await self.token(name)

        client = ChatClient(
            self.handle.ws_url, name, get_token=get_token, delays=lambda: itertools.repeat(0.05)
        )
        self.clients.append(client.start())

        async def live() -> bool:
            return client.live

        async def describe() -> str:
            return f"{name}: notices {client.notices}, closes {client.closes}, rejected {client.rejected!r}"

        await until(live, f"Python client {name} to be live", describe=describe)
        return client

    async def open_page(self, name: str, *, scheme: str = "light", join: bool = True) -> ChatPage:
        """A new browser context (own storage, own socket) with the chat page, joined as ``name``
        (unless ``join`` is false); ``scheme``: the ``prefers-color-scheme`` it emulates."""
        context = await self.browser.new_context(viewport={"width": 1000, "height": 800}, color_scheme=scheme)
        context.set_default_timeout(WAIT * 1000)
        page = await context.new_page()
        chat_page = ChatPage(name, context, page)
        page.on("pageerror", lambda error: chat_page.errors.append(f"pageerror: {error}"))
        page.on(
            "console",
            lambda message: (
                chat_page.errors.append(f"console.error: {message.text} ({where(message.location)})")
                if message.type == "error"
                else None
            ),
        )

        async def on_dialog(dialog: Any) -> None:
            chat_page.dialogs.append(f"{dialog.type}: {dialog.message}")
            await dialog.dismiss()

        page.on("dialog", on_dialog)
        page.on("request", lambda request: chat_page.requests.append(request.url))
        await page.add_init_script(STATE_RECORDER)
        self.pages.append(chat_page)
        response = await page.goto(self.handle.url)
        assert response is not None and response.ok, response
        assert "default-src 'self'" in (await response.header_value("content-security-policy") or "")
        if join:
            await chat_page.join()
        return chat_page

    async def settle(self, texts: list[str]) -> dict[str, Transcript]:
        """Wait until everyone shows every ``[author] text`` line of ``texts`` and nothing is unacked;
        return each participant's transcript, ``(seq, line)`` in the order shown."""

        async def transcripts() -> dict[str, Transcript] | None:
            found: dict[str, Transcript] = {}
            for page in self.pages:
                if await page.hook("unacked"):
                    return None
                found[page.name] = await page.transcript()
            for client in self.clients:
                if client.unacknowledged:
                    return None
                found[client.name] = python_transcript(client)
            for transcript in found.values():
                shown = {line for _, line in transcript}
                if not all(text in shown for text in texts):
                    return None
            return found

        async def describe() -> str:
            pages = [await page.describe() for page in self.pages]
            clients = [f"{c.name}: {c.lines()} unacked {c.unacknowledged}" for c in self.clients]
            return "\n".join([*pages, *clients])

        return await until(transcripts, f"everyone to show {texts}", describe=describe)

    async def users_everywhere(self, expected: set[str]) -> None:
        """Every page lists exactly ``expected`` (hook and DOM), and so does every Python client."""

        async def agreed() -> bool:
            for page in self.pages:
                hooked, shown = await page.hook("users"), await page.shown_users()
                if sorted(hooked) != sorted(expected) or sorted(shown) != sorted(expected):
                    return False
            return (
                all(set(client.users) == expected for client in self.clients)
                and set(self.chat.room.users) == expected
            )

        await until(agreed, f"everyone to list the users {sorted(expected)}")

    async def close(self, *, artifacts: str | None = None) -> None:
        """Close the pages (saving their artifacts under the test's name, if given), the clients, the app."""
        for page in self.pages:
            if artifacts is not None:
                await page.save_artifacts(artifacts)
            await page.context.close()
        for client in self.clients:
            await client.stop()
        await self.handle.stop()

    def assert_clean(self) -> None:
        """No page logged an error, threw, or opened a dialog."""
        for page in self.pages:
            assert page.errors == [], f"{page.name}'s page logged errors: {page.errors}"
            assert page.dialogs == [], f"{page.name}'s page opened dialogs: {page.dialogs}"


async def hold_tokens(page: ChatPage) -> tuple[asyncio.Event, asyncio.Event]:
    """Hold ``page``'s token requests (the first step of every reconnect): the first event is
    set when one is asked for, and they go on once the test sets the second."""
    asked, release = asyncio.Event(), asyncio.Event()

    async def hold_token(route: Any) -> None:
        asked.set()
        await release.wait()
        await route.continue_()

    await page.context.route("**/api/token", hold_token)
    return asked, release


def where(location: dict[str, Any]) -> str:
    return f"{location.get('url') or '?'}:{location.get('lineNumber', '?')}"


def python_transcript(client: ChatClient) -> Transcript:
    return [(event.seq, render_plain(event)) for event in client.events]


def assert_same_room(reference: Transcript, transcript: Transcript, who: str) -> None:
    """``transcript`` is ``reference`` from the moment ``who`` joined: same events, same order, once each."""
    assert transcript, f"{who} shows nothing"
    seqs = [seq for seq, _ in transcript]
    assert seqs == sorted(set(seqs)), f"{who}'s data-seq is not strictly increasing: {seqs}"
    assert transcript[0][1] == f">>> {who} joined the chat", transcript[0]
    expected = [(seq, line) for seq, line in reference if seq >= transcript[0][0]]
    assert transcript == expected, f"{who}'s transcript differs from the reference"


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        skip_or_fail("Playwright for Python is not installed (pip install -e '.[test]')")
    async with async_playwright() as playwright:
        executable = find_chromium(playwright)
        if executable is None:
            skip_or_fail("no Chromium found (set WSLAB_CHROMIUM, or see jupyterlab_harness.find_chromium)")
        browser = await playwright.chromium.launch(
            executable_path=executable, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            await browser.close()


@pytest.fixture
async def room(browser: Any, request: pytest.FixtureRequest) -> AsyncIterator[Room]:
    chat = ChatServer(server_id="web")
    handle = await serve_web(create_app(chat), name="browser-chat", host="127.0.0.1", port=0)
    room = Room(browser, handle, chat)
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
