"""Shared pytest configuration."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from helpers import start_services_blocking, unavailable

#: Fixtures that start (or reach) a real broker server, and the broker kinds a test may be parametrized with.
BROKER_FIXTURES = frozenset({"redis_url", "nats_url", "kafka_url"})
BROKER_KINDS = frozenset({"redis", "nats", "kafka"})


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "browser: drives a real browser (Chromium) through JupyterLab")
    config.addinivalue_line(
        "markers", "broker: needs a real Redis (Valkey), NATS or Kafka-protocol (tansu) server process"
    )
    config.addinivalue_line("markers", "lab: runs the README's main command on a fresh copy (installs)")
    config.addinivalue_line("markers", "lesson: executes a whole lesson notebook in a fresh kernel")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that needs a broker process ``broker``, so ``make unit`` can leave it out.

    A module that starts its own servers says so with ``pytestmark``; here the rest is found:
    tests that use the session's servers, or run once per broker kind.
    """
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        kinds = {value for value in params.values() if isinstance(value, str)}
        if BROKER_FIXTURES & set(getattr(item, "fixturenames", ())) or BROKER_KINDS & kinds:
            item.add_marker(pytest.mark.broker)


# --- real broker servers (lesson 06) ------------------------------------------------------


def _server(kind: str) -> Iterator[str]:
    from wslab.services.process import ServiceUnavailable

    try:
        services = start_services_blocking(
            redis=kind == "redis", nats=kind == "nats", kafka=kind == "kafka", required=True
        )
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


@pytest.fixture(scope="session")
def kafka_url() -> Iterator[str]:
    """A Kafka broker (tansu, memory storage) for the whole test session: KAFKA_URL, or one started here."""
    yield from _server("kafka")
