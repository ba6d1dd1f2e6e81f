"""Small WebSocket clients the lessons and the command line share."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass

from websockets.asyncio.client import connect
from websockets.uri import parse_uri

from .handshake import RFC_SAMPLE_KEY, Response, close_frame, upgrade_request

__all__ = ["Handshake", "capture_handshake", "exchange"]


@dataclass(frozen=True)
class Handshake:
    """The bytes of one real opening handshake, as they crossed the socket."""

    request: bytes
    response_head: bytes

    @property
    def response(self) -> Response:
        return Response.parse(self.response_head)

    def transcript(self) -> str:
        """Both messages as text, one header per line, CRLFs dropped."""
        request = self.request.decode("latin-1").rstrip("\r\n").split("\r\n")
        response = self.response_head.decode("latin-1").split("\r\n")
        return "\n".join(["--- client sends ---", *request, "", "--- server answers ---", *response])


async def capture_handshake(url: str, *, key: str = RFC_SAMPLE_KEY, timeout: float = 5) -> Handshake:
    """Open a WebSocket by hand over a raw TCP socket and return the handshake's bytes.

    Having read the ``101`` response, it closes the connection properly (a masked close
    frame, then waiting for the server's), so the server logs a clean 1000.
    """
    uri = parse_uri(url)
    if uri.secure:
        raise ValueError("capture_handshake shows plain ws:// traffic; wss:// is encrypted")
    reader, writer = await asyncio.wait_for(asyncio.open_connection(uri.host, uri.port), timeout)
    try:
        host = uri.host if uri.port in (80,) else f"{uri.host}:{uri.port}"
        request = upgrade_request(host, uri.resource_name, key=key)
        writer.write(request)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
        handshake = Handshake(request, head[:-4])
        if handshake.response.status == 101:
            writer.write(close_frame(1000))
            # The server answers with its own close frame, then closes TCP.
            await asyncio.wait_for(reader.read(), timeout)
        return handshake
    finally:
        writer.close()
        await writer.wait_closed()


async def exchange(
    url: str, messages: Iterable[str | bytes], *, timeout: float = 5, **options: object
) -> list[str | bytes]:
    """Send each message and wait for one reply to it; return the replies in order."""
    replies: list[str | bytes] = []
    async with connect(url, open_timeout=timeout, **options) as connection:  # type: ignore[arg-type]
        for message in messages:
            await connection.send(message)
            replies.append(await asyncio.wait_for(connection.recv(), timeout))
    return replies
