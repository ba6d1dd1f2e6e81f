"""The chat over plain HTTP (``POST /api/stream`` + ``POST /api/send``), for networks that refuse
WebSockets: the same room, protocol, resume and limits as ``/ws``, on real sockets.

A stream is read as a browser reads it (Server-Sent Events, parsed by ``wslab.core.SseParser``).
The browser page's own fallback is tested in Chromium (``test_browser_fallback.py``).
"""

from __future__ import annotations

import json

from helpers import MS, wait_for
from support.web_app import Stream, chat_texts, message_of_type, start_web, stream

from wslab.core import HeartbeatPolicy
from wslab.servers.chat import ChatServer


async def test_a_stream_and_a_websocket_chat_in_one_room() -> None:
    web = await start_web()
    ws = await web.join("ws-user")
    async with stream(web, "http-user") as http_user:
        welcome = await http_user.message("welcome")
        assert welcome["users"] == ["ws-user", "http-user"]
        await http_user.message("live")
        await ws.send(json.dumps({"type": "chat", "text": "over a WebSocket"}))
        got = await http_user.message("chat")
        assert (got["name"], got["text"]) == ("ws-user", "over a WebSocket")

        sent = await http_user.send({"type": "chat", "text": "over plain HTTP", "ref": "h-1"})
        assert sent.status_code == 204
        ack = await http_user.message("ack")
        assert ack["ref"] == "h-1" and ack["seq"] == got["seq"] + 1
        assert await chat_texts(ws, 1) == ["over plain HTTP"]
        assert web.chat.room.users == ["ws-user", "http-user"]
    await wait_for(lambda: web.chat.room.users == ["ws-user"])  # the stream closed: a leave


async def test_each_numbered_event_carries_its_seq_as_the_sse_id() -> None:
    web = await start_web()
    async with stream(web, "ann") as ann:
        await ann.message("live")
        await ann.send({"type": "chat", "text": "one", "ref": "a-1"})
        events = [await ann.event() for _ in range(2)]  # ann's join (seq 1), then the ack (seq 2)
    assert [(event.id, json.loads(event.data)["type"]) for event in events] == [("1", "join"), ("2", "ack")]


async def test_after_a_cut_last_event_id_resumes_without_a_gap_or_a_repeat() -> None:
    web = await start_web()
    talker = await web.join("talker")
    async with stream(web, "ann") as ann:
        await ann.message("live")
        await talker.send(json.dumps({"type": "chat", "text": "before the cut"}))
        before = await ann.message("chat")
        assert await web.chat.disconnect("ann", code=4001, reason="cut by the test")
        events = await ann.ended()
    assert json.loads(events[-1].data) == {"code": 4001, "reason": "cut by the test"}
    assert events[-1].event == "close"

    for n in range(3):
        await talker.send(json.dumps({"type": "chat", "text": f"while ann is away {n}"}))
        await message_of_type(talker, "ack")  # in the room's history
    async with stream(web, "ann", headers={"Last-Event-ID": str(before["seq"])}) as ann:
        replayed = [await ann.message("chat") for _ in range(3)]
        await ann.message("live")
    assert [m["text"] for m in replayed] == [f"while ann is away {n}" for n in range(3)]
    assert [m["seq"] for m in replayed] == sorted(m["seq"] for m in replayed)
    assert replayed[0]["seq"] > before["seq"]


async def test_a_full_room_refuses_a_stream_and_a_bad_token_is_closed_with_1008() -> None:
    web = await start_web(ChatServer(server_id="web", max_users=1))
    async with web.http() as http:
        forged = {"type": "hello", "name": "mallory", "token": "bWFsbG9yeQ.9999999999.forged"}
        async with http.stream("POST", "/api/stream", json=forged) as response:
            bad = Stream(http, response)
            events = await bad.ended()
        assert [e.event for e in events] == ["session", "message", "close"]
        assert json.loads(events[1].data)["text"] == "invalid token"
        assert json.loads(events[2].data)["code"] == 1008

        await web.join("ann")
        full = await http.post("/api/stream", json={"type": "hello", "name": "ben", "token": "x"})
        assert (full.status_code, full.json()["error"]) == (503, "the room is full, try again in a moment")
        assert full.headers["retry-after"] == "5"


async def test_sending_to_no_stream_or_nonsense_is_refused_with_a_reason() -> None:
    web = await start_web()
    async with web.http() as http:
        unknown = await http.post("/api/send", json={"session": "nope", "messages": []})
        nonsense = await http.post("/api/send", content=b"not json")
        shape = await http.post("/api/send", json={"session": "nope"})
        huge = await http.post("/api/send", content=b"[" + b"1," * 40_000 + b"1]")
    assert (unknown.status_code, unknown.json()["error"]) == (404, "no such stream: open a new one")
    assert (nonsense.status_code, nonsense.json()["error"]) == (400, "send JSON")
    assert shape.status_code == 400 and "messages" in shape.json()["error"]
    assert (huge.status_code, huge.json()["error"]) == (400, "the body is over 65536 bytes")


async def test_the_heartbeat_keeps_a_stream_that_answers_and_drops_one_that_does_not() -> None:
    """Audience mode's application heartbeat works over HTTP too: pings down the stream, pongs by POST."""
    # Pongs go back by HTTP POST: the timeout leaves a busy machine 0.9 s for each round trip.
    chat = ChatServer(server_id="web", heartbeat=HeartbeatPolicy(interval=100 * MS, timeout=1_000 * MS))
    web = await start_web(chat)
    async with stream(web, "answers") as answers, stream(web, "silent") as silent:
        await answers.message("live")
        await silent.message("live")
        for _ in range(15):  # well past the timeout, answering every ping
            ping = await answers.message("ping")
            assert (await answers.send({"type": "pong", "t": ping["t"]})).status_code == 204
        await wait_for(lambda: "silent" not in chat.room.users)
        assert [e.event for e in await silent.ended()][-1:] != ["close"]  # dropped, as a dead socket
        assert chat.room.users == ["answers"]


async def test_another_sites_page_cannot_use_the_stream_as_the_origin_guard_covers_it() -> None:
    """The fallback stands in for the WebSocket, so the WebSocket's Origin rule guards it too."""
    web = await start_web()
    token = await web.token("ann")
    hello = {"type": "hello", "name": "ann", "token": token}
    async with web.http() as http:
        foreign = await http.post("/api/stream", json=hello, headers={"Origin": "https://evil.example"})
        post = await http.post(
            "/api/send", json={"session": "x", "messages": []}, headers={"Origin": "https://evil.example"}
        )
    assert (foreign.status_code, foreign.text) == (403, "origin not allowed\n")
    assert post.status_code == 403
    async with stream(web, "ann", headers={"Origin": web.origin}) as own:  # the page's own origin
        assert (await own.message("welcome"))["name"] == "ann"
