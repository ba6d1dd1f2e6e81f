"""Real Redis (or Valkey), NATS and Kafka-protocol servers, and chat server processes, for lesson 06.

Where a broker comes from, in order:

1. a URL in the environment: ``REDIS_URL`` / ``NATS_URL`` / ``KAFKA_URL`` (a server someone else runs);
2. a server program on ``PATH``: ``redis-server`` or ``valkey-server`` / ``nats-server`` / ``tansu``;
3. the programs that wslab's own dependencies ship (:mod:`~wslab.services.discovery`).

A server found as a program is started here as a child process
(:mod:`~wslab.services.process`), registered like the lessons' other servers, so
``wslab.stop_all()`` stops it too. In a notebook::

    services = await start_services()
    services.redis_url, services.nats_url
    await services.redis.restart(keep_data=False)   # lesson 06's outage
    await services.stop()

From a terminal: ``python -m wslab services``.

The modules: ``discovery`` (finding the programs), ``process`` (one child-process server's
lifecycle), ``probes`` (is a broker ready), ``broker_servers`` (Redis, NATS, tansu for Kafka
with ``kafka=True``, and all of them for a lesson), ``chat_processes`` (chat servers in
processes of their own), ``command`` (the CLI loop).
"""

from .broker_servers import (
    BrokerServer,
    KafkaServer,
    NatsServer,
    RedisServer,
    Services,
    start_services,
)
from .chat_processes import ChatProcess
from .command import run_services
from .discovery import find_kafka_server, find_nats_server, find_redis_server
from .process import ServerProcess, ServiceUnavailable

__all__ = [
    "BrokerServer",
    "ChatProcess",
    "KafkaServer",
    "NatsServer",
    "RedisServer",
    "ServerProcess",
    "ServiceUnavailable",
    "Services",
    "find_kafka_server",
    "find_nats_server",
    "find_redis_server",
    "run_services",
    "start_services",
]
