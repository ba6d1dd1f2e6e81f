"""The simulated browser tabs of ``bench poll-vs-push``: one per mode, every byte counted.

Each tab talks to the dashboard over its own TCP connection, through a minimal HTTP/1.1
client on asyncio streams (or the :mod:`websockets` sans-I/O protocol for the WebSocket),
so that what is counted is what crossed the wire: request lines, headers, bodies, chunk
framing, WebSocket frame headers. Requests carry the headers a browser's ``fetch()``
sends (:data:`BROWSER_HEADERS`, about 400 bytes, no cookies).

Every tab keeps the ``seq`` of each service's newest change it knows, and records each
change it learns of: its ``seq`` and how long after its publication it arrived.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from dataclasses import dataclass, field
from typing import Any

from websockets.client import ClientProtocol
from websockets.extensions.permessage_deflate import enable_client_permessage_deflate
from websockets.frames import Frame, Opcode
from websockets.uri import parse_uri

from ..core.sse import SseParser

__all__ = ["BROWSER_HEADERS", "MODES", "Meter", "Tab", "make_tab"]

#: What each mode is called in tables and on the command line.
MODES = ("poll", "etag", "long-poll", "sse", "websocket")

#: Roughly what Chromium sends with a same-origin fetch(), minus cookies.
BROWSER_HEADERS = (
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/130.0.0.0 Safari/537.36\r\n"
    "Accept: */*\r\nAccept-Encoding: gzip, deflate, br, zstd\r\nAccept-Language: en-GB,en;q=0.9\r\n"
    'sec-ch-ua: "Chromium";v="130", "Not?A_Brand";v="99"\r\nsec-ch-ua-mobile: ?0\r\n'
    'sec-ch-ua-platform: "Linux"\r\nSec-Fetch-Site: same-origin\r\nSec-Fetch-Mode: cors\r\n'
    "Sec-Fetch-Dest: empty\r\nReferer: http://dashboard.example/\r\n"
)


@dataclass
class Meter:
    """What all the tabs of one mode sent and received (shared; reset when measuring starts)."""

    requests: int = 0
    to_server: int = 0
    from_server: int = 0
    #: (seq, seconds from publication to arrival) of every change a tab learnt of.
    seen: list[tuple[int, float]] = field(default_factory=list)
    not_modified: int = 0

    def reset(self) -> None:
        self.requests = self.to_server = self.from_server = self.not_modified = 0
        self.seen.clear()


class Http:
    """One keep-alive HTTP/1.1 connection that counts the bytes it moves."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, meter: Meter, host: str
    ) -> None:
        self.reader, self.writer, self.meter, self.host = reader, writer, meter, host

    def send(self, path: str, headers: str = "") -> None:
        data = f"GET {path} HTTP/1.1\r\nHost: {self.host}\r\n{BROWSER_HEADERS}{headers}\r\n".encode()
        self.writer.write(data)
        self.meter.to_server += len(data)
        self.meter.requests += 1

    async def head(self) -> tuple[int, dict[str, str]]:
        raw = await self.reader.readuntil(b"\r\n\r\n")
        self.meter.from_server += len(raw)
        status_line, *lines = raw.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines:
            name, _, value = line.partition(":")
            if name:
                headers[name.strip().lower()] = value.strip()
        return int(status_line.split()[1]), headers

    async def chunk(self) -> bytes:
        """One chunk of a chunked body (b"" at its end)."""
        size_line = await self.reader.readuntil(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        data = await self.reader.readexactly(size + 2)
        self.meter.from_server += len(size_line) + size + 2
        return data[:-2]

    async def get(self, path: str, headers: str = "") -> tuple[int, dict[str, str], bytes]:
        self.send(path, headers)
        status, response_headers = await self.head()
        if status in (204, 304):
            return status, response_headers, b""
        if "content-length" in response_headers:
            body = await self.reader.readexactly(int(response_headers["content-length"]))
            self.meter.from_server += len(body)
            return status, response_headers, body
        parts = []
        while part := await self.chunk():
            parts.append(part)
        return status, response_headers, b"".join(parts)


class Tab:
    """One simulated tab; :meth:`run` follows the fleet until cancelled."""

    def __init__(self, url: str, meter: Meter, *, interval: float, rng: random.Random) -> None:
        self.url = url.rstrip("/")
        self.meter = meter
        self.interval = interval
        self.rng = rng
        self.known: dict[str, int] = {}  # service -> seq of the newest change known
        self.seq = 0
        self.ready = asyncio.Event()
        self.writer: asyncio.StreamWriter | None = None
        parts = parse_uri(self.url.replace("http", "ws", 1) + "/ws")
        self.host, self.port = parts.host, parts.port

    async def connect(self) -> Http:
        reader, self.writer = await asyncio.open_connection(self.host, self.port)
        return Http(reader, self.writer, self.meter, f"{self.host}:{self.port}")

    def close(self) -> None:
        """Drop the connection (after the task was cancelled), so the next mode starts afresh."""
        if self.writer is not None:
            self.writer.close()

    def snapshot(self, data: dict[str, Any], *, count: bool = True) -> None:
        """Take a whole state; each service that moved on since the last one was learnt of now."""
        now = time.time()
        for service in data["services"]:
            if service["seq"] > self.known.get(service["service"], 0):
                self.known[service["service"]] = service["seq"]
                if count and self.ready.is_set():
                    self.meter.seen.append((service["seq"], now - service["at"]))
        self.seq = max(self.seq, int(data["seq"]))
        self.ready.set()

    def change(self, change: dict[str, Any]) -> None:
        if change["seq"] > self.seq:
            self.known[change["service"]] = self.seq = change["seq"]
            self.meter.seen.append((change["seq"], time.time() - change["at"]))

    async def run(self) -> None:
        raise NotImplementedError


class PollTab(Tab):
    """``GET /api/status`` every ``interval``; with ``conditional``, with ``If-None-Match``."""

    conditional = False

    async def run(self) -> None:
        http = await self.connect()
        etag = ""
        await asyncio.sleep(self.rng.uniform(0, self.interval))  # tabs were opened at different times
        start = asyncio.get_running_loop().time()
        ticks = 0
        while True:
            condition = f"If-None-Match: {etag}\r\n" if self.conditional and etag else ""
            status, headers, body = await http.get("/api/status", condition)
            if status == 304:
                self.meter.not_modified += 1
            else:
                etag = headers.get("etag", "")
                self.snapshot(json.loads(body))
            ticks += 1
            delay = start + ticks * self.interval - asyncio.get_running_loop().time()
            await asyncio.sleep(max(0.0, delay))


class EtagTab(PollTab):
    conditional = True


class LongPollTab(Tab):
    """``GET /api/changes?since=SEQ``, again as soon as each answer arrives."""

    async def run(self) -> None:
        http = await self.connect()
        _, _, body = await http.get("/api/status")
        self.snapshot(json.loads(body), count=False)
        while True:
            status, _, body = await http.get(f"/api/changes?since={self.seq}&timeout=25")
            if status == 200:
                answer = json.loads(body)
                if "snapshot" in answer:
                    self.snapshot(answer["snapshot"])
                for change in answer.get("changes", []):
                    self.change(change)


class SseTab(Tab):
    """One ``GET /api/events``, read for as long as it lasts."""

    async def run(self) -> None:
        http = await self.connect()
        http.send("/api/events", "Accept: text/event-stream\r\n")
        await http.head()
        parser = SseParser()
        while chunk := await http.chunk():
            for event in parser.feed(chunk.decode()):
                if event.event == "snapshot":
                    self.snapshot(json.loads(event.data), count=False)
                elif event.event == "change":
                    self.change(json.loads(event.data))


class WebSocketTab(Tab):
    """``/ws`` through the websockets sans-I/O protocol, with permessage-deflate as browsers ask."""

    async def run(self) -> None:
        reader, writer = await asyncio.open_connection(self.host, self.port)
        self.writer = writer
        protocol = ClientProtocol(
            parse_uri(f"ws://{self.host}:{self.port}/ws"),
            extensions=enable_client_permessage_deflate(None),
        )
        protocol.send_request(protocol.connect())
        self.meter.requests += 1
        while True:
            for data in protocol.data_to_send():
                writer.write(data)
                self.meter.to_server += len(data)
            data = await reader.read(65536)
            if not data:
                return
            self.meter.from_server += len(data)
            protocol.receive_data(data)
            for event in protocol.events_received():
                if isinstance(event, Frame) and event.opcode is Opcode.TEXT:
                    message = json.loads(bytes(event.data))
                    if message["type"] == "snapshot":
                        self.snapshot(message, count=False)
                    else:
                        self.change(message)


_TABS: dict[str, type[Tab]] = {
    "poll": PollTab,
    "etag": EtagTab,
    "long-poll": LongPollTab,
    "sse": SseTab,
    "websocket": WebSocketTab,
}


def make_tab(mode: str, url: str, meter: Meter, *, interval: float, rng: random.Random) -> Tab:
    """A tab of ``mode`` (one of :data:`MODES`) for the dashboard at ``url``."""
    return _TABS[mode](url, meter, interval=interval, rng=rng)
