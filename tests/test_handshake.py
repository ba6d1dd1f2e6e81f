"""The opening handshake and close frame of RFC 6455, as bytes and over a real socket."""

from __future__ import annotations

import base64
import struct

import pytest
from helpers import new_key, wait_for
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

import wslab
from wslab.clients.chat import capture_handshake
from wslab.core.handshake import RFC_SAMPLE_KEY, Response, accept_key, close_frame, upgrade_request
from wslab.servers import echo


def test_accept_key_matches_the_rfc_sample() -> None:
    assert accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    assert RFC_SAMPLE_KEY == "dGhlIHNhbXBsZSBub25jZQ=="


def test_new_key_is_16_random_bytes_in_base64() -> None:
    keys = {new_key() for _ in range(5)}
    assert len(keys) == 5
    assert all(len(base64.b64decode(key, validate=True)) == 16 for key in keys)


def test_upgrade_request_bytes() -> None:
    request = upgrade_request("example.com:9001", "/chat", key=RFC_SAMPLE_KEY)
    assert request == (
        b"GET /chat HTTP/1.1\r\n"
        b"Host: example.com:9001\r\n"
        b"Upgrade: websocket\r\n"
        b"Connection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        b"Sec-WebSocket-Version: 13\r\n"
        b"\r\n"
    )


def test_upgrade_request_with_origin() -> None:
    request = upgrade_request("localhost", key="abc", origin="http://localhost:8888")
    assert request.startswith(b"GET / HTTP/1.1\r\n")
    assert b"\r\nOrigin: http://localhost:8888\r\n\r\n" in request
    assert request.endswith(b"\r\n\r\n")
    assert request.count(b"\r\n\r\n") == 1


def test_response_parse() -> None:
    head = (
        b"HTTP/1.1 101 Switching Protocols\r\n"
        b"Upgrade: websocket\r\n"
        b"Connection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
        b"Date: Tue, 02 Jan 2024 03:04:05 GMT"
    )
    response = Response.parse(head)

    assert response.status == 101
    assert response.reason == "Switching Protocols"
    assert [name for name, _ in response.headers] == ["Upgrade", "Connection", "Sec-WebSocket-Accept", "Date"]
    assert response.header("sec-websocket-accept") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    assert response.header("Date") == "Tue, 02 Jan 2024 03:04:05 GMT"  # colons in values survive
    assert response.header("Sec-WebSocket-Protocol") is None


def test_response_parse_error_status_without_reason() -> None:
    response = Response.parse(b"HTTP/1.1 426\r\nSec-WebSocket-Version: 13")
    assert (response.status, response.reason) == (426, "")
    assert response.header("sec-websocket-version") == "13"


@pytest.mark.parametrize("head", [b"SSH-2.0-OpenSSH_9.6", b"GET / HTTP/1.1\r\nHost: x", b"HTTP/1.1 OK"])
def test_response_parse_rejects_non_http(head: bytes) -> None:
    with pytest.raises(ValueError, match="not an HTTP response"):
        Response.parse(head)


def unmask(frame: bytes) -> tuple[int, int, bytes]:
    """``(first byte, payload length, unmasked payload)`` of a short masked frame."""
    assert frame[1] & 0x80, "a client's frame must be masked"
    length = frame[1] & 0x7F
    mask, masked = frame[2:6], frame[6:]
    assert len(masked) == length
    return frame[0], length, bytes(b ^ mask[i % 4] for i, b in enumerate(masked))


def test_close_frame_is_a_masked_fin_close_with_code_and_reason() -> None:
    frame = close_frame(1001, "bye", mask=b"\x01\x02\x03\x04")
    first, length, payload = unmask(frame)

    assert first == 0x88  # FIN + opcode 8 (close)
    assert length == 5
    assert frame[2:6] == b"\x01\x02\x03\x04"
    assert frame[6:] != payload  # the payload is not sent in the clear
    assert struct.unpack("!H", payload[:2])[0] == 1001
    assert payload[2:] == b"bye"


def test_close_frame_uses_a_fresh_random_mask() -> None:
    frames = [close_frame(1000) for _ in range(4)]
    assert len({frame[2:6] for frame in frames}) > 1
    for frame in frames:
        _, _, payload = unmask(frame)
        assert payload == b"\x03\xe8"  # 1000, no reason


def test_close_frame_parses_as_websockets_reads_a_client_frame() -> None:
    reader = StreamReader()
    reader.feed_data(close_frame(1000, "done"))
    reader.feed_eof()
    parser = Frame.parse(reader.read_exact, mask=True)
    with pytest.raises(StopIteration) as stop:
        next(parser)
    frame: Frame = stop.value.value
    assert frame.opcode is Opcode.CLOSE
    assert frame.fin
    assert frame.data == b"\x03\xe8done"


def test_close_frame_rejects_a_reason_too_long_for_a_control_frame() -> None:
    close_frame(1000, "x" * 123)  # 2 + 123 = 125 bytes: the limit
    with pytest.raises(ValueError, match="125"):
        close_frame(1000, "x" * 124)


async def test_capture_handshake_against_a_real_server() -> None:
    log = wslab.EventLog()
    handle = await wslab.serve(echo, name="handshake", log=log)
    key = new_key()

    handshake = await capture_handshake(handle.url, key=key)

    assert handshake.request == upgrade_request(f"127.0.0.1:{handle.port}", "/", key=key)
    response = handshake.response
    assert response.status == 101
    assert response.header("Upgrade") == "websocket"
    assert response.header("Sec-WebSocket-Accept") == accept_key(key)
    transcript = handshake.transcript()
    assert "--- client sends ---" in transcript
    assert "HTTP/1.1 101 Switching Protocols" in transcript
    assert "\r" not in transcript
    # The hand-made close frame was valid: the server saw a clean close by the client.
    await wait_for(lambda: log.open_connections == 0, what="server recorded the disconnect")
    closed = [e for e in log if e.direction is wslab.LogKind.DISCONNECT]
    assert [(e.code, e.text) for e in closed] == [(1000, "by client")]


async def test_capture_handshake_default_key_is_the_rfc_sample() -> None:
    handle = await wslab.serve(echo, name="handshake")
    handshake = await capture_handshake(handle.url)
    assert handshake.response.header("Sec-WebSocket-Accept") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


async def test_capture_handshake_refuses_wss() -> None:
    with pytest.raises(ValueError, match="wss"):
        await capture_handshake("wss://127.0.0.1:1/")
