"""Lesson 04's web app: HTTP and WebSockets on one port, through one middleware stack.

Every test serves the real app with uvicorn on 127.0.0.1 and talks to it over real
sockets: HTTP with httpx, WebSockets with the websockets client or wslab's ChatClient.
Waits are conditions with deadlines; nothing sleeps to let something happen.
"""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
import time
from typing import Any

import pytest
from helpers import (
    TIMEOUT,
    backlogs,
    close_code,
    refuses_connections,
    wait_for,
)
from support.web_app import Web, chat_texts, hello, message_of_type, receive, start_web
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.typing import Origin

import wslab
from wslab.core.auth import Tokens
from wslab.servers.chat import ChatServer
from wslab.servers.web import create_app, serve_web

ALLOWED = "https://allowed.example"
#: Loggers of the test's own clients: they log the URLs they request, as clients do.
CLIENT_LOGGERS = ("httpx", "httpcore", "websockets.client")


async def refused_handshake(url: str, **options: Any) -> InvalidStatus:
    with pytest.raises(InvalidStatus) as refused:
        await connect(url, open_timeout=TIMEOUT, **options)
    return refused.value


def log_lines(web: Web) -> list[str]:
    return [event.text or "" for event in web.log]


# --- the routes ---------------------------------------------------------------------------------


async def test_the_page_has_a_strict_csp_and_loads_its_own_script() -> None:
    web = await start_web()
    async with web.http() as http:
        page = await http.get("/")
        script = await http.get("/static/chat.js")

    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    assert "default-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp
    # Relative, so the page also works under a proxy's prefix (/user/NAME/proxy/PORT/).
    assert 'src="static/chat.js' in page.text
    assert 'href="static/chat.css' in page.text
    assert 'src="/' not in page.text and 'href="/' not in page.text
    assert script.status_code == 200
    assert script.headers["content-type"].split(";")[0] in ("text/javascript", "application/javascript")
    assert script.content


async def test_health_and_users_report_who_is_connected() -> None:
    web = await start_web(ChatServer(server_id="web-1", max_users=5))
    async with web.http() as http:
        assert (await http.get("/health")).json() == {"status": "ok", "server": "web-1", "users": 0}
        assert (await http.get("/api/users")).json() == {"users": [], "count": 0, "full": False}

        async with await web.join("alice"), await web.join("bob"):
            health = await http.get("/health")
            users = await http.get("/api/users")

    assert health.headers["content-type"] == "application/json"
    assert health.json()["users"] == 2
    assert users.json() == {"users": ["alice", "bob"], "count": 2, "full": False}


async def test_an_unknown_path_is_404_and_token_wants_post() -> None:
    web = await start_web()
    async with web.http() as http:
        assert (await http.get("/nope")).status_code == 404
        assert (await http.get("/api/token")).status_code == 405


async def test_a_token_is_issued_for_a_valid_name() -> None:
    tokens = Tokens(lifetime=120, clock=time.time)
    web = await start_web(tokens=tokens)
    async with web.http() as http:
        response = await http.post("/api/token", json={"name": "  alice  "})

    assert response.status_code == 200
    body = response.json()
    assert body["expires_in"] == 120
    tokens.verify(body["token"], "alice")  # issued for the cleaned-up name
    assert web.chat.room.tokens is tokens  # the room checks what the app hands out


#: One server answers every case: each parametrized test would cost a server start and stop.
INVALID_NAMES = [
    ({"name": ""}, "cannot be empty"),
    ({}, "cannot be empty"),
    ({"name": "   "}, "cannot be empty"),
    ({"name": "x" * 33}, "at most 32 characters"),
    ({"name": "ali\x07ce"}, "control characters"),
    ({"name": "ali\nce"}, "control characters"),
    ({"name": "al\u200bice"}, "control characters"),  # a zero-width space (a format character)
    ({"name": "server"}, "reserved"),
]


