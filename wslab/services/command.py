"""``python -m wslab services``: start the broker servers, say where they are, stop on a signal."""

from __future__ import annotations

import logging
from collections.abc import Callable

from ..runtime.signals import until_signalled
from .broker_servers import start_services

__all__ = ["run_services"]

logger = logging.getLogger("wslab.services")


async def run_services(
    *,
    redis: bool = True,
    nats: bool = True,
    kafka: bool = True,
    redis_port: int = 0,
    nats_port: int = 0,
    kafka_port: int = 0,
    announce: Callable[[str], None],
) -> int:
    """Start, announce the URLs, stop on Ctrl-C or SIGTERM; the exit status."""
    services = await start_services(
        redis=redis,
        nats=nats,
        kafka=kafka,
        required=True,
        register=False,
        redis_port=redis_port,
        nats_port=nats_port,
        kafka_port=kafka_port,
    )

    def ready() -> None:
        for note in services.notes:
            announce(note)
        for url in (services.redis_url, services.nats_url, services.kafka_url):
            if url:
                announce(f"then: python -m wslab serve chat --port 0 --broker {url}")
        announce("(Ctrl-C to stop)")

    try:
        sig = await until_signalled(on_ready=ready)
        logger.info("stopping the broker servers (%s)", sig.name)
        return 0
    finally:
        await services.stop()
