"""Lesson 04's chat page in a real browser: pages, a room of them, and what they show.

Shared by ``test_browser_chat.py`` and ``test_browser_audience.py``: Chromium driven with
Playwright's async API (the ``chromium`` fixture in ``conftest.py``) in the test's own
event loop, beside the in-process server and Python clients. Waits poll the page with a
deadline (``helpers.until``).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import re
from dataclasses import dataclass, field
from typing import Any

import httpx
from helpers import TIMEOUT, until
from jupyterlab_harness import ARTIFACTS

from wslab.clients.chat import ChatClient
from wslab.core.protocol import render_plain
from wslab.servers.chat import ChatServer
from wslab.servers.web import AsgiServerHandle

#: Deadline of any single wait in a browser (seconds); a healthy run needs a small fraction of it.
WAIT = 3 * TIMEOUT
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
