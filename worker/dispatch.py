"""Wake-up messages: "job N may have work at step S", sent after the job's row commits.

A message is only a hint. Losing one delays a job until the maintenance loop re-sends it;
sending one twice is harmless because the step claims the row first. So a broker outage never
fails a submit: we log, back off for a few seconds, and let the dispatcher catch up.
"""

from __future__ import annotations

import logging
import threading
import time

import dramatiq
import redis

log = logging.getLogger(__name__)


class Dispatcher:
    def __init__(self, broker: dramatiq.Broker, *, backoff_seconds: float = 5.0) -> None:
        self.broker = broker
        self.backoff_seconds = backoff_seconds
        self._down_until = 0.0
        self._lock = threading.Lock()

    def send(self, queue: str, *args: object, delay_ms: int | None = None) -> bool:
        """Send one wake-up (the actor of ``queue`` gets ``args``, a job id first).

        False, and no exception, when the broker is unreachable."""
        if time.monotonic() < self._down_until:
            return False
        message: dramatiq.Message[None] = dramatiq.Message(
            queue_name=queue, actor_name=queue, args=args, kwargs={}, options={}
        )
        try:
            self.broker.enqueue(message, delay=delay_ms if delay_ms and delay_ms > 0 else None)
        except (redis.RedisError, OSError) as exc:
            with self._lock:
                self._down_until = time.monotonic() + self.backoff_seconds
            log.warning("broker unreachable, %s %s waits for the dispatcher: %s", queue, args, exc)
            return False
        return True
