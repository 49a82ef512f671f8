"""Every use of Dramatiq's internals, in one place, behind a check of the installed version.

Dramatiq's public API has no batch enqueue and no way to hand back the messages a Redis consumer
prefetched but never gave a thread. This project needs both, so it relies on what Dramatiq does
not promise to keep:

- the Redis broker's ``dispatch`` Lua script and the order of its arguments (command, timestamp,
  queue, broker id, heartbeat timeout, dead-message TTL, a maintenance flag, the Lua unpack
  limit, then the command's own arguments), two of which come from the private
  ``RedisBroker._should_do_maintenance`` and ``RedisBroker._max_unpack_size``
  (``worker.broker.enqueue_many``);
- ``Worker.consumers``, ``Worker.workers``, ``ConsumerThread.consumer``/``.running`` and the
  Redis consumer's ``message_cache`` (``worker.runner``: start-up, health, drain).

They were read in Dramatiq 2.0.0 to 2.2.1, where they are the same. :data:`SUPPORTED` is that
range, pyproject.toml pins it, and :func:`check_version` runs when this module is imported, so
another version stops the worker and the bot's client at start with a message naming the range,
instead of sending mis-ordered script arguments in production. tests/test_dispatch.py checks
that a batch leaves Redis holding exactly what ``RedisBroker.enqueue`` writes.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from redis.typing import ScriptTextT

from worker.errors import WorkerError

#: The Dramatiq versions whose internals this module was written against (pip's syntax).
SUPPORTED = ">=2.0,<2.3"
_LOWEST = (2, 0)
_ABOVE = (2, 3)


class UnsupportedDramatiq(WorkerError):
    """The installed Dramatiq is outside :data:`SUPPORTED`."""


def check_version(version: str | None = None) -> None:
    """Raise :class:`UnsupportedDramatiq` unless ``version`` (default: the installed one) is in
    :data:`SUPPORTED`."""
    version = dramatiq.__version__ if version is None else version
    match = re.match(r"(\d+)\.(\d+)(?:\.\d+)?$", version.strip())
    release = (int(match[1]), int(match[2])) if match else None
    if release is None or not _LOWEST <= release < _ABOVE:
        raise UnsupportedDramatiq(
            f"Dramatiq {version} is installed; this worker supports dramatiq{SUPPORTED} only, "
            "because it uses Dramatiq internals (worker/dramatiq_internals.py) that other "
            "versions may change. Install a supported one: "
            f"pip install 'dramatiq[redis]{SUPPORTED}'"
        )


check_version()


# -- the Redis broker's dispatch script --------------------------------------------------------


def dispatch_script(broker: RedisBroker) -> tuple[str, ScriptTextT]:
    """The dispatch script's SHA1 and source, for ``EVALSHA`` and for loading it again."""
    script = broker.scripts["dispatch"]
    return str(script.sha), script.script


def dispatch_keys(broker: RedisBroker) -> list[str]:
    """The script's KEYS: the broker's namespace."""
    return [broker.namespace]


def dispatch_args(
    broker: RedisBroker, command: str, timestamp: int, queue_name: str, *args: Any
) -> list[Any]:
    """ARGV for one ``command`` on ``queue_name``, as ``RedisBroker``'s own dispatch builds it."""
    return [
        command,
        timestamp,
        queue_name,
        broker.broker_id,
        broker.heartbeat_timeout,
        broker.dead_message_ttl,
        broker._should_do_maintenance(command),
        broker._max_unpack_size(),  # type: ignore[no-untyped-call]
        *args,
    ]


# -- a running Worker's threads ----------------------------------------------------------------


def consumer_threads(worker: dramatiq.Worker) -> list[Any]:
    """The worker's consumer threads, one per queue (each has ``running`` and ``is_alive()``)."""
    return list(worker.consumers.values())


def all_threads(worker: dramatiq.Worker) -> list[Any]:
    """Every thread the worker started: its worker threads and its consumer threads."""
    return [*worker.workers, *worker.consumers.values()]


def set_idle_poll(worker: dramatiq.Worker, ms: int) -> None:
    """Make every consumer back off at most ``ms`` between fetches of an empty queue: the
    ``timeout`` of its Redis consumer (and of the thread, for a consumer not yet made)."""
    for thread in worker.consumers.values():
        thread.worker_timeout = ms
        consumer = thread.consumer
        if consumer is not None and hasattr(consumer, "timeout"):
            consumer.timeout = ms


def take_prefetched(
    worker: dramatiq.Worker,
) -> Iterator[tuple[str, Any, list[dramatiq.MessageProxy]]]:
    """For each Redis consumer holding prefetched messages no thread was given, yield its queue,
    the consumer (whose ``requeue`` puts them back) and the messages, emptying its cache first.

    ``Worker.stop`` requeues its own work queue, but a consumer stopped in the middle of a
    prefetched batch keeps the rest in ``message_cache``: they would wait in the process's ack
    set until its Redis heartbeat expired.
    """
    for thread in worker.consumers.values():
        consumer = thread.consumer
        cached = getattr(consumer, "message_cache", None)
        if consumer is None or not cached:
            continue
        messages = [dramatiq.MessageProxy(dramatiq.Message.decode(d)) for d in cached if d]
        consumer.message_cache = []  # type: ignore[attr-defined]
        yield thread.queue_name, consumer, messages
