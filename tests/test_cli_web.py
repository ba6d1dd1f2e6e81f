"""``python -m wslab serve web``: a real process, real signals, real sockets, on 127.0.0.1 only.

Never ``--public`` without ``--host 127.0.0.1``: by default it binds every interface.
Every wait reads the process's output line by line with a deadline; nothing sleeps.
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import pytest
from helpers import PROCESS_TIMEOUT, TIMEOUT, LocalCA, close_code, while_working
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus
from websockets.typing import Origin

from wslab.cli.instructor import HELP

ROOT = Path(__file__).resolve().parent.parent
LISTENING = re.compile(r"^web server listening on (http://127\.0\.0\.1:(\d+)/) \(Ctrl-C to stop\)$")
QR_CHARACTERS = frozenset(" █▀▄")

StartWeb = Callable[..., Awaitable["WebProcess"]]


class WebProcess:
    """``python -m wslab serve web ...``, its URL, and its stdout read line by line."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.lines: list[str] = []
        self.url = ""

    async def readline(self, timeout: float = TIMEOUT, *, starting: bool = False) -> str:
        """The next line of stdout; ``starting``: one the process prints as it starts, awaited
        while it works (:func:`helpers.while_working`) rather than until ``timeout``."""
        assert self.process.stdout is not None
        reading = self.process.stdout.readline()
        if starting:
            raw = await while_working(self.process.pid, reading, what="a line of serve web's start-up")
        else:
            raw = await asyncio.wait_for(reading, timeout)
        assert raw, f"stdout ended; read so far: {self.lines!r}"
        line = raw.decode().rstrip("\r\n")
        self.lines.append(line)
        return line

    @property
    def ws_url(self) -> str:
        return self.url.replace("http", "ws", 1) + "ws"

    async def type(self, line: str) -> str:
        """Type ``line`` into the server's terminal (its moderation channel); the line it answers."""
        assert self.process.stdin is not None
        self.process.stdin.write(f"{line}\n".encode())
        await self.process.stdin.drain()
        return await self.readline()

    def http(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, trust_env=False, timeout=TIMEOUT)

    async def finish(self, timeout: float = PROCESS_TIMEOUT) -> tuple[int, str, str]:
        """Wait for the exit: its status, the rest of stdout, and stderr."""
        out, err = await asyncio.wait_for(self.process.communicate(), timeout)
        assert self.process.returncode is not None
        return self.process.returncode, out.decode(), err.decode()


@pytest.fixture
async def serve_web() -> AsyncIterator[StartWeb]:
    """Starts ``serve web`` on 127.0.0.1, port 0, with extra options; kills what is left."""
    started: list[WebProcess] = []

    async def start(*options: str) -> WebProcess:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "wslab",
            "serve",
            "web",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            *options,
            cwd=ROOT,
            stdin=asyncio.subprocess.PIPE,  # its moderation channel; never this terminal's input
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        web = WebProcess(process)
        started.append(web)
        first = await web.readline(starting=True)
        match = LISTENING.match(first)
        assert match, f"unexpected first line {first!r}"
        web.url = match.group(1)
        return web

    yield start
    for web in started:
        if web.process.returncode is None:
            web.process.kill()
            await web.process.wait()


async def join(web: WebProcess, name: str, **body: str) -> ClientConnection:
    async with web.http() as http:
        response = await http.post("/api/token", json={"name": name, **body})
    assert response.status_code == 200, response.text
    connection = await connect(web.ws_url)
    await connection.send(json.dumps({"type": "hello", "name": name, "token": response.json()["token"]}))
    welcome = json.loads(await asyncio.wait_for(connection.recv(), TIMEOUT))
    assert welcome["type"] == "welcome", welcome
    return connection


async def next_of(connection: ClientConnection, kind: str) -> dict[str, object]:
    """The next message of type ``kind`` the server sends on ``connection``."""
    while (message := json.loads(await asyncio.wait_for(connection.recv(), TIMEOUT)))["type"] != kind:
        pass
    return message


