"""Gauges computed at scrape time from PostgreSQL and Redis, next to the process's counters.

The counters and histograms of :mod:`worker.metrics` count what *this* process did. What the
whole system looks like — jobs by status, stuck jobs, credits in the ledger, key states, queue
depths and dead letters — lives in PostgreSQL and Redis, so this collector reads it when
Prometheus scrapes, cheaply:

* PostgreSQL, every scrape at most every ``ttl`` seconds (5 s): active jobs and stuck jobs
  through the partial indexes, and the revenue account's counters (held, captured). One
  transaction, a short statement timeout, a short wait for a pooled connection.
* PostgreSQL, at most every ``slow_ttl`` seconds (60 s): finished jobs by status (exact while
  the table is small, the planner's estimate beyond :data:`worker.stats.EXACT_COUNT_LIMIT`)
  and the refunded total, which no counter keeps (a scan of the transfers).
* Redis, with the fast group: queue depths (one pipelined round trip) and key states.

Every instance exposes the same system-wide gauges; aggregate them with ``max`` (or scrape one
instance for them). A source that fails is reported as ``worker_collector_up{source} 0`` and
its families are left out of that scrape, so a database outage never breaks the endpoint.

Dramatiq's own Prometheus middleware is not used: it serves a second endpoint (port 9191) from
a multiprocess registry, and ``worker_steps_total`` / ``worker_step_duration_seconds`` already
count and time every message our actors process, on the one ``METRICS_PORT``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import REGISTRY, CollectorRegistry
from redis import Redis

from worker import stats
from worker.config import Settings
from worker.db import Connection, Database
from worker.keys import KeyPool, KeyState

log = logging.getLogger(__name__)

#: How long a scrape's PostgreSQL and Redis readings are reused.
TTL_SECONDS = 5.0
#: How long the expensive readings (finished jobs, refunded total) are reused.
SLOW_TTL_SECONDS = 60.0
#: How long a scrape waits for a pooled connection, and for each statement.
DB_TIMEOUT_SECONDS = 2.0


class WorkerCollector:
    """A ``prometheus_client`` collector of the system-wide gauges (see the module docstring)."""

    def __init__(
        self,
        settings: Settings,
        db: Database,
        redis: Redis,
        *,
        ttl: float = TTL_SECONDS,
        slow_ttl: float = SLOW_TTL_SECONDS,
        queues: Sequence[str] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.db = db
        self.redis = redis
        self.ttl = ttl
        self.slow_ttl = slow_ttl
        self.queues = list(queues) if queues is not None else stats.queue_names()
        self.keys = KeyPool.from_settings(settings, redis)
        self._clock = clock
        self._lock = threading.Lock()
        self._fast_at = float("-inf")
        self._fast: list[Metric] = []
        self._slow_at = float("-inf")
        self._slow_statuses: dict[str, int] = {}
        self._slow_refunded: int | None = None

    def describe(self) -> Iterable[Metric]:
        # Registration must not query anything; names are not checked for duplicates.
        return []

    def collect(self) -> Iterable[Metric]:
        with self._lock:
            now = self._clock()
            if now - self._slow_at >= self.slow_ttl:
                self._slow_at = now if self._read_slow() else float("-inf")
            if now - self._fast_at >= self.ttl:
                self._fast, self._fast_at = self._read_fast(), now
            return list(self._fast)

    # -- readings ----------------------------------------------------------------------------

    def _read_slow(self) -> bool:
        try:
            with _transaction(self.db) as conn:
                counts, _estimated = stats.status_counts(conn)
                totals = stats.ledger_totals(conn)
            self._slow_statuses = {s: counts[s] for s in stats.TERMINAL}
            self._slow_refunded = totals["refunded"]
            return True
        except Exception as exc:  # try again next scrape
            log.warning("metrics: cannot read finished jobs and refunds: %s", exc)
            return False

    def _read_fast(self) -> list[Metric]:
        started = time.perf_counter()
        families: list[Metric] = []
        up = GaugeMetricFamily(
            "worker_collector_up",
            "Whether the last scrape could read the source (1) or not (0)",
            labels=["source"],
        )
        up.add_metric(["postgres"], self._postgres(families))
        up.add_metric(["redis"], self._redis(families))
        families.append(up)
        took = GaugeMetricFamily(
            "worker_collector_duration_seconds",
            "Time the last refresh of the PostgreSQL and Redis gauges took",
        )
        took.add_metric([], time.perf_counter() - started)
        families.append(took)
        return families

    def _postgres(self, out: list[Metric]) -> float:
        try:
            with _transaction(self.db) as conn:
                active = stats.active_counts(conn)
                stuck = stats.stuck_jobs(conn, examples=0)
                ledger = stats.ledger_totals(conn, with_refunds=False)
        except Exception as exc:
            log.warning("metrics: cannot read PostgreSQL: %s", exc)
            return 0.0
        jobs = GaugeMetricFamily(
            "worker_jobs",
            "Jobs by status (queued and running exact; finished refreshed every minute)",
            labels=["status"],
        )
        for status, count in active.items():
            jobs.add_metric([status], count)
        for status, count in self._slow_statuses.items():
            jobs.add_metric([status], count)
        out.append(jobs)

        stuck_family = GaugeMetricFamily(
            "worker_jobs_stuck",
            "Jobs no worker is moving: queued and overdue by 5 min, or under an expired lease",
            labels=["reason"],
        )
        stuck_family.add_metric(["queued_overdue"], stuck.queued_overdue)
        stuck_family.add_metric(["lease_expired"], stuck.lease_expired)
        out.append(stuck_family)

        credits = GaugeMetricFamily(
            "worker_credits",
            "Credits in the ledger: held now, captured ever, refunded ever",
            labels=["state"],
        )
        credits.add_metric(["held"], ledger["held"])
        credits.add_metric(["captured"], ledger["captured"])
        if self._slow_refunded is not None:
            credits.add_metric(["refunded"], self._slow_refunded)
        out.append(credits)
        return 1.0

    def _redis(self, out: list[Metric]) -> float:
        try:
            depths = stats.queue_depths(self.redis, self.settings.redis_namespace, self.queues)
            statuses = self.keys.statuses()
        except Exception as exc:
            log.warning("metrics: cannot read Redis: %s", exc)
            return 0.0
        messages = GaugeMetricFamily(
            "worker_queue_messages",
            "Broker messages per queue: ready, unacked (fetched by a worker), delayed",
            labels=["queue", "state"],
        )
        dead = GaugeMetricFamily(
            "worker_queue_dead_letters",
            "Dead-lettered messages per queue (the .XQ set)",
            labels=["queue"],
        )
        for d in depths:
            messages.add_metric([d.queue, "ready"], d.ready)
            messages.add_metric([d.queue, "unacked"], d.unacked)
            messages.add_metric([d.queue, "delayed"], d.delayed)
            dead.add_metric([d.queue], d.dead)
        out += [messages, dead]

        keys = GaugeMetricFamily(
            "worker_key_state",
            "Provider key states: 1 for the key's current state, 0 for the others",
            labels=["provider", "key", "state"],
        )
        for s in statuses:
            for state in KeyState:
                keys.add_metric([s.provider, s.name, str(state)], 1.0 if s.state is state else 0.0)
        out.append(keys)
        out.append(self._resources())
        return 1.0

    def _resources(self) -> Metric:
        """The switchable resources the kinds declare (``JobKind.resources``: models)."""
        from worker.kinds import all_kinds
        from worker.models import ResourceState, ResourceSwitches

        family = GaugeMetricFamily(
            "worker_resource_state",
            "Resources a kind switches (models): 1 for the current state (live, paused, "
            "disabled), 0 for the others",
            labels=["group", "name", "state"],
        )
        for kind in all_kinds():
            group = getattr(kind, "resources", None)
            if group is None:
                continue
            switches = ResourceSwitches(self.redis, self.settings.redis_namespace, group.name)
            for s in switches.statuses(list(group.names(self.settings))):
                for state in ResourceState:
                    family.add_metric([group.name, s.name, str(state)], float(s.state is state))
        return family


@contextmanager
def _transaction(db: Database) -> Iterator[Connection]:
    """A transaction on a pooled connection, with short waits for the connection and queries."""
    with db.pool.connection(timeout=DB_TIMEOUT_SECONDS) as conn, conn.transaction():
        conn.execute(
            "SELECT set_config('statement_timeout', %s, true)",
            (str(int(DB_TIMEOUT_SECONDS * 1000)),),
        )
        yield conn


_installed: dict[int, WorkerCollector] = {}
_install_lock = threading.Lock()


def install(
    settings: Settings,
    db: Database,
    redis: Redis,
    registry: CollectorRegistry = REGISTRY,
    **options: Any,
) -> WorkerCollector:
    """Register a collector on ``registry``, replacing one installed there before."""
    collector = WorkerCollector(settings, db, redis, **options)
    with _install_lock:
        previous = _installed.get(id(registry))
        if previous is not None:
            registry.unregister(previous)
        registry.register(collector)
        _installed[id(registry)] = collector
    return collector
