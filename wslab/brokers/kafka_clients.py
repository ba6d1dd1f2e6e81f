"""Living with aiokafka: its logs during an outage, and letting go of its clients quietly."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

__all__ = ["quiet_client_logs", "stop_quietly"]

logger = logging.getLogger("wslab.brokers.kafka")


async def stop_quietly(work: Coroutine[Any, Any, Any], *, timeout: float | None = None) -> None:
    """Run a client's ``stop()`` or ``close()`` to its end (or ``timeout``), ignoring its errors.

    In a task of its own: aiokafka 0.14's consumer ``stop()`` cancels its fetch in flight and
    awaits it, so the ``CancelledError`` comes out of ``stop()`` itself, and would end the caller's
    task as if *it* had been cancelled.
    """
    task = asyncio.ensure_future(work)
    done, _ = await asyncio.wait({task}, timeout=timeout)
    if not done:
        task.cancel()
    elif not task.cancelled() and task.exception() is not None:
        logger.debug("stopping an aiokafka client: %r", task.exception())


def quiet_client_logs() -> None:
    """Leave outages to wslab's own log lines: aiokafka logs an ERROR for each failed reconnection
    attempt of each of its clients (a flood while a broker restarts), and wslab already says, once,
    that the broker went away and when a room is back. Only if nobody set aiokafka's level: set
    it (``logging.getLogger("aiokafka").setLevel(...)``) to see them again.
    """
    client_logger = logging.getLogger("aiokafka")
    if client_logger.level == logging.NOTSET:
        client_logger.setLevel(logging.CRITICAL)
