"""Audience mode on real sockets: the room's cap before any token, the join code against guessing
(429 per address, behind the course's balancer too), who may list the room, ``/reach``, TLS, and
a class of 200 with :data:`wslab.core.AUDIENCE`'s limits.

Everything binds 127.0.0.1 (other loopback addresses stand for other people's phones); waits are
conditions with deadlines.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import nbformat
import pytest
from helpers import TIMEOUT, LocalCA, wait_for, wait_while_progressing
from support.web_app import start_web
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from wslab.core import AUDIENCE
from wslab.servers import Balancer, serve_audience
from wslab.servers.chat import ChatServer

REPO = Path(__file__).resolve().parent.parent


def http_from(url: str, address: str = "127.0.0.1", **options: Any) -> httpx.AsyncClient:
    """An HTTP client whose requests come from ``address`` (another device, for the server).

    No keep-alive: the course's balancer adds ``X-Forwarded-For`` to a connection's first request only.
    """
    transport = httpx.AsyncHTTPTransport(
        local_address=address, limits=httpx.Limits(max_keepalive_connections=0)
    )
    return httpx.AsyncClient(base_url=url, transport=transport, trust_env=False, timeout=TIMEOUT, **options)


async def guess(http: httpx.AsyncClient, code: str) -> httpx.Response:
    return await http.post("/api/token", json={"name": "guesser", "code": code})


# --- a full room refuses before a token is issued ---------------------------------------------------


async def test_a_full_room_refuses_a_token_with_503_and_retry_after() -> None:
    web = await start_web(ChatServer(server_id="web", max_users=1))
    ann = await web.join("ann")
    async with web.http() as http:
        full = await http.post("/api/token", json={"name": "ben"})
        again = await http.post("/api/token", json={"name": "ann"})  # ann, from a new tab
    assert full.status_code == 503
    assert full.json() == {
        "error": "the room is full, try again in a moment",
        "room_full": True,
        "retry_after": 5,
    }
    assert full.headers["retry-after"] == "5"
    assert again.status_code == 200, "someone in the room may always get a token to come back"

    await ann.close()
    await wait_for(lambda: not web.chat.room.users)
    assert await web.token("ben")  # a place is free


# --- the join code against guessing ------------------------------------------------------------------


async def test_wrong_codes_are_limited_per_address_with_429_and_retry_after() -> None:
    web = await start_web(join_code="314159")
    async with (
        http_from(web.handle.url, "127.0.0.2") as mallory,
        http_from(web.handle.url, "127.0.0.3") as ann,
    ):
        wrong = [await guess(mallory, f"00000{n}") for n in range(5)]
        assert [r.status_code for r in wrong] == [401] * 5
        assert wrong[0].json()["error"] == "that join code is wrong"

        limited = await guess(mallory, "314159")  # even the right one: a guesser cannot tell
        assert limited.status_code == 429
        wait = int(limited.headers["retry-after"])
        assert 1 <= wait <= 12
        assert limited.json() == {
            "error": f"too many wrong join codes; try again in {wait} s",
            "retry_after": wait,
        }
        assert (await mallory.get("/api/users", headers={"X-Join-Code": "314159"})).status_code == 429

        # Another device in the room is not slowed down by mallory's guesses.
        right = await ann.post("/api/token", json={"name": "ann", "code": "314159"})
        assert right.status_code == 200


async def test_behind_the_balancer_the_forwarded_address_is_limited_and_a_forged_one_ignored() -> None:
    web = await start_web(join_code="314159", trusted_proxies=["127.0.0.1"])
    balancer = await Balancer.start([("127.0.0.1", web.handle.port)], name="front")
    front = balancer.url.replace("ws://", "http://")
    # Every request reaches the app from the balancer (127.0.0.1); it says whom for.
    async with http_from(front, "127.0.0.2") as mallory, http_from(front, "127.0.0.3") as ann:
        for n in range(5):
            forged = {"X-Forwarded-For": f"198.51.100.{n}"}  # a new "address" each time: ignored
            response = await mallory.post("/api/token", json={"name": "m", "code": "000000"}, headers=forged)
            assert response.status_code == 401
        assert (await guess(mallory, "000000")).status_code == 429
        assert (await ann.post("/api/token", json={"name": "ann", "code": "314159"})).status_code == 200


async def test_only_holders_of_the_code_may_list_the_room() -> None:
    web = await start_web(join_code="314159")
    async with web.http() as http:
        token = (await http.post("/api/token", json={"name": "ann", "code": "314159"})).json()["token"]
        async with connect(web.ws_url) as ann:
            await ann.send(json.dumps({"type": "hello", "name": "ann", "token": token}))
            await wait_for(lambda: web.chat.room.users == ["ann"])
            missing = await http.get("/api/users")
            wrong = await http.get("/api/users", headers={"X-Join-Code": "000000"})
            right = await http.get("/api/users", headers={"X-Join-Code": "314159"})
            health = await http.get("/health")
    assert (missing.status_code, missing.json()["error"]) == (401, "this room needs its join code")
    assert (wrong.status_code, wrong.json()["error"]) == (401, "that join code is wrong")
    assert (right.status_code, right.json()["users"]) == (200, ["ann"])
    assert health.json() == {"status": "ok", "server": "web", "users": 1}  # a count, never names


async def test_an_open_room_lists_everyone_without_a_code() -> None:
    web = await start_web()
    async with web.http() as http:
        assert (await http.get("/api/users")).json() == {"users": [], "count": 0, "full": False}


# --- /reach: the page an instructor opens from a phone first -----------------------------------------


async def test_the_reach_page_needs_no_script_and_says_what_it_saw() -> None:
    web = await start_web(join_code="314159")
    async with http_from(web.handle.url, "127.0.0.5") as phone:
        page = await phone.get("/reach", headers={"Host": "<b>classroom</b>:9001"})
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert page.headers["content-security-policy"] == "default-src 'none'"
    assert "<script" not in page.text and "You reached the chat server" in page.text
    assert "from the address <code>127.0.0.5</code>" in page.text
    assert "<code>&lt;b&gt;classroom&lt;/b&gt;:9001</code>" in page.text  # escaped, like every page
    assert '<a href="./">Open the chat</a>' in page.text


# --- a class of 200, with audience mode's own limits ---------------------------------------------------


async def enter(http: httpx.AsyncClient, ws_url: str, name: str, code: str) -> ClientConnection:
    token = (await http.post("/api/token", json={"name": name, "code": code})).json()["token"]
    connection = await connect(ws_url, open_timeout=3 * TIMEOUT)
    await connection.send(json.dumps({"type": "hello", "name": name, "token": token}))
    return connection


@pytest.mark.timeout(180)
async def test_audience_mode_admits_a_class_of_200_and_refuses_the_201st() -> None:
    """What ``serve web --public`` and lesson 04's ``PUBLIC = True`` start: room for 200."""
    assert AUDIENCE.max_users == 200
    # PUBLIC = True, bound to loopback all the same (a test sends nothing beyond this machine).
    server = await serve_audience(public=True, host="127.0.0.1", join_code="271828", name="class")
    assert server.chat is not None
    room = server.chat.room
    assert room.max_users == 200 and room.heartbeat == AUDIENCE.heartbeat and room.rate == AUDIENCE.rate
    people: list[ClientConnection] = []
    # No keep-alive: on a busy machine a batch takes seconds, and a pooled connection that
    # uvicorn closed after its 5 s keep-alive timeout, just as the next POST went out on it,
    # failed that POST (httpx.ReadError; the server logged a ClientDisconnect).
    fresh = httpx.Limits(max_keepalive_connections=0)
    options: dict[str, Any] = {"trust_env": False, "timeout": 3 * TIMEOUT, "limits": fresh}
    async with httpx.AsyncClient(base_url=server.url, **options) as http:
        for batch in range(10):
            names = [f"student-{batch * 20 + n}" for n in range(20)]
            people += await asyncio.gather(*(enter(http, server.ws_url, name, "271828") for name in names))
        # 200 handshakes and hellos: seconds of CPU, more on a busy machine; it must keep moving.
        await wait_while_progressing(lambda: room.size == 200, lambda: room.size, what="the 200 are in")

        late = await http.post("/api/token", json={"name": "late", "code": "271828"})
        assert (late.status_code, late.json()["error"]) == (503, "the room is full, try again in a moment")
        with pytest.raises(InvalidStatus) as refused:
            await connect(server.ws_url, open_timeout=TIMEOUT)
        assert refused.value.response.status_code == 503

        await people.pop().close()
        await wait_for(lambda: room.size == 199, timeout=6 * TIMEOUT)
        assert (await http.post("/api/token", json={"name": "late", "code": "271828"})).status_code == 200
    # Dropped, not closed: they never read, so behind a full queue a client would not see the
    # server's close frame and would wait out its close_timeout (10 s) for it.
    for person in people:
        person.transport.abort()


