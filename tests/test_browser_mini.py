"""Lesson 04's 15-line browser client (``wslab/static/mini.html``) in a real browser.

The lesson shows the file and serves it from its mini app; only a browser can show that
it connects, renders what arrives as text, sends on Enter, and reconnects by itself after
the server goes away and comes back on the same port.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

import pytest
from accessibility import check_async
from helpers import until
from starlette.applications import Starlette
from starlette.responses import HTMLResponse
from starlette.routing import Route, WebSocketRoute
from websockets.asyncio.client import connect

import wslab
from wslab.servers.web import serve_web

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120)]

LINES_JS = '() => [...document.querySelectorAll("#log li")].map((li) => li.textContent)'


def mini_app() -> Starlette:
    """The page at ``/``, and at ``/ws`` a broadcast to every connected client."""
    page = resources.files("wslab").joinpath("static", "mini.html").read_text()
    clients: set[Any] = set()

    async def index(request: Any) -> HTMLResponse:
        return HTMLResponse(page)

    async def ws(websocket: Any) -> None:
        await websocket.accept()
        clients.add(websocket)
        try:
            async for text in websocket.iter_text():
                for client in list(clients):
                    await client.send_text(text)
        finally:
            clients.discard(websocket)

    app = Starlette(routes=[Route("/", index), WebSocketRoute("/ws", ws)])
    app.state.clients = clients
    return app


async def test_mini_page_chats_and_reconnects(chromium: Any) -> None:
    app = mini_app()
    handle = await serve_web(app, name="mini-page")
    context = await chromium.new_context()
    page = await context.new_page()
    try:
        await page.goto(handle.url)
        await until(lambda: _one(app), "the page's WebSocket to connect")

        async with connect(handle.ws_url) as python:
            await python.send("<b>from Python</b>")
            shown = "the message on the page, as text"
            await until(lambda: _lines_include(page, "<b>from Python</b>"), shown)
            assert await page.locator("#log b").count() == 0  # not rendered as HTML
            (await check_async(page, "the mini page")).assert_clean()

            await page.fill("#box", "from the browser")
            await page.press("#box", "Enter")
            assert await python.recv() == "<b>from Python</b>"
            assert await python.recv() == "from the browser"

        port = handle.port
        await handle.stop()  # the server goes away; the page's onclose schedules a reconnect
        app = mini_app()
        handle = await serve_web(app, name="mini-page", port=port)
        await until(lambda: _one(app), "the page to reconnect to the restarted server")
        async with connect(handle.ws_url) as python:
            await python.send("after the restart")
            await until(lambda: _lines_include(page, "after the restart"), "a message after the reconnect")
    finally:
        await context.close()
        await wslab.stop_all()


async def _one(app: Starlette) -> bool:
    return len(app.state.clients) == 1


async def _lines_include(page: Any, text: str) -> bool:
    return text in await page.evaluate(LINES_JS)
