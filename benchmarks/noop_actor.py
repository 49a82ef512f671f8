"""A no-op Dramatiq actor on the Redis broker, for ``benchmarks.peers``: the dramatiq CLI imports
this module in each of its processes (``benchmarks.noop_actor:broker``). The namespace comes from
``PEER_NAMESPACE``. The global broker is left alone, so importing this changes nothing else."""

from __future__ import annotations

import os

import dramatiq
from dramatiq.brokers.redis import RedisBroker

from benchmarks.common import REDIS_URL

broker = RedisBroker(  # type: ignore[no-untyped-call]
    url=REDIS_URL, namespace=os.environ.get("PEER_NAMESPACE", "bench-peers")
)


@dramatiq.actor(broker=broker, queue_name="bench", actor_name="noop")
def noop() -> None:
    """Does nothing: what is measured is the queue."""