async def until_empty(web: WebProcess) -> None:
    """Poll ``/api/users`` until nobody is in the room (the server runs in another process)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + TIMEOUT
    async with web.http() as http:
        while (await http.get("/api/users")).json()["count"]:
            assert loop.time() < deadline, "the room never emptied"
            await asyncio.sleep(0.01)


async def test_serve_web_answers_http_and_websockets_and_stops_on_sigterm(serve_web: StartWeb) -> None:
    web = await serve_web()
    async with web.http() as http:
        health = await http.get("/health")
        assert health.json() == {"status": "ok", "server": "web", "users": 0}
        assert (await http.get("/")).headers["content-security-policy"]

        async with await join(web, "alice") as alice:
            assert (await http.get("/api/users")).json()["users"] == ["alice"]

            web.process.send_signal(signal.SIGTERM)

            assert await close_code(alice) == 1001  # going away
            assert alice.close_reason == "server shutting down"
    code, out, err = await web.finish()

    assert code == 0, err
    assert "Traceback" not in err
    assert out == ""  # nothing after the "listening" line
    assert re.search(r"127\.0\.0\.1:\d+ HTTP GET /health 200", err), err
    assert re.search(r"127\.0\.0\.1:\d+ WS /ws accepted", err), err
    assert "at most 200 people, 5 messages/s each (bursts of 10), 4096 bytes per message" in err  # defaults
    assert "join code" not in err
    assert "stopped by SIGTERM" in err


async def test_public_mode_prints_the_join_url_code_and_a_qr_code(serve_web: StartWeb) -> None:
    web = await serve_web("--public", "--host", "127.0.0.1", "--join-code", "1234")
    # The page an instructor opens from a phone before the class: no script, no code needed.
    # Its line waits for the join URLs (wslab.runtime.urls imports jupyter_server to find a
    # Jupyter server this terminal may run under: 2-3 s of CPU, far more on a busy machine),
    # so it is part of the start-up, awaited while the process works.
    reach = await web.readline(starting=True)
    assert reach == f"first, from your phone on the room's network: {web.url}reach"
    assert await web.readline() == "join from a phone or laptop on this network:"
    assert await web.readline() == f"  {web.url}#code=1234"  # the code rides in the fragment
    assert await web.readline() == "join code: 1234"
    qr: list[str] = []
    while line := await web.readline():  # the QR code ends with an empty line
        qr.append(line)

    assert len(qr) >= 10
    assert all(set(line) <= QR_CHARACTERS for line in qr), qr
    assert len({len(line) for line in qr}) == 1  # a square's rows, all the same width
    assert any("▀" in line or "▄" in line for line in qr)  # two rows per character

    assert await web.readline() == HELP  # the moderation channel says how to use it
    async with web.http() as http:
        missing = await http.post("/api/token", json={"name": "alice"})
        wrong = await http.post("/api/token", json={"name": "alice", "code": "0000"})
        right = await http.post("/api/token", json={"name": "alice", "code": "1234"})
    assert (missing.status_code, missing.json()["code_required"]) == (401, True)
    assert wrong.status_code == 401
    assert right.status_code == 200

    web.process.send_signal(signal.SIGTERM)
    code, _, err = await web.finish()
    assert code == 0, err
    assert "join code 1234" in err
    assert "Traceback" not in err


async def test_public_mode_makes_a_six_digit_code_and_turns_the_heartbeat_on(serve_web: StartWeb) -> None:
    """Audience mode's limits (wslab.core.AUDIENCE) without a word on the command line."""
    web = await serve_web("--public", "--host", "127.0.0.1")
    lines = [await web.readline(starting=True) for _ in range(5)]
    code = lines[3].removeprefix("join code: ")
    assert re.fullmatch(r"\d{6}", code), lines
    assert lines[2] == f"  {web.url}#code={code}"

    async with web.http() as http:
        response = await http.post("/api/token", json={"name": "alice", "code": code})
        assert (await http.get("/api/users")).status_code == 401  # who is in: for code holders only
        listed = await http.get("/api/users", headers={"X-Join-Code": code})
    async with connect(web.ws_url) as alice:
        await alice.send(json.dumps({"type": "hello", "name": "alice", "token": response.json()["token"]}))
        welcome = json.loads(await asyncio.wait_for(alice.recv(), TIMEOUT))
    assert welcome["heartbeat"] == {"interval": 15.0, "timeout": 45.0}, welcome
    assert listed.json()["users"] == []  # asked before alice came in

    web.process.send_signal(signal.SIGTERM)
    code_, _, err = await web.finish()
    assert code_ == 0, err
    limits = "at most 200 people, 5 messages/s each (bursts of 10), 4096 bytes per message, heartbeat"
    assert limits in err


