"""Keeping the leases of the steps in flight in this process alive."""

from __future__ import annotations

import logging
import threading
import time

import psycopg

from worker import lifecycle
from worker.db import Database
from worker.sql import lifecycle as lifecycle_sql

log = logging.getLogger(__name__)


class LeaseKeeper:
    """Extends the leases of the steps in flight in this process, in one query per tick.

    A step that runs long (a big download) keeps its job; a process that stalls (SIGSTOP, a
    frozen VM) stops extending, its leases expire, and the maintenance loop rescues the jobs.
    """

    def __init__(self, db: Database, lease_seconds: float) -> None:
        self.db = db
        self.lease_seconds = lease_seconds
        self._claims: dict[tuple[int, int], lifecycle.Claim] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_beat = time.monotonic()

    def add(self, c: lifecycle.Claim) -> None:
        with self._lock:
            self._claims[(c.job_id, c.token)] = c

    def remove(self, c: lifecycle.Claim) -> None:
        with self._lock:
            self._claims.pop((c.job_id, c.token), None)

    def in_flight(self) -> int:
        with self._lock:
            return len(self._claims)

    def beat(self) -> int:
        """Extend every in-flight lease; ``last_beat`` moves only once the database agreed (an
        idle process still checks the database, so the watchdog sees a dead connection)."""
        with self._lock:
            pairs = list(self._claims)
        with self.db.connection() as conn:
            if not pairs:
                conn.execute("SELECT 1")
                self.last_beat = time.monotonic()
                return 0
            rows = conn.execute(
                lifecycle_sql.HEARTBEAT_MANY,
                {
                    "lease": self.lease_seconds,
                    "ids": [p[0] for p in pairs],
                    "tokens": [p[1] for p in pairs],
                },
            ).fetchall()
        self.last_beat = time.monotonic()
        return len(rows)

    def start(self) -> None:
        def loop() -> None:
            interval = max(0.5, self.lease_seconds / 3)
            while not self._stop.wait(interval):
                try:
                    self.beat()
                except psycopg.Error as exc:
                    log.warning("lease heartbeat failed: %s", exc)

        self._thread = threading.Thread(target=loop, name="lease-keeper", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
