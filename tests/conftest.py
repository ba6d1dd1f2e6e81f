"""Shared pytest configuration."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from helpers import unavailable


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "browser: drives a real browser (Chromium) through JupyterLab")


# --- real broker servers (lesson 06) ------------------------------------------------------


def _server(kind: str) -> Iterator[str]:
    from wslab.services import ServiceUnavailable, start_services_blocking

    try:
        services = start_services_blocking(redis=kind == "redis", nats=kind == "nats", required=True)
    except ServiceUnavailable as exc:
        unavailable(str(exc))
    url = getattr(services, f"{kind}_url")
    assert url is not None
    try:
        yield url
    finally:
        services.stop_blocking()


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A Redis (or Valkey) server for the whole test session: REDIS_URL, or one started here."""
    yield from _server("redis")


@pytest.fixture(scope="session")
def nats_url() -> Iterator[str]:
    """A NATS server with JetStream for the whole test session: NATS_URL, or one started here."""
    yield from _server("nats")
