"""The Dramatiq Redis broker, configured for flaky networks and with our own middleware.

Dramatiq's default middleware includes Retries (20 retries, up to 7 days) and a 10-minute
TimeLimit; neither is ours. Retries are decided by the policy table and recorded in the jobs
table, so the broker runs no retry middleware at all and a failed message is simply dropped
(the job row, not the message, is what carries the work).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import dramatiq
import redis
from dramatiq.brokers.redis import RedisBroker
from dramatiq.common import current_millis, dq_name
from dramatiq.middleware import AgeLimit, Middleware, ShutdownNotifications

from worker import dramatiq_internals as internals
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


def enqueue_many(
    broker: RedisBroker, messages: Sequence[tuple[dramatiq.Message[None], int | None]]
) -> None:
    """Enqueue ``(message, delay_ms)`` pairs in one Redis round trip.

    ``RedisBroker.enqueue`` runs its dispatch script once per message, one round trip each. This
    does what it does (a fresh ``redis_message_id``, the delay queue and ``eta`` for a delayed
    message, the middleware's enqueue hooks, the same script and arguments) for every message,
    then runs the scripts in one pipeline. tests/test_dispatch.py checks that Redis ends up
    holding exactly what ``enqueue`` would have written; the script's arguments come from
    ``worker.dramatiq_internals``, which refuses a Dramatiq version it was not written for.

    The scripts run by ``EVALSHA`` without redis-py's per-pipeline ``SCRIPT EXISTS`` round trip;
    if Redis lost its scripts (a restart), every command of the batch fails with NOSCRIPT, none
    ran, and the batch is sent once more after loading the script.

    Raises what the pipeline raises (``redis.RedisError``); messages already run stay enqueued,
    which is harmless: a wake-up is a hint and a duplicate is ignored by the step's claim.
    """
    sha, source = internals.dispatch_script(broker)
    keys = internals.dispatch_keys(broker)
    prepared: list[tuple[dramatiq.Message[None], int | None]] = []
    calls: list[list[Any]] = []
    for message, delay in messages:
        queue_name = message.queue_name
        message = message.copy(options={"redis_message_id": str(uuid.uuid4())})
        if delay is not None:
            queue_name = dq_name(queue_name)
            message = message.copy(queue_name=queue_name, options={"eta": current_millis() + delay})
        broker.emit_before("enqueue", message, delay)
        args = internals.dispatch_args(
            broker,
            "enqueue",
            current_millis(),
            queue_name,
            message.options["redis_message_id"],
            message.encode(),
        )
        calls.append([*keys, *args])
        prepared.append((message, delay))
    try:
        _evalsha_all(broker.client, sha, len(keys), calls)
    except redis.exceptions.NoScriptError:
        broker.client.script_load(source)
        _evalsha_all(broker.client, sha, len(keys), calls)
    for message, delay in prepared:
        broker.emit_after("enqueue", message, delay)


def _evalsha_all(client: redis.Redis, sha: str, numkeys: int, calls: list[list[Any]]) -> None:
    """``EVALSHA sha numkeys *call`` for every call, in one pipeline (one round trip)."""
    with client.pipeline(transaction=False) as pipe:
        for call in calls:
            pipe.evalsha(sha, numkeys, *call)
        pipe.execute()
