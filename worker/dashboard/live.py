"""Live pages by server-sent events, cheap by construction.

A page that changes (the overview, one job) subscribes to a *topic*. Each topic has at most one
poller, whatever the number of viewers: every :data:`INTERVAL_SECONDS` it runs one small
statement (:data:`worker.sql.dashboard.PULSE` or ``JOB_PULSE``) and, when the answer changed,
tells every subscriber, whose page then fetches itself again. A topic nobody watches has no
poller. So one open dashboard costs PostgreSQL one indexed statement every two seconds, and ten
open dashboards cost the same.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

#: How often a watched topic is polled (the issue allows at most once a second).
INTERVAL_SECONDS = 2.0
#: Viewers at once across all topics; more are refused (each holds a connection open).
MAX_SUBSCRIBERS = 200

Reader = Callable[[], str | None]


class TooManyViewers(Exception):
    pass


@dataclass
class _Topic:
    reader: Reader
    subscribers: set[asyncio.Queue[str | None]] = field(default_factory=set)
    last: str | None = None
    task: asyncio.Task[None] | None = None


class LiveHub:
    """Topics, their pollers and subscribers, on one event loop."""

    def __init__(self, *, interval: float = INTERVAL_SECONDS) -> None:
        self.interval = interval
        self._topics: dict[str, _Topic] = {}
        self.polls = 0  # statements run, for tests and the benchmark

    @property
    def subscribers(self) -> int:
        return sum(len(t.subscribers) for t in self._topics.values())

    @contextlib.asynccontextmanager
    async def subscribe(
        self, name: str, reader: Reader
    ) -> AsyncIterator[asyncio.Queue[str | None]]:
        """A queue receiving the topic's new value on each change (None: the hub is closing)."""
        if self.subscribers >= MAX_SUBSCRIBERS:
            raise TooManyViewers(name)
        topic = self._topics.setdefault(name, _Topic(reader))
        queue: asyncio.Queue[str | None] = asyncio.Queue(maxsize=8)
        topic.subscribers.add(queue)
        if topic.last is not None:  # the current value first: the page compares against it
            queue.put_nowait(topic.last)
        if topic.task is None:
            topic.task = asyncio.create_task(self._poll(name, topic), name=f"live:{name}")
        try:
            yield queue
        finally:
            topic.subscribers.discard(queue)
            if not topic.subscribers and topic.task is not None:
                topic.task.cancel()
                self._topics.pop(name, None)

    async def _poll(self, name: str, topic: _Topic) -> None:
        while True:
            try:
                value = await asyncio.to_thread(topic.reader)
                self.polls += 1
            except Exception as exc:  # the database is away: try again next tick
                log.warning("live %s: %s", name, exc)
                value = topic.last
            if value != topic.last:
                topic.last = value
                for queue in list(topic.subscribers):
                    with contextlib.suppress(asyncio.QueueFull):  # a slow viewer skips one
                        queue.put_nowait(value or "")
            await asyncio.sleep(self.interval)

    async def close(self) -> None:
        for topic in list(self._topics.values()):
            if topic.task is not None:
                topic.task.cancel()
            for queue in topic.subscribers:
                with contextlib.suppress(asyncio.QueueFull):
                    queue.put_nowait(None)
        self._topics.clear()
