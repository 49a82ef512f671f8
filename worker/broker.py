"""The Dramatiq Redis broker, configured for flaky networks and with our own middleware.

Dramatiq's default middleware includes Retries (20 retries, up to 7 days) and a 10-minute
TimeLimit; neither is ours. Retries are decided by the policy table and recorded in the jobs
table, so the broker runs no retry middleware at all and a failed message is simply dropped
(the job row, not the message, is what carries the work).
"""

from __future__ import annotations

from collections.abc import Sequence

import dramatiq
import redis
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import AgeLimit, Middleware, ShutdownNotifications

from worker.config import Settings

#: Redis client options for a network that drops packets and restarts servers.
REDIS_OPTIONS: dict[str, object] = {
    "socket_connect_timeout": 2.0,
    "socket_timeout": 10.0,
    "socket_keepalive": True,
    "retry_on_timeout": True,
    "health_check_interval": 15,
}


def redis_client(settings: Settings) -> redis.Redis:
    """A Redis client for shared state (key pool, metrics), with the same network options."""
    return redis.Redis.from_url(settings.redis_url, **REDIS_OPTIONS)


def make_broker(settings: Settings, middleware: Sequence[Middleware] = ()) -> RedisBroker:
    """A broker for ``settings``; ``middleware`` adds to AgeLimit and ShutdownNotifications."""
    pool = redis.ConnectionPool.from_url(settings.redis_url, **REDIS_OPTIONS)
    broker = RedisBroker(  # type: ignore[no-untyped-call]
        client=redis.Redis(connection_pool=pool),
        namespace=f"{settings.redis_namespace}:q",
        middleware=[AgeLimit(), ShutdownNotifications(), *middleware],
        heartbeat_timeout=30_000,
    )
    return broker


def install_broker(broker: dramatiq.Broker) -> None:
    dramatiq.set_broker(broker)
