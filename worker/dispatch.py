"""Wake-up messages: "job N may have work at step S", sent after the job's row commits.

A message is only a hint. Losing one delays a job until the maintenance loop re-sends it;
sending one twice is harmless because the step claims the row first. So a broker outage never
fails a submit: we log, back off for a few seconds, and let the dispatcher catch up.

The bot's client sends in the background (``background=True``): a submit returns as soon as its
transaction commits, and a sender thread hands the hints to Redis in order. If the process dies
with hints still queued, those jobs wait for the maintenance loop's re-dispatch, as they would
after a Redis outage.
"""

from __future__ import annotations

import logging
import queue
import threading
import time

import dramatiq
import redis

log = logging.getLogger(__name__)

_Item = tuple[str, str, tuple[object, ...], int | None]


class Dispatcher:
    def __init__(
        self, broker: dramatiq.Broker, *, backoff_seconds: float = 5.0, background: bool = False
    ) -> None:
        self.broker = broker
        self.backoff_seconds = backoff_seconds
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
        if time.monotonic() < self._down_until:
            return False
        message: dramatiq.Message[None] = dramatiq.Message(
            queue_name=queue_name, actor_name=actor, args=args, kwargs={}, options={}
        )
        try:
            self.broker.enqueue(message, delay=delay_ms if delay_ms and delay_ms > 0 else None)
        except (redis.RedisError, OSError) as exc:
            with self._lock:
                self._down_until = time.monotonic() + self.backoff_seconds
            log.warning("broker unreachable, %s %s waits for the dispatcher: %s", actor, args, exc)
            return False
        return True

    def _run(self) -> None:
        assert self._queue is not None
        while True:
            item = self._queue.get()
            if item is None:
                return
            try:
                self._send_now(*item)
            except Exception:  # never let the sender thread die
                log.exception("sending a wake-up failed; the dispatcher will re-send it")
            finally:
                with self._lock:
                    self._pending -= 1
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
