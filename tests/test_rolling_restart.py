"""Lesson 08's rolling restart: chat processes over a real Redis behind the balancer, restarted
one at a time with 1012 while a client keeps talking; nothing is lost or duplicated."""

from __future__ import annotations

import asyncio

import pytest
from helpers import TIMEOUT, wait_for
from websockets.frames import CloseCode

from wslab.clients.chat import ChatClient
from wslab.servers.balancer import Balancer
from wslab.services import ChatProcess

pytestmark = pytest.mark.broker


async def test_a_rolling_restart_loses_and_duplicates_nothing(redis_url: str) -> None:
    servers = [ChatProcess(redis_url, server_id=f"r{i}", stop_code=CloseCode.SERVICE_RESTART) for i in (1, 2)]
    await asyncio.gather(*(server.start() for server in servers))
    balancer = await Balancer.start([(s.host, s.port) for s in servers])
    people = {name: ChatClient(balancer.url, name).start() for name in ("ana", "ben", "cleo")}
    await wait_for(lambda: all(p.live for p in people.values()), timeout=2 * TIMEOUT)
    assert {p.server for p in people.values()} == {"r1", "r2"}  # spread over both
    said = [f"m{i}" for i in range(60)]

    async def ana_talks() -> None:
        for text in said:
            await people["ana"].send(text)
            await asyncio.sleep(0.02)  # paces the stream; not synchronisation

    talking = asyncio.create_task(ana_talks())
    for server in servers:
        await server.restart()  # SIGTERM: its clients get 1012 and come back through the balancer
    await talking
    for name, person in people.items():
        has_all = lambda p=person: p.texts(author="ana") == said  # noqa: E731
        await wait_for(has_all, timeout=3 * TIMEOUT, what=f"{name} has all")
        assert person.tracker.duplicates == 0 and person.tracker.missing == []
    await wait_for(lambda: not people["ana"].unacknowledged, timeout=2 * TIMEOUT)
    codes = [code for p in people.values() for code, _ in p.closes]
    assert codes and set(codes) == {CloseCode.SERVICE_RESTART}
    for person in people.values():
        await person.stop()
