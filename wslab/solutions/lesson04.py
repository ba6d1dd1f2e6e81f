"""Solutions to lesson 04's exercises."""

from __future__ import annotations

from http import HTTPStatus
from urllib.parse import urlsplit


def origin_allowed(origin: str | None, host: str, extra: set[str]) -> bool:
    if origin is None:
        return True  # not a browser: it carries no victim's cookies
    return origin in extra or urlsplit(origin).netloc == host


def health(connection, request):  # type: ignore[no-untyped-def]
    if request.path == "/healthz":
        return connection.respond(HTTPStatus.OK, "OK\n")
    return None