def test_lesson_04s_class_room_is_audience_mode_public_or_not() -> None:
    """The lesson's cell starts its room with serve_audience and the mode alone: no limit of its own."""
    lesson = nbformat.read(REPO / "notebooks" / "complete" / "04-http-and-websockets.ipynb", as_version=4)
    [cell] = [c.source for c in lesson.cells if c.cell_type == "code" and "PUBLIC = False" in c.source]
    assert "await serve_audience(public=PUBLIC, join_code=class_code" in cell
    assert "max_users" not in cell and "rate" not in cell


# --- TLS: https:// and wss://, with lesson 08's kind of certificate authority ---------------------------


async def test_serve_audience_with_tls_answers_https_and_wss(tmp_path: Path) -> None:
    ca = LocalCA()
    cert, key = tmp_path / "server.pem", tmp_path / "server.key"
    ca.write_server_files(cert, key)
    server = await serve_audience(public=False, join_code="161803", name="tls", tls=(str(cert), str(key)))
    assert server.url.startswith("https://127.0.0.1:") and server.ws_url.startswith("wss://127.0.0.1:")
    trusted = ca.client_context()
    async with httpx.AsyncClient(
        base_url=server.url, verify=trusted, trust_env=False, timeout=TIMEOUT
    ) as http:
        assert "over HTTPS" in (await http.get("/reach")).text
        token = (await http.post("/api/token", json={"name": "ann", "code": "161803"})).json()["token"]
    async with connect(server.ws_url, ssl=trusted) as ann:
        await ann.send(json.dumps({"type": "hello", "name": "ann", "token": token}))
        welcome = json.loads(await asyncio.wait_for(ann.recv(), TIMEOUT))
    assert welcome["type"] == "welcome" and welcome["heartbeat"] == {"interval": 15.0, "timeout": 45.0}
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):  # a client not trusting the CA
        async with httpx.AsyncClient(trust_env=False, timeout=TIMEOUT) as stranger:
            await stranger.get(server.url + "reach")


def test_the_audience_view_links_the_join_url_and_the_reach_page_escaped() -> None:
    from wslab.widgets import AudienceView

    view = AudienceView(ChatServer(), ["http://10.0.0.5:9001/#code=123456", 'http://x/"><script>'])
    try:
        join = view.children[0].value
    finally:
        view.close()
    link = '<a href="http://10.0.0.5:9001/#code=123456" target="_blank" rel="noopener">'
    assert f"{link}<code>http://10.0.0.5:9001/#code=123456</code></a>" in join  # one click opens the room
    assert 'first, from a phone: <a href="http://10.0.0.5:9001/reach"' in join
    assert "<script>" not in join and 'href="http://x/&quot;&gt;&lt;script&gt;"' in join