async def test_an_invalid_name_or_body_gets_400_with_the_reason() -> None:
    web = await start_web()
    async with web.http() as http:
        for body, error in INVALID_NAMES:
            response = await http.post("/api/token", json=body)
            assert response.status_code == 400, body
            assert error in response.json()["error"], body
        for content in (b"name=alice", b"{not json", b'["alice"]', b'"alice"'):
            response = await http.post("/api/token", content=content)
            assert response.status_code == 400, content
            assert "JSON" in response.json()["error"], content


async def test_a_join_code_is_required_when_configured() -> None:
    web = await start_web(join_code="1234")
    async with web.http() as http:
        missing = await http.post("/api/token", json={"name": "alice"})
        wrong = await http.post("/api/token", json={"name": "alice", "code": "4321"})
        right = await http.post("/api/token", json={"name": "alice", "code": "1234"})

    for refused in (missing, wrong):
        assert refused.status_code == 401
        assert refused.json()["code_required"] is True
    # A wrong code is told apart from a missing one: the person typed something, and it is not it.
    assert missing.json()["error"] == "this room needs its join code"
    assert wrong.json()["error"] == "that join code is wrong"
    assert wrong.json()["code_wrong"] is True and "code_wrong" not in missing.json()
    assert right.status_code == 200
    web.chat.room.tokens.verify(right.json()["token"], "alice")  # type: ignore[union-attr]


# --- shared middleware: the access log ------------------------------------------------------


async def test_the_access_log_records_http_and_websocket_requests() -> None:
    web = await start_web()
    async with web.http() as http:
        await http.get("/health")
        await http.get("/nope")
        await http.post("/api/token", json={"name": ""})
    async with await web.join("alice"):
        pass
    await refused_handshake(web.ws_url, origin=Origin("https://evil.example"))

    expected = [
        "HTTP GET /health 200",
        "HTTP GET /nope 404",
        "HTTP POST /api/token 400",
        "WS /ws accepted",
        "WS /ws refused: HTTP 403",
    ]
    await wait_for(
        lambda: all(any(want in line for line in log_lines(web)) for want in expected),
        what=f"{expected} in the access log",
    )
    ours = [line for line in log_lines(web) if "HTTP POST /api/token 200" not in line]  # join's token
    assert [next(want for want in expected if want in line) for line in ours] == expected
    assert all(event.peer.startswith("127.0.0.1:") for event in web.log)


