"""`worker ledger check`, hourly, from the maintenance leader, as Prometheus metrics.

The maintenance leader calls :func:`after_tick` at the end of each tick. That stamps
``worker_maintenance_leader_tick_timestamp_seconds`` (so "no process is acting as the
maintenance leader" is ``time() - max(...)`` growing, an alert), and once an
:data:`INTERVAL_SECONDS` starts :func:`worker.ledger.check` in a thread of its own, so a long
check on a large ledger never delays the tick's rescues and refunds. Its result is exported as
``worker_ledger_check_ok`` (1 or 0), ``worker_ledger_check_failed{check}`` per invariant and
``worker_ledger_check_timestamp_seconds``; a failed check is also logged as an error with its
details (the same lines `worker ledger check` prints).

A leader that changes hands starts its own schedule: the new leader checks at its first tick.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from prometheus_client import Gauge

from worker import ledger
from worker.db import Database

log = logging.getLogger(__name__)

#: How often the leader checks the ledger.
INTERVAL_SECONDS = 3600.0
#: A check taking longer than this is cut off (and counts as failed: it could not finish).
STATEMENT_TIMEOUT_SECONDS = 300.0

LEADER_TICK = Gauge(
    "worker_maintenance_leader_tick_timestamp_seconds",
    "When this process last ran a maintenance tick as the leader (Unix time); max over "
    "instances is the last tick of any leader",
)
CHECK_OK = Gauge(
    "worker_ledger_check_ok",
    "1 when the last hourly ledger check passed every invariant, 0 when one failed",
)
CHECK_FAILED = Gauge(
    "worker_ledger_check_failed",
    "1 for each ledger invariant the last check found broken, 0 for the others",
    ["check"],
)
CHECK_TIMESTAMP = Gauge(
    "worker_ledger_check_timestamp_seconds",
    "When this process last finished a ledger check (Unix time)",
)
CHECK_SECONDS = Gauge("worker_ledger_check_duration_seconds", "How long the last ledger check took")


class LedgerAudit:
    """The schedule and the last result of the ledger check in this process."""

    def __init__(
        self,
        db: Database,
        *,
        interval: float = INTERVAL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.db = db
        self.interval = interval
        self._clock = clock
        self._due = float("-inf")
        self._lock = threading.Lock()
        self._running: threading.Thread | None = None
        self.last: list[ledger.Check] | None = None

    def after_tick(self) -> threading.Thread | None:
        """Stamp the leader's tick; start a check when one is due. Returns its thread."""
        LEADER_TICK.set_to_current_time()
        with self._lock:
            now = self._clock()
            if now < self._due or (self._running is not None and self._running.is_alive()):
                return None
            self._due = now + self.interval
            self._running = threading.Thread(target=self.run, name="ledger-audit", daemon=True)
            self._running.start()
            return self._running

    def run(self) -> list[ledger.Check]:
        """Check the ledger now and export the result."""
        started = time.perf_counter()
        try:
            with self.db.transaction() as conn:
                conn.execute(
                    "SELECT set_config('statement_timeout', %s, true)",
                    (str(int(STATEMENT_TIMEOUT_SECONDS * 1000)),),
                )
                checks = ledger.check(conn)
        except Exception as exc:
            log.error("ledger check could not run: %s", exc)
            checks = [ledger.Check("the check ran", False, f"could not run: {exc}")]
        CHECK_SECONDS.set(time.perf_counter() - started)
        ok = all(c.ok for c in checks)
        for c in checks:
            CHECK_FAILED.labels(check=c.name).set(0 if c.ok else 1)
        CHECK_OK.set(1 if ok else 0)
        CHECK_TIMESTAMP.set_to_current_time()
        if ok:
            log.info("ledger check: ok")
        else:
            for c in checks:
                if not c.ok:
                    log.error("ledger check FAILED: %s: %s", c.name, c.detail)
        self.last = checks
        return checks


_audits: dict[int, LedgerAudit] = {}
_audits_lock = threading.Lock()


def for_database(db: Database) -> LedgerAudit:
    """The audit of ``db`` in this process (one schedule per database)."""
    with _audits_lock:
        audit = _audits.get(id(db))
        if audit is None or audit.db is not db:
            audit = _audits[id(db)] = LedgerAudit(db)
        return audit


def after_tick(db: Database) -> None:
    """The maintenance leader's hook (one line in :mod:`worker.maintenance`)."""
    for_database(db).after_tick()
