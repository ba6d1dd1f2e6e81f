"""Lesson 07 scaled out: two dashboard server processes over a real Redis, and over Kafka (tansu).

A deploy reported to one reaches tabs on the other; a server killed mid-run (SIGKILL)
loses nothing for its tabs, which resume on the other from their last seq.
"""

from __future__ import annotations

import httpx
import pytest
from helpers import TIMEOUT, wait_for

from wslab.clients.fleet import FleetClient
from wslab.services.dashboard_processes import start_dashboard_servers

pytestmark = [pytest.mark.broker, pytest.mark.timeout(120)]


@pytest.fixture(params=["redis", "kafka"])
def broker_url(request: pytest.FixtureRequest) -> str:
    """The session's shared broker server of each kind."""
    return request.getfixturevalue(f"{request.param}_url")


async def report(http: httpx.AsyncClient, url: str, version: int) -> int:
    response = await http.post(
        url + "api/deploys", json={"service": "api", "version": version, "status": "deploying"}
    )
    assert response.status_code == 202, response.text
    return int(response.json()["seq"])


async def test_a_deploy_reported_to_one_server_reaches_tabs_of_the_other(broker_url: str) -> None:
    one, two = await start_dashboard_servers(["one", "two"], broker_url)
    tab = FleetClient(two.ws_url).start()
    await wait_for(lambda: tab.live, what="the tab on server two to be live")
    async with httpx.AsyncClient(timeout=TIMEOUT) as http:
        seq = await report(http, one.url, 7)
        await wait_for(lambda: tab.seen[-1:] == [seq], what="the deploy on the other server's tab")
        etags = {(await http.get(server.url + "api/status")).headers["etag"] for server in (one, two)}
    assert tab.fleet.services["api"].via == "one" and tab.fleet.services["api"].version == 7
    assert len(etags) == 1  # the same state, so the same ETag: a poll may go to either server
    await tab.stop()


async def test_tabs_of_a_killed_server_resume_on_the_other_and_miss_nothing(broker_url: str) -> None:
    doomed, survivor = await start_dashboard_servers(["doomed", "survivor"], broker_url)
    tabs = [FleetClient([doomed.ws_url, survivor.ws_url], name=f"tab{i}").start() for i in range(3)]
    await wait_for(lambda: all(tab.live for tab in tabs), what="every tab live on the doomed server")
    published = []
    async with httpx.AsyncClient(timeout=TIMEOUT) as http:
        for version in range(2, 22):
            published.append(await report(http, survivor.url, version))
            if version == 8:
                await wait_for(lambda: all(tab.seen for tab in tabs), what="tabs to see the first deploys")
                await doomed.crash()  # SIGKILL, mid-run
    for tab in tabs:
        await wait_for(lambda tab=tab: tab.seen[-1:] == published[-1:], what=f"{tab.name} to catch up")
        assert tab.seen[-len(published) :] == published  # every change once, in order
        assert tab.server == survivor.ws_url and None in tab.closes  # cut without a close frame
        await tab.stop()
