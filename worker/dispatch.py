"""Wake-up messages: "job N may have work at step S", sent after the job's row commits.

A message is only a hint. Losing one delays a job until the maintenance loop re-sends it;
sending one twice is harmless because the step claims the row first. So a broker outage never
fails a submit: we log, stop trying for a few seconds, and the maintenance loop re-sends what
was lost.

The bot's client sends in the background (``background=True``): a submit returns as soon as its
transaction commits, and a sender thread hands the hints to Redis in order. Woken by a hint, it
lets more gather for ``LINGER_SECONDS`` and sends them all in one Redis round trip
(``worker.broker.enqueue_many``), so a busy bot pays for a round trip per batch, not per job, and
its submitting thread competes less for the GIL. If the process dies with hints still queued,
those jobs wait for the maintenance loop's re-dispatch, as they would after a Redis outage.
"""

from __future__ import annotations

import logging
import queue
import threading
import time

import dramatiq
import redis
from dramatiq.brokers.redis import RedisBroker

from worker.broker import enqueue_many

log = logging.getLogger(__name__)

_Item = tuple[str, str, tuple[object, ...], int | None]

#: The most hints the sender thread hands to Redis in one round trip.
MAX_BATCH = 500
#: How long the sender thread lets hints gather after the first one of a batch. Without it a
#: bot submitting from one thread would send batches of one: the sender outruns the submits.
LINGER_SECONDS = 0.002


class Dispatcher:
    def __init__(
        self,
        broker: dramatiq.Broker,
        *,
        backoff_seconds: float = 5.0,
        background: bool = False,
        linger_seconds: float = LINGER_SECONDS,
    ) -> None:
        self.broker = broker
        self.backoff_seconds = backoff_seconds
        self.linger_seconds = linger_seconds
        self._down_until = 0.0
        self._lock = threading.Lock()
        self._queue: queue.SimpleQueue[_Item | None] | None = None
        self._thread: threading.Thread | None = None
        self._pending = 0
        self._idle = threading.Condition(self._lock)
        if background:
            self._queue = queue.SimpleQueue()
            self._thread = threading.Thread(target=self._run, name="dispatcher", daemon=True)
            self._thread.start()

    def send(
        self,
        queue_name: str,
        *args: object,
        actor: str | None = None,
        delay_ms: int | None = None,
    ) -> bool:
        """Send one wake-up on ``queue_name`` for ``actor`` (by default the queue's namesake),
        which gets ``args``, a job id first.

        False, and no exception, when the broker is unreachable. In background mode the hint is
        queued and True means only that."""
        item = (queue_name, actor or queue_name, args, delay_ms)
        if self._queue is not None:
            with self._lock:
                self._pending += 1
            self._queue.put(item)
            return True
        return self._send_now(*item)

    def _send_now(
        self, queue_name: str, actor: str, args: tuple[object, ...], delay_ms: int | None
    ) -> bool:
        return self._send_batch([(queue_name, actor, args, delay_ms)])

    def _send_batch(self, items: list[_Item]) -> bool:
        """Hand ``items`` to the broker: one ``enqueue`` for one item, else one pipeline."""
        if time.monotonic() < self._down_until:
            return False
        pairs: list[tuple[dramatiq.Message[None], int | None]] = [
            (
                dramatiq.Message(
                    queue_name=queue_name, actor_name=actor, args=args, kwargs={}, options={}
                ),
                delay_ms if delay_ms and delay_ms > 0 else None,
            )
            for queue_name, actor, args, delay_ms in items
        ]
        try:
            if len(pairs) == 1 or not isinstance(self.broker, RedisBroker):
                for message, delay in pairs:
                    self.broker.enqueue(message, delay=delay)
            else:
                enqueue_many(self.broker, pairs)
        except (redis.RedisError, OSError) as exc:
            with self._lock:
                self._down_until = time.monotonic() + self.backoff_seconds
            what = (
                f"{items[0][1]} {items[0][2]} waits"
                if len(items) == 1
                else f"{len(items)} wake-ups wait"
            )
            log.warning("broker unreachable, %s for the maintenance loop: %s", what, exc)
            return False
        return True

    def _run(self) -> None:
        assert self._queue is not None
        stopping = False
        while not stopping:
            batch: list[_Item] = []
            item = self._queue.get()
            if item is not None:
                time.sleep(self.linger_seconds)  # let a batch gather (GIL released meanwhile)
            while item is not None:
                batch.append(item)
                if len(batch) >= MAX_BATCH:
                    break
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            stopping = item is None
            try:
                if batch:
                    self._send_batch(batch)
            except Exception:  # never let the sender thread die
                log.exception("sending wake-ups failed; the maintenance loop will re-send them")
            finally:
                with self._lock:
                    self._pending -= len(batch)
                    if self._pending == 0:
                        self._idle.notify_all()

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every queued hint was handed to the broker (or given up)."""
        if self._queue is None:
            return True
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._pending:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._idle.wait(remaining)
        return True

    def close(self, timeout: float = 5.0) -> None:
        self.flush(timeout)
        if self._queue is not None and self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout)
