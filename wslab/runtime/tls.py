"""TLS for ``wss://`` on loopback: a certificate authority of the lesson's own, and TLS failures
said in one line.

Lesson 08 builds both contexts by hand (:mod:`ssl` and ``trustme``, five lines). Nothing
here is for production: there a real CA (Let's Encrypt, your company's) signs the
certificate, and TLS usually ends at the reverse proxy.

A client that refuses a certificate raises :class:`ssl.SSLCertVerificationError`, not a
websockets exception; its ``verify_code`` says why (OpenSSL's ``X509_V_ERR_*`` numbers):

* 20 unable to get local issuer certificate: signed by a CA the client does not trust;
* 62 hostname mismatch: the certificate names other hosts than the one in the URL;
* 64 IP address mismatch: the same, for a URL with an IP address;
* 10 certificate has expired.

:func:`explain_tls_error` turns these (and a few neighbours) into one readable line.
"""

from __future__ import annotations

import ssl

from websockets.exceptions import InvalidMessage

__all__ = ["HOSTS", "explain_tls_error"]

#: The names a lesson certificate is valid for: this machine, by name and by address.
HOSTS = ("localhost", "127.0.0.1", "::1")

_VERIFY_ADVICE = {
    20: "the certificate is signed by a CA this client does not trust",
    62: "the certificate is not valid for the host name in the URL",
    64: "the certificate is not valid for the IP address in the URL",
    10: "the certificate has expired",
    18: "the certificate is self-signed and not trusted",
}


def explain_tls_error(exc: BaseException) -> str | None:
    """One line saying why a ``wss://`` (or mistaken ``ws://``) connection failed; None if
    ``exc`` is not about TLS."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        why = _VERIFY_ADVICE.get(exc.verify_code, "the server's certificate was rejected")
        return f"{why} (verify code {exc.verify_code}: {exc.verify_message})"
    if isinstance(exc, ssl.SSLError):
        if exc.reason == "WRONG_VERSION_NUMBER":
            return "the server does not speak TLS on this port: use ws://, or its wss:// port"
        return f"the TLS handshake failed ({exc.reason or exc})"
    if isinstance(exc, InvalidMessage) and isinstance(exc.__cause__, EOFError | ConnectionError):
        return "the server closed the connection during the handshake: does it expect wss:// (TLS)?"
    return None
