"""Idle polling that costs the same whatever the number of worker processes.

A Dramatiq consumer whose queue is empty backs off up to its ``timeout`` between fetches
(``IDLE_POLL_MS``). Every process polls every queue of every kind, so Redis sees
``processes × queues / IDLE_POLL_MS`` fetches a second when nothing happens: 20 processes poll
ten times as often as two, and on a small machine that CPU is taken from the work itself
(``benchmarks.scale``). A new message, though, waits only for the *first* of the processes to
poll its queue: with N processes polling at random phases, the fleet's wait is the interval
divided by N.

So the processes count themselves (a sorted set in Redis, one member a process, renewed every
:data:`BEAT_SECONDS`) and each polls every ``IDLE_POLL_MS × N / REFERENCE_PROCESSES``, at most
:data:`MAX_IDLE_POLL_MS`: the fleet polls each idle queue as often as two processes at
``IDLE_POLL_MS`` do, however many there are, and a new message waits about as long. A busy
consumer is unaffected (Dramatiq resets its backoff after every message). Redis out of reach:
the interval stays as it was.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable

import redis

log = logging.getLogger(__name__)

#: The fleet size ``IDLE_POLL_MS`` is meant for: with two processes nothing changes.
REFERENCE_PROCESSES = 2
#: How often a process renews its membership and reads the fleet's size.
BEAT_SECONDS = 5.0
#: A member not renewed for this long has gone (killed, or its host lost).
MEMBER_TTL_SECONDS = 3 * BEAT_SECONDS
#: The longest idle interval, whatever the fleet (a lone consumer of a queue still answers).
MAX_IDLE_POLL_MS = 1000


def idle_poll_ms(base_ms: int, processes: int) -> int:
    """Each process's idle interval for a fleet of ``processes``."""
    scaled = round(base_ms * max(processes, 1) / REFERENCE_PROCESSES)
    return max(base_ms, min(scaled, max(MAX_IDLE_POLL_MS, base_ms)))


class FleetPolling:
    """One process's membership of the fleet, and the idle interval it applies."""

    def __init__(
        self,
        client: redis.Redis,
        namespace: str,
        member: str,
        base_ms: int,
        apply: Callable[[int], None],
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.key = f"{namespace}:fleet"
        self.member = member
        self.base_ms = base_ms
        self.apply = apply
        self._clock = clock
        self.applied = base_ms
        self.processes = 1
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def beat(self) -> int:
        """Renew the membership, count the live members and apply the interval; returns it."""
        now = self._clock()
        try:
            pipe = self.client.pipeline(transaction=True)
            pipe.zadd(self.key, {self.member: now})
            pipe.zremrangebyscore(self.key, "-inf", now - MEMBER_TTL_SECONDS)
            pipe.zcard(self.key)
            pipe.expire(self.key, int(MEMBER_TTL_SECONDS * 4))
            self.processes = int(pipe.execute()[2])
        except redis.RedisError as exc:
            log.debug("fleet size not read (%s); idle polling stays at %d ms", exc, self.applied)
            return self.applied
        wanted = idle_poll_ms(self.base_ms, self.processes)
        if wanted != self.applied:
            self.apply(wanted)
            log.info(
                "%d worker processes: idle queues polled every %d ms each", self.processes, wanted
            )
            self.applied = wanted
        return wanted

    def leave(self) -> None:
        """Leave the fleet at once (a clean stop), so the others speed up without waiting."""
        with contextlib.suppress(redis.RedisError):
            self.client.zrem(self.key, self.member)

    def start(self) -> None:
        def loop() -> None:
            while not self._stop.wait(BEAT_SECONDS):
                self.beat()

        self.beat()
        self._thread = threading.Thread(target=loop, name="fleet-polling", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(BEAT_SECONDS + 1)
        self.leave()