async def test_serve_web_options_reach_the_app(serve_web: StartWeb) -> None:
    allowed = "https://course.example"
    web = await serve_web(
        "--max-users", "1", "--rate", "0.1", "--burst", "2", "--max-size", "300", "--allow-origin", allowed
    )
    async with web.http() as http:
        cors = await http.get("/health", headers={"Origin": allowed})
        assert cors.headers["access-control-allow-origin"] == allowed

    async with await join(web, "alice") as alice:
        # --max-users 1: the next handshake is refused before the upgrade.
        with pytest.raises(InvalidStatus) as full:
            await connect(web.ws_url, origin=Origin(allowed))
        assert full.value.response.status_code == 503

        # --rate 0.1 --burst 2: the third message in a row is over the limit.
        for n in range(3):
            await alice.send(json.dumps({"type": "chat", "text": f"m{n}"}))
        assert await close_code(alice) == 1008
        assert alice.close_reason == "rate limit: at most 0.1 messages/s (bursts of 2)"

    await until_empty(web)
    async with await join(web, "bob") as bob:  # alice's place is free again
        await bob.send(json.dumps({"type": "chat", "text": "x" * 300}))  # --max-size 300
        assert await close_code(bob) == 1009

    web.process.send_signal(signal.SIGTERM)
    code, _, err = await web.finish()
    assert code == 0, err
    assert "at most 1 people, 0.1 messages/s each (bursts of 2), 300 bytes per message" in err
    assert "WS /ws refused: HTTP 503" in err


async def test_the_instructor_kicks_mutes_and_clears_from_the_servers_terminal(serve_web: StartWeb) -> None:
    web = await serve_web()
    async with await join(web, "alice") as alice, await join(web, "bob") as bob:
        assert await web.type("/who") == "in the room (2): alice, bob; muted: nobody"

        assert await web.type("/mute bob") == "muted bob"
        await bob.send(json.dumps({"type": "chat", "text": "am I heard?", "ref": "bob-1"}))
        refused = await next_of(bob, "error")
        assert (refused["code"], refused["ref"]) == ("muted", "bob-1")
        assert await web.type("/unmute bob") == "unmuted bob"

        assert await web.type("/clear") == "cleared the chat on every screen"
        assert (await next_of(alice, "clear"))["name"] == ""

        assert await web.type("/kick bob off topic, see me later") == "kicked bob (off topic, see me later)"
        told = await next_of(bob, "error")
        assert (told["code"], told["text"]) == (
            "kicked",
            "the instructor removed you from the room: off topic, see me later",
        )
        assert await close_code(bob) == 4003
        assert bob.close_reason == "kicked: off topic, see me later"
        assert (await next_of(alice, "kick"))["text"] == ""  # alice learns who, not why

        assert await web.type("/kick bob") == "nobody called 'bob' is in the room (in: alice)"
        assert await web.type("/mute") == "/mute needs a name: /mute NAME"
        assert (await web.type("hello?")).startswith("unknown command 'hello?'; moderation: /kick NAME")

    web.process.send_signal(signal.SIGTERM)
    code, _, err = await web.finish()
    assert code == 0, err
    assert "Traceback" not in err


async def test_serve_web_with_tls_answers_https_and_wss(tmp_path: Path) -> None:
    """``--tls CERT KEY``, with a certificate of the kind lesson 08's CA makes (``python -m trustme``)."""
    ca = LocalCA()
    cert, key = tmp_path / "server.pem", tmp_path / "server.key"
    ca.write_server_files(cert, key)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "wslab", "serve", "web", "--port", "0", "--tls", str(cert), str(key),
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    web = WebProcess(process)
    try:
        first = await web.readline(starting=True)
        match = re.match(r"^web server listening on (https://127\.0\.0\.1:\d+/) \(Ctrl-C to stop\)$", first)
        assert match, first
        trusted = ca.client_context()
        async with httpx.AsyncClient(base_url=match.group(1), verify=trusted, trust_env=False) as http:
            assert "over HTTPS" in (await http.get("/reach")).text
            token = (await http.post("/api/token", json={"name": "ann"})).json()["token"]
        async with connect(match.group(1).replace("https", "wss", 1) + "ws", ssl=trusted) as ann:
            await ann.send(json.dumps({"type": "hello", "name": "ann", "token": token}))
            assert json.loads(await asyncio.wait_for(ann.recv(), TIMEOUT))["type"] == "welcome"
        process.send_signal(signal.SIGTERM)
        code, _, err = await web.finish()
        assert code == 0, err
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