async def test_the_access_log_never_records_a_query_string(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    web = await start_web()
    async with web.http() as http:
        assert (await http.get("/health?token=SECRET123")).status_code == 200
    async with connect(f"{web.ws_url}?token=SECRET456") as ws:
        await hello(ws, "alice", token=await web.token("alice"))
        await message_of_type(ws, "live")
    await refused_handshake(f"{web.ws_url}?token=SECRET789", origin=Origin("https://evil.example"))
    await wait_for(lambda: len(web.log) == 4, what="four requests in the access log")

    lines = log_lines(web)
    assert "HTTP GET /health 200" in lines[0]
    assert lines[0].endswith("(query string not logged)")
    assert any(line.startswith("WS /ws accepted") and "not logged" in line for line in lines)
    assert any(line.startswith("WS /ws refused: HTTP 403") and "not logged" in line for line in lines)
    server_records = [r for r in caplog.records if not r.name.startswith(CLIENT_LOGGERS)]
    assert any(r.name == "wslab.web" for r in server_records)
    for secret in ("SECRET123", "SECRET456", "SECRET789"):
        assert not any(secret in line for line in web.log.lines())
        assert not [r.getMessage() for r in server_records if secret in r.getMessage()]


# --- shared middleware: CORS ----------------------------------------------------------------


async def test_cors_answers_allowed_origins_only() -> None:
    web = await start_web(allowed_origins=[ALLOWED])
    async with web.http() as http:
        allowed = await http.get("/health", headers={"Origin": ALLOWED})
        other = await http.get("/health", headers={"Origin": "https://evil.example"})
        token = await http.post("/api/token", json={"name": "alice"}, headers={"Origin": ALLOWED})
        preflight = await http.options(
            "/api/token",
            headers={
                "Origin": ALLOWED,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type",
            },
        )
        refused_preflight = await http.options(
            "/api/token",
            headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
        )

    assert allowed.headers["access-control-allow-origin"] == ALLOWED
    assert other.status_code == 200  # the response is sent; the browser hides it from the page
    assert "access-control-allow-origin" not in other.headers
    assert token.headers["access-control-allow-origin"] == ALLOWED
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == ALLOWED
    assert "POST" in preflight.headers["access-control-allow-methods"]
    assert "content-type" in preflight.headers["access-control-allow-headers"].lower()
    assert refused_preflight.status_code == 400
    assert "access-control-allow-origin" not in refused_preflight.headers
    await wait_for(lambda: any("HTTP OPTIONS /api/token 200" in line for line in log_lines(web)))


# --- the Origin guard on /ws ----------------------------------------------------------------


async def test_a_cross_site_page_is_refused_with_403_before_the_upgrade() -> None:
    web = await start_web(allowed_origins=[ALLOWED])
    port = web.handle.port
    # Another site, another port, another name for this host, a sandboxed page.
    for origin in (
        "https://evil.example",
        f"http://127.0.0.1:{port + 1}",
        f"http://localhost:{port}",
        "null",
    ):
        refused = await refused_handshake(web.ws_url, origin=Origin(origin))
        assert refused.response.status_code == 403, origin
        assert refused.response.body == b"origin not allowed\n", origin
    assert web.chat.room.users == []
    await wait_for(lambda: log_lines(web).count("WS /ws refused: HTTP 403") == 4, what="4 refusals logged")


async def test_same_origin_no_origin_and_allowed_origins_are_accepted() -> None:
    web = await start_web(allowed_origins=[ALLOWED])
    same_site = web.origin
    for origin in (same_site, same_site.upper(), None, ALLOWED, ALLOWED + "/"):
        options: dict[str, Any] = {} if origin is None else {"origin": Origin(origin)}
        async with await web.join("alice", **options) as ws:
            assert ws.response is not None
            assert ws.response.status_code == 101
        await wait_for(lambda: web.chat.room.users == [], what="alice left")


# --- the token on connect -------------------------------------------------------------------


async def test_a_hello_without_a_token_is_refused_with_a_reason() -> None:
    web = await start_web()
    async with connect(web.ws_url) as ws:
        await hello(ws, "alice")
        error = await receive(ws)
        assert await close_code(ws) == 1008

    assert error["type"] == "error"
    assert error["code"] == "bad-token"
    assert "POST /api/token" in error["text"]
    assert ws.close_reason == "authentication required: get a token from POST /api/token"
    assert web.chat.room.stats.rejected == 1


async def test_a_bad_token_is_refused_with_1008_and_the_reason() -> None:
    web = await start_web()
    tokens = web.chat.room.tokens
    assert tokens is not None
    valid = tokens.issue("alice")
    tampered = valid[:-1] + ("A" if valid[-1] != "A" else "B")
    cases = [
        ("not-a-token", "malformed token"),
        (tampered, "invalid token"),
        (Tokens(clock=time.time).issue("alice"), "invalid token"),  # signed by another server
        (tokens.issue("bob"), "this token was issued for another username"),
    ]
    for token, reason in cases:
        async with connect(web.ws_url) as ws:
            await hello(ws, "alice", token=token)
            error = await receive(ws)
            assert await close_code(ws) == 1008
        assert (error["type"], error["code"], error["text"]) == ("error", "bad-token", reason)
        assert ws.close_reason == reason
    assert web.chat.room.users == []
    assert web.chat.room.stats.rejected == len(cases)


async def test_an_expired_token_is_refused() -> None:
    now = [1_000_000.0]
    web = await start_web(tokens=Tokens(lifetime=60, clock=lambda: now[0]))
    token = await web.token("alice")
    now[0] += 61
    async with connect(web.ws_url) as ws:
        await hello(ws, "alice", token=token)
        assert (await receive(ws))["code"] == "bad-token"
        assert await close_code(ws) == 1008
    assert ws.close_reason.startswith("expired token")


async def test_a_valid_token_is_welcomed() -> None:
    web = await start_web()
    async with connect(web.ws_url) as ws:
        await hello(ws, "alice", token=await web.token("alice"))
        welcome = await receive(ws)
        assert welcome["type"] == "welcome"
        assert (welcome["name"], welcome["seq"], welcome["users"], welcome["server"]) == (
            "alice",
            0,
            ["alice"],
            "web",
        )
        assert (await receive(ws))["type"] == "live"
        assert (await receive(ws))["type"] == "join"


async def test_a_plain_dialect_hello_is_refused_on_a_token_server() -> None:
    web = await start_web()
    async with connect(web.ws_url) as ws:
        await ws.send("alice")  # the original tutorial's hello: just the name
        reply = await asyncio.wait_for(ws.recv(), TIMEOUT)
        assert await close_code(ws) == 1008

    assert reply == "error: this server needs the json hello with a token"
    assert ws.close_reason == "this server needs the json hello with a token"


# --- limits ---------------------------------------------------------------------------------


async def test_a_flooding_client_is_closed_and_the_others_chat_on() -> None:
    # 0.1 message/s refills nothing during the test: the 4th message is over the limit.
    web = await start_web(ChatServer(server_id="web", rate=(0.1, 3)))
    async with await web.join("bob") as bob, await web.join("alice") as alice:
        for n in range(4):
            await alice.send(json.dumps({"type": "chat", "text": f"flood {n}"}))
        assert await close_code(alice) == 1008
        assert "rate limit" in alice.close_reason
        assert alice.close_reason == "rate limit: at most 0.1 messages/s (bursts of 3)"

        assert await chat_texts(bob, 3) == ["flood 0", "flood 1", "flood 2"]
        await message_of_type(bob, "leave", name="alice")
        await bob.send(json.dumps({"type": "chat", "text": "still here", "ref": "b1"}))
        ack = await message_of_type(bob, "ack")
        assert ack["ref"] == "b1"
        assert web.chat.room.users == ["bob"]


async def test_an_oversized_message_closes_that_connection_with_1009() -> None:
    web = await start_web(max_message=1024)
    async with await web.join("bob") as bob, await web.join("alice") as alice:
        await alice.send(json.dumps({"type": "chat", "text": "x" * 2000}))
        assert await close_code(alice) == 1009

        await message_of_type(bob, "leave", name="alice")
        await bob.send(json.dumps({"type": "chat", "text": "y" * 900, "ref": "b1"}))  # under the limit
        assert (await message_of_type(bob, "ack"))["ref"] == "b1"
        assert web.chat.room.users == ["bob"]


async def test_a_full_room_refuses_the_handshake_with_503_until_someone_leaves() -> None:
    web = await start_web(ChatServer(server_id="web", max_users=2))
    alice = await web.join("alice")
    async with await web.join("bob") as bob:
        refused = await refused_handshake(web.ws_url)
        assert refused.response.status_code == 503
        assert b"room is full" in refused.response.body
        async with web.http() as http:
            assert (await http.get("/api/users")).json()["full"] is True

        await alice.close()
        await wait_for(lambda: web.chat.room.users == ["bob"], what="alice has left")
        async with await web.join("carol"):
            assert web.chat.room.users == ["bob", "carol"]
            await message_of_type(bob, "join", name="carol")
    assert any("WS /ws refused: HTTP 503" in line for line in log_lines(web))


# --- both ends of the chat ------------------------------------------------------------------


async def test_two_chat_clients_exchange_messages_once_and_in_order() -> None:
    web = await start_web()
    xss = "<img src=x onerror=alert(1)>"
    alice, bob = web.client("alice"), web.client("bob")
    try:
        await wait_for(lambda: alice.live and bob.live, what="both are live")
        said = ["one", "two", xss, "caf\u00e9 \u540d \U0001f600", "three"]
        for text in said:
            await alice.send(text)
        await bob.send("reply")
        await wait_for(lambda: bob.texts(author="alice") == said, what="bob has alice's messages")
        await wait_for(lambda: alice.texts(author="bob") == ["reply"], what="alice has bob's reply")
        await wait_for(lambda: not alice.unacknowledged, what="alice's messages acknowledged")

        assert alice.texts(author="alice") == said  # the acks, in the same order
        assert xss in bob.texts()  # the exact text: escaping is the page's job, not the server's
        for client in (alice, bob):
            assert client.tracker.duplicates == 0
            assert client.tracker.missing == []
            assert client.rejected is None
            assert client.connects == 1
    finally:
        await asyncio.wait_for(asyncio.gather(alice.stop(), bob.stop()), TIMEOUT)


async def test_a_client_that_stops_reading_is_evicted_with_4001_and_the_others_are_not() -> None:
    # uvicorn pauses the app's sends once the transport buffer passes its high-water mark
    # (64 KiB); AsgiPeer then queues in its outbox, which is what max_backlog watches.
    web = await start_web(ChatServer(server_id="web", max_backlog=16 * 1024))
    # max_queue=1: the client stops reading from its socket as soon as one message waits
    # unread. Uncompressed, so that every byte sent is a byte waiting (permessage-deflate
    # would shrink the repetitive messages below to almost nothing). No small SO_RCVBUF:
    # once shrunk, Linux reopens the window so slowly that the drain below would take
    # longer than uvicorn's keepalive (the connection then dies with 1006, not 4001).
    slow = await web.join("slow", max_queue=1, compression=None)
    # From here on the slow client reads nothing until it has been evicted.
    async with await web.join("fast") as fast, await web.join("bystander") as bystander:
        text = "\U0001f600" * 4000  # the longest message allowed: 16 000 bytes of UTF-8
        sent = 0
        while web.chat.room.stats.evicted == 0:
            # ~250 messages with Linux's defaults (~4 MB in socket buffers, 64 KiB in uvicorn).
            assert sent < 2000, f"not evicted after {sent * 16} kB: {backlogs(web.chat)}"
            message = {"type": "chat", "text": text, "ref": str(sent)}
            await fast.send(json.dumps(message, ensure_ascii=False))
            await message_of_type(fast, "ack", ref=str(sent))  # lock-step: the fan-out has happened
            assert await chat_texts(bystander, 1) == [text]
            sent += 1

        assert web.chat.room.users == ["fast", "bystander"]
        await message_of_type(bystander, "leave", name="slow")
        await fast.send(json.dumps({"type": "chat", "text": "after", "ref": "last"}))
        await message_of_type(fast, "ack", ref="last")
        assert await chat_texts(bystander, 1) == ["after"]

        # The close frame waits behind what was queued: reading it all, the client gets 4001.
        seqs: list[int] = []
        with pytest.raises(ConnectionClosed):
            while True:
                seqs.append(json.loads(await asyncio.wait_for(slow.recv(), TIMEOUT))["seq"])
        assert slow.close_code == 4001
        assert slow.close_reason.startswith("too slow: ")
        # Everything it was handed arrived, in order; the reason says where to resume from.
        assert seqs == list(range(seqs[0], seqs[-1] + 1))
        assert slow.close_reason.endswith(f"reconnect with resume={seqs[-1]}")


# --- takeover: a reconnect that proves its name -------------------------------------------------


async def test_a_resume_with_a_valid_token_replaces_a_connection_still_holding_the_name() -> None:
    web = await start_web()
    async with await web.join("bob") as bob:
        # The old connection: as far as the server knows, still there (its network died
        # and nobody noticed yet).
        old = await web.join("alice")
        await message_of_type(bob, "join", name="alice")
        async with connect(web.ws_url) as new:
            await hello(new, "alice", token=await web.token("alice"), resume=0)
            welcome = await message_of_type(new, "welcome")
            assert await close_code(old) == 4002
            assert old.close_reason == "replaced by a newer connection"
            assert welcome["name"] == "alice"
            await message_of_type(new, "live")

            await new.send(json.dumps({"type": "chat", "text": "back", "ref": "a1"}))
            seen = [await receive(bob)]
            while seen[-1]["type"] != "chat":
                seen.append(await receive(bob))
            # The replaced connection did not leave the room: for bob, alice never went away.
            assert ("leave", "alice") not in [(m["type"], m.get("name")) for m in seen]
            assert (seen[-1]["name"], seen[-1]["text"]) == ("alice", "back")
            assert web.chat.room.users == ["bob", "alice"]


async def test_without_resume_a_held_name_is_still_taken() -> None:
    web = await start_web()
    async with await web.join("alice") as first, connect(web.ws_url) as second:
        await hello(second, "alice", token=await web.token("alice"))
        error = await receive(second)
        assert await close_code(second) == 1008
        assert error["code"] == "name-taken"
        assert first.state.name == "OPEN"


async def test_after_an_aborted_connection_a_resume_gets_the_name_back() -> None:
    web = await start_web()
    token = await web.token("alice")
    old = await connect(web.ws_url)
    await hello(old, "alice", token=token)
    await message_of_type(old, "live")
    old.transport.abort()  # no close frame: the TCP connection just dies

    # Whether or not the server has noticed yet, the token proves the name.
    async with connect(web.ws_url) as new:
        await hello(new, "alice", token=token, resume=0)
        assert (await message_of_type(new, "welcome"))["name"] == "alice"
        await message_of_type(new, "live")
        await wait_for(lambda: web.chat.room.users == ["alice"], what="one alice")


# --- stopping and serving again -------------------------------------------------------------


async def test_stopping_closes_clients_with_1001_and_frees_the_port() -> None:
    web = await start_web()
    port = web.handle.port
    async with await web.join("alice") as alice:
        await web.handle.stop()
        assert await close_code(alice) == 1001
        assert alice.close_reason == "server shutting down"
    assert await refuses_connections(port)
    assert not web.handle.serving

    again = await start_web(port=port)  # same name, same port
    async with again.http() as http:
        assert (await http.get("/health")).status_code == 200
    async with await again.join("alice"):
        pass


async def test_serving_again_under_the_same_name_replaces_the_running_server() -> None:
    first = await start_web(name="lesson04")
    async with await first.join("alice") as alice:
        second = await start_web(name="lesson04", port=first.handle.port)  # a cell run again
        assert await close_code(alice) == 1012  # service restart
    assert second.handle.port == first.handle.port
    assert not first.handle.serving
    async with second.http() as http:
        assert (await http.get("/health")).json()["users"] == 0
    assert [handle.name for handle in wslab.running()] == ["lesson04"]


async def test_the_handle_describes_the_server() -> None:
    web = await start_web(name="described")
    assert web.handle.url == f"http://127.0.0.1:{web.handle.port}/"
    assert web.handle.ws_url == f"ws://127.0.0.1:{web.handle.port}/ws"
    assert web.handle.serving
    async with await web.join("alice"):
        assert web.handle.connections == 1
        assert "described server serving" in repr(web.handle)


def test_importing_the_web_app_changes_no_logging_serving_it_does() -> None:
    """uvicorn's log filters are installed by serve_web, not as a side effect of an import."""
    probe = (
        "import logging, wslab.servers.web\n"
        "print(len(logging.getLogger('uvicorn.error').filters), len(logging.getLogger('uvicorn').handlers))"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["0", "0"]


async def test_serving_the_web_app_quiets_uvicorn_once() -> None:
    for _ in range(2):
        await serve_web(create_app(ChatServer()), name="quiet")
    errors = logging.getLogger("uvicorn.error")
    assert [type(f).__name__ for f in errors.filters].count("_DenialNoise") == 1
