"""Short-lived signed tokens: obtained over HTTP, presented on the WebSocket. No I/O.

A browser cannot put an ``Authorization`` header on a WebSocket handshake (the
JavaScript API has no way to set headers), and a token in the URL's query string ends
up in access logs, proxy logs and browser history. So the page asks ``POST /api/token``
for a token (over plain HTTP, where cookies, headers and CORS all work as usual) and sends
it inside the first WebSocket message, where no log records it.

A token is ``<name>.<expiry>.<signature>``: an HMAC of the name and expiry time under a
secret that only the server knows. It binds a token to one username, and it expires.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

from .errors import WslabError

__all__ = ["TokenError", "Tokens"]


class TokenError(WslabError, ValueError):
    """A token the server refuses; the message says why. The connection closes with 1008."""

    close_code = 1008
    reply_code = "bad-token"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(kw_only=True)
class Tokens:
    """Issues and verifies tokens under one secret.

    Args:
        secret: the signing key; a fresh random one by default (tokens then die with the
            process, which is what a classroom server wants).
        lifetime: seconds a token stays valid.
        clock: wall-clock seconds (``time.time`` in a server; tests pass their own): expiry
            times are wall-clock times, so that another process can check them.
    """

    secret: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    lifetime: float = 900.0
    clock: Callable[[], float]

    def _sign(self, payload: str) -> str:
        return _b64(hmac.new(self.secret, payload.encode(), hashlib.sha256).digest())

    def issue(self, name: str) -> str:
        expires = int(self.clock() + self.lifetime)
        payload = f"{_b64(name.encode())}.{expires}"
        return f"{payload}.{self._sign(payload)}"

    def verify(self, token: object, name: str) -> None:
        """Return quietly if ``token`` is valid for ``name``; raise :class:`TokenError` if not."""
        if not isinstance(token, str) or not token:
            raise TokenError("authentication required: get a token from POST /api/token")
        try:
            encoded_name, expires_text, signature = token.split(".")
            token_name = _unb64(encoded_name).decode()
            expires = int(expires_text)
        except ValueError:
            raise TokenError("malformed token") from None
        if not hmac.compare_digest(signature, self._sign(f"{encoded_name}.{expires_text}")):
            raise TokenError("invalid token")
        if expires < self.clock():
            raise TokenError("expired token: get a new one from POST /api/token")
        if token_name != name:
            raise TokenError("this token was issued for another username")
