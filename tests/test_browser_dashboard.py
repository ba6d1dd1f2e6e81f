"""Lesson 07's dashboard page in a real browser (Chromium).

Two dashboard servers in this process share one in-process broker, as two processes
share Redis: deploys are reported to one, the page is connected to the other. The page
shows a deploy within 1 s of its publication (measured by the page itself), survives its
server going away and coming back with nothing missed, and shows a hostile service name
as text.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from accessibility import check_async
from helpers import MS, until

import wslab
from wslab.brokers import MemoryBroker
from wslab.core.fleet import Change, Status
from wslab.servers.dashboard import DashboardHandle, serve_dashboard
from wslab.servers.fleet_feed import FleetFeed

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120)]

HOSTILE = "<img src=x onerror=alert(1)>"
STATE_JS = "() => ({seen: window.fleetDashboard.seen, lateness: window.fleetDashboard.lateness})"
TILES_JS = '() => [...document.querySelectorAll("#tiles .name")].map((n) => n.textContent)'


@pytest.fixture
async def page(chromium: Any) -> AsyncIterator[Any]:
    context = await chromium.new_context()
    page = await context.new_page()
    page.errors, page.dialogs = [], []
    page.on("pageerror", lambda error: page.errors.append(str(error)))
    page.on("console", lambda m: page.errors.append(m.text) if _is_page_error(m) else None)

    async def on_dialog(dialog: Any) -> None:
        page.dialogs.append(dialog.message)
        await dialog.dismiss()

    page.on("dialog", on_dialog)
    try:
        yield page
    finally:
        await context.close()
        await wslab.stop_all()


def _is_page_error(message: Any) -> bool:
    # While its server is down, Chromium logs each failed reconnection: refused, or reset when an
    # attempt lands while the server is stopping or starting. Expected, not an error of the page.
    text = message.text
    failed_reconnection = text.startswith("WebSocket connection to") and "net::ERR_CONNECTION_" in text
    return message.type == "error" and not failed_reconnection


async def start(broker: MemoryBroker, name: str, port: int = 0) -> DashboardHandle:
    return await serve_dashboard(FleetFeed(broker, server_id=name), name=name, port=port)


async def test_the_page_shows_deploys_live_resumes_after_a_cut_and_shows_names_as_text(page: Any) -> None:
    broker = MemoryBroker()
    viewed, reporting = await start(broker, "viewed"), await start(broker, "reporting")
    await page.goto(viewed.url)
    await until(lambda: _state_is(page, "live"), "the page to be live")

    published = [(await reporting.feed.report(Change("api", 2, Status.DEPLOYING))).seq]
    await until(lambda: _seen(page, published), "the deploy on the page")
    lateness = (await page.evaluate(STATE_JS))["lateness"]
    assert lateness[0] < 1_000 * MS, f"the page showed the deploy {lateness[0]:.3f} s after it was published"

    port = viewed.port
    await viewed.stop()  # the page's server goes away; the page retries with backoff
    await until(lambda: _state_is(page, "reconnecting"), "the page to notice the cut")
    for version, status in [(2, Status.HEALTHY), (3, Status.DEPLOYING), (3, Status.FAILED)]:
        published.append((await reporting.feed.report(Change("api", version, status))).seq)
    published.append((await reporting.feed.report(Change(HOSTILE, 1, Status.DEPLOYING))).seq)
    viewed = await start(broker, "viewed", port)  # back, on the same port
    await until(lambda: _seen(page, published), "the page to replay what it missed")

    assert (await page.evaluate(STATE_JS))["seen"] == published  # each once, in order, none missing
    assert HOSTILE in await page.evaluate(TILES_JS)
    assert await page.locator("#tiles img, #recent img").count() == 0
    assert page.dialogs == [] and page.errors == [], (page.dialogs, page.errors)


async def _state_is(page: Any, state: str) -> bool:
    return await page.evaluate('() => document.getElementById("status").dataset.state') == state


async def _seen(page: Any, published: list[int]) -> bool:
    return (await page.evaluate(STATE_JS))["seen"][-1:] == published[-1:]


@pytest.mark.parametrize("scheme", ["light", "dark"])
async def test_the_dashboard_passes_axe_in_light_and_dark(chromium: Any, scheme: str) -> None:
    """Every status's tile, the counts and the recent changes, in both colour schemes the page
    declares: no serious or critical finding (contrast included) from axe-core."""
    broker = MemoryBroker()
    viewed = await start(broker, "viewed")
    context = await chromium.new_context(color_scheme=scheme)
    page = await context.new_page()
    try:
        await page.goto(viewed.url)
        await until(lambda: _state_is(page, "live"), "the page to be live")
        published = [
            (await viewed.feed.report(Change(service, 1, status))).seq
            for service, status in [("api", Status.DEPLOYING), ("web", Status.HEALTHY), ("db", Status.FAILED)]
        ]
        published.append((await viewed.feed.report(Change("queue", 2, Status.ROLLED_BACK))).seq)
        await until(lambda: _seen(page, published), "every change on the page")
        assert await page.evaluate("() => matchMedia('(prefers-color-scheme: dark)').matches") == (
            scheme == "dark"
        )
        # axe measures contrast against the page's own background, not the browser's canvas.
        background = await page.evaluate("() => getComputedStyle(document.body).backgroundColor")
        assert background == ("rgb(20, 23, 29)" if scheme == "dark" else "rgb(255, 255, 255)")
        (await check_async(page, f"the dashboard ({scheme})")).assert_clean()
    finally:
        await context.close()
        await wslab.stop_all()
