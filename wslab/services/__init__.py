"""Real Redis (or Valkey) and NATS servers, chat and dashboard server processes, and nginx,
for lessons 06-08 and the tests.

Where a broker comes from, in order:

1. a URL in the environment: ``REDIS_URL`` / ``NATS_URL`` (a server someone else runs);
2. a server program on ``PATH``: ``redis-server`` or ``valkey-server`` / ``nats-server``;
3. the programs that wslab's own dependencies ship (``discovery.py``).

A server found as a program is started here as a child process (``process.py``), registered
like the lessons' other servers, so ``wslab.stop_all()`` stops it too. In a notebook::

    services = await start_services()
    services.redis_url, services.nats_url
    await services.redis.restart(keep_data=False)   # lesson 06's outage
    await services.stop()

from a terminal, ``python -m wslab services``.

The modules: ``discovery`` (finding the programs), ``process`` (one child-process server's
lifecycle), ``probes`` (is a broker ready), ``broker_servers`` (Redis, NATS, tansu for Kafka
with ``kafka=True``, and all of them for a lesson), ``chat_processes`` and
``dashboard_processes`` (servers in processes of their own, sharing a broker), ``nginx``
(lesson 08's reverse proxy), ``command`` (the CLI loop). Each name below loads its module on
first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..imports import lazy_exports

if TYPE_CHECKING:
    from .broker_servers import start_services
    from .chat_processes import ChatProcess
    from .dashboard_processes import start_dashboard_servers
    from .nginx import NginxServer, find_nginx, nginx_config
    from .process import die_with_parent

__all__ = [
    "ChatProcess",
    "NginxServer",
    "die_with_parent",
    "find_nginx",
    "nginx_config",
    "start_dashboard_servers",
    "start_services",
]

lazy_exports(
    globals(),
    {
        "ChatProcess": ".chat_processes",
        "NginxServer": ".nginx",
        "die_with_parent": ".process",
        "find_nginx": ".nginx",
        "nginx_config": ".nginx",
        "start_dashboard_servers": ".dashboard_processes",
        "start_services": ".broker_servers",
    },
)
