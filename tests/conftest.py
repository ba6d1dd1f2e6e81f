"""Shared pytest configuration: markers, the fixtures every test or several modules use.

Helpers that tests call (waits, clients, assertions) are in ``helpers.py``.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from helpers import TIMEOUT_FACTOR, Wslab, start_services_blocking, unavailable
from jupyterlab_harness import CHROMIUM_ARGS, find_chromium, skip_or_fail
from jupyterlab_harness import chromium as sync_chromium

import wslab

# jsonschema (under nbformat) compiles an RFC 3987 grammar as it is imported, 1-2 s of CPU in
# every pytest process and xdist worker, only to check the "iri" string format, which no schema
# here uses (nbformat's have no formats at all). Without this module it leaves "iri" unchecked.
sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]

#: Fixtures that start (or reach) a real broker server, and the broker kinds a test may be parametrized with.
BROKER_FIXTURES = frozenset({"redis_url", "nats_url", "kafka_url"})
BROKER_KINDS = frozenset({"redis", "nats", "kafka"})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test that needs a broker process ``broker``, so ``make unit`` can leave it out.

    A module that starts its own servers says so with ``pytestmark``; here the rest is found:
    tests that use the session's servers, or run once per broker kind. A slower machine
    (``WSLAB_TESTS_TIMEOUT_FACTOR`` above 1) stretches each test's overall timeout too.
    """
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        kinds = {value for value in params.values() if isinstance(value, str)}
        if BROKER_FIXTURES & set(getattr(item, "fixturenames", ())) or BROKER_KINDS & kinds:
            item.add_marker(pytest.mark.broker)
        if TIMEOUT_FACTOR > 1:
            marker = item.get_closest_marker("timeout")
            seconds = marker.args[0] if marker and marker.args else config.getini("timeout")
            item.add_marker(pytest.mark.timeout(float(seconds) * TIMEOUT_FACTOR))


@pytest.fixture(autouse=True)
def stop_servers(request: pytest.FixtureRequest) -> None:
    """Every server an async test starts (``wslab.serve`` and the like) is stopped after it.

    Async tests only: a sync test has no event loop to run servers in, and one driving
    Playwright's sync API runs inside Playwright's loop, where no other can run.
    """
    if inspect.iscoroutinefunction(request.function):
        request.getfixturevalue("servers_stopped_after")


@pytest.fixture
async def servers_stopped_after() -> AsyncIterator[None]:
    yield
    await wslab.stop_all()


# --- processes and browsers ---------------------------------------------------------------


@pytest.fixture
async def processes() -> AsyncIterator[list[Wslab]]:
    """``python -m wslab`` processes a test starts; any still running at the end are killed."""
    started: list[Wslab] = []
    yield started
    for process in started:
        await process.kill()


@pytest.fixture
async def chromium() -> AsyncIterator[Any]:
    """A headless Chromium driven by Playwright's async API, in the test's event loop."""
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        skip_or_fail("Playwright for Python is not installed (pip install -e '.[test]')")
    async with async_playwright() as playwright:
        executable = find_chromium(playwright)
        if executable is None:
            skip_or_fail("no Chromium found (set WSLAB_CHROMIUM, or see jupyterlab_harness.find_chromium)")
        browser = await playwright.chromium.launch(
            executable_path=executable, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            await browser.close()


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


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """A headless Chromium for one test module (Playwright's sync API): skips, or fails under CI."""
    with sync_chromium() as browser:
        yield browser
