"""wss:// with lesson 08's certificate authority: real TLS handshakes on 127.0.0.1.

The client that trusts the lesson's CA gets in; a wrong host name, an IP the certificate
does not name, an untrusted CA and a ws:// URL on a TLS port each fail with one line that
says why (:func:`wslab.runtime.tls.explain_tls_error`), as ``python -m wslab send`` prints it.
"""

from __future__ import annotations

import asyncio
import ssl

import pytest
from helpers import LocalCA, wait_for
from websockets.asyncio.client import connect

import wslab
from wslab.cli.main import main
from wslab.clients.chat import ChatClient
from wslab.runtime.tls import explain_tls_error
from wslab.servers import echo
from wslab.servers.chat import ChatServer


@pytest.fixture(scope="module")
def ca() -> LocalCA:
    return LocalCA()


async def _failure(url: str, **options: object) -> BaseException:
    with pytest.raises(Exception) as caught:
        async with connect(url, open_timeout=5, **options):  # type: ignore[arg-type]
            pass
    return caught.value


async def test_echo_over_wss_with_the_lessons_ca(ca: LocalCA) -> None:
    server = await wslab.serve(echo, ssl=ca.server_context())
    assert server.url.startswith("wss://127.0.0.1:")
    for url in (server.url, f"wss://localhost:{server.port}/"):
        async with connect(url, ssl=ca.client_context()) as ws:
            await ws.send("secret")
            assert await ws.recv() == "Echo: secret"
            assert ws.transport.get_extra_info("ssl_object").version().startswith("TLSv1.")


async def test_chat_over_wss(ca: LocalCA) -> None:
    handle = await ChatServer().serve(ssl=ca.server_context())
    ana = ChatClient(handle.url, "ana", ssl=ca.client_context()).start()
    ben = ChatClient(handle.url, "ben", ssl=ca.client_context()).start()
    await wait_for(lambda: ana.live and ben.live)
    await ana.send("over TLS")
    await wait_for(lambda: ben.texts() == ["over TLS"])
    await ana.stop()
    await ben.stop()


async def test_a_wrong_host_name_fails_with_code_62(ca: LocalCA) -> None:
    server = await wslab.serve(echo, ssl=ca.server_context())
    exc = await _failure(server.url, ssl=ca.client_context(), server_hostname="wrong.example")
    assert isinstance(exc, ssl.SSLCertVerificationError) and exc.verify_code == 62
    assert explain_tls_error(exc) == (
        "the certificate is not valid for the host name in the URL (verify code 62: "
        "Hostname mismatch, certificate is not valid for 'wrong.example'.)"
    )


async def test_an_ip_the_certificate_does_not_name_fails_with_code_64() -> None:
    only_localhost = LocalCA(hosts=("localhost",))
    server = await wslab.serve(echo, ssl=only_localhost.server_context())
    exc = await _failure(f"wss://127.0.0.1:{server.port}/", ssl=only_localhost.client_context())
    assert isinstance(exc, ssl.SSLCertVerificationError) and exc.verify_code == 64
    assert "not valid for the IP address" in (explain_tls_error(exc) or "")


async def test_an_untrusted_ca_fails_with_code_20(ca: LocalCA) -> None:
    server = await wslab.serve(echo, ssl=ca.server_context())
    for options in ({}, {"ssl": LocalCA().client_context()}):  # the system's CAs; another local CA
        exc = await _failure(server.url, **options)
        assert isinstance(exc, ssl.SSLCertVerificationError) and exc.verify_code == 20
        assert (explain_tls_error(exc) or "").startswith("the certificate is signed by a CA this client")


async def test_plain_ws_on_a_tls_port_is_explained(ca: LocalCA) -> None:
    server = await wslab.serve(echo, ssl=ca.server_context())
    exc = await _failure(f"ws://127.0.0.1:{server.port}/")
    assert "does it expect wss:// (TLS)?" in (explain_tls_error(exc) or "")
    assert explain_tls_error(ValueError("unrelated")) is None


async def test_the_cli_prints_one_line_not_a_traceback(
    ca: LocalCA, capsys: pytest.CaptureFixture[str]
) -> None:
    server = await wslab.serve(echo, ssl=ca.server_context())
    # main() runs its own event loop: run it in a thread while this loop serves.
    code = await asyncio.to_thread(main, ["send", server.url, "hello"])
    err = capsys.readouterr().err.strip()
    assert code == 1
    assert err.splitlines() == [
        "wslab: the certificate is signed by a CA this client does not trust "
        "(verify code 20: unable to get local issuer certificate)"
    ]
