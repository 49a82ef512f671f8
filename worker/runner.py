"""`worker run`: one worker process with T threads, what systemd's ``worker@N`` starts.

Startup: Sentry (before the broker, as its Dramatiq integration requires), the broker, the
actors of every job kind, the Dramatiq worker, the lease keeper, the maintenance loop (which
only acts when this process is the elected leader), the storage retention pass (one process per
host at a time), metrics, then ``READY=1`` once Redis
answers and every consumer thread runs. Under a systemd watchdog, ``WATCHDOG=1`` every
``WATCHDOG_USEC / 2`` while :meth:`WorkerProcess.check_health` finds nothing wrong.

Shutdown on SIGTERM or SIGINT: ``STOPPING=1``, stop taking messages, let the steps in flight
finish (up to ``DRAIN_SECONDS``, telling systemd with ``EXTEND_TIMEOUT_USEC``), put prefetched
messages back on the queue, exit 0. A second signal, or the drain timeout, exits at once; what
was in flight is picked up by the maintenance loop's rescue when its lease expires.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from types import FrameType

import dramatiq
import redis
from dramatiq.middleware import Middleware

from worker import dramatiq_internals as internals
from worker import leader, sdnotify
from worker.actors import declare_actors
from worker.broker import make_broker, redis_client
from worker.config import Settings
from worker.db import Database
from worker.dispatch import Dispatcher
from worker.fleet_polling import FleetPolling
from worker.keys import KeyPool
from worker.kinds import all_kinds
from worker.lease_keeper import LeaseKeeper
from worker.maintenance import Maintenance
from worker.redaction import install_logging, redact
from worker.retention import RetentionLoop
from worker.runtime import Runtime
from worker.services import Services
from worker.telegram import TelegramNotifier

log = logging.getLogger("worker.run")


#: How long start-up waits for Redis before giving up (PostgreSQL it waits for as long as it
#: takes: worker.db.Database.wait_reachable).
STARTUP_WAIT = 30.0
#: How long start-up waits for the Dramatiq consumer threads before saying READY=1.
CONSUMERS_TIMEOUT = 10.0
#: Bound on the health check's wait for a pooled connection (the pool keeps 3 spare).
HEALTH_DB_TIMEOUT = 5.0


@dataclass
class Health:
    """What the watchdog checked before saying WATCHDOG=1: healthy when nothing is wrong."""

    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def __str__(self) -> str:
        return "healthy" if self.ok else "; ".join(self.problems)


class WorkerProcess:
    def __init__(
        self,
        settings: Settings,
        *,
        threads: int,
        instance: int = 0,
        extra_middleware: list[Middleware] | None = None,
    ) -> None:
        self.settings = settings
        self.threads = threads
        self.instance = instance
        self.stopping = threading.Event()
        from worker.observability import init_sentry

        init_sentry(settings)  # before the broker: the Dramatiq integration patches it
        self.broker = make_broker(settings, extra_middleware or [])
        dramatiq.set_broker(self.broker)
        # At most DB_POOL_MAX server connections, whatever the thread count: the threads, the
        # lease keeper, the maintenance leader and the health check all share them.
        self.db = Database(
            settings.database_url,
            min_size=min(2, settings.db_pool_min),
            max_size=settings.db_pool_max,
            name=f"worker{instance}",
            pooler=settings.database_pooler,
        )
        self.redis = redis_client(settings)
        self.dispatcher = Dispatcher(self.broker, backoff_seconds=2.0)
        token = settings.telegram_bot_token.get_secret_value()
        telegram = TelegramNotifier.from_settings(settings) if token else None
        self.services = Services(
            settings,
            self.db,
            KeyPool.from_settings(settings, self.redis),
            self.dispatcher,
            telegram,
        )
        self.leases = LeaseKeeper(self.db, settings.lease_seconds)
        kinds = {k.name: k for k in all_kinds()}
        self.runtime = Runtime(self.services, kinds, self.leases)
        self.queues = declare_actors(self.broker, self.runtime)
        self.maintenance = Maintenance(
            settings,
            self.db,
            self.dispatcher,
            kinds,
            self.services.notifications,
            holder=leader.holder_id(instance),
        )
        self.retention = RetentionLoop(
            settings.storage_dir, self.db, settings.storage_retention_days * 86400
        )
        self.worker: dramatiq.Worker | None = None
        self.fleet: FleetPolling | None = None

    def start(self) -> None:
        # PostgreSQL down or full: wait (with backoff, saying so once a minute), never exit.
        reachable = self.db.wait_reachable(
            self.stopping, on_wait=lambda why: sdnotify.waiting("PostgreSQL", why)
        )
        if not reachable:  # SIGTERM while waiting: nothing started, nothing to drain
            log.info("worker %s stopped while waiting for PostgreSQL", self.instance)
            raise SystemExit(0)
        self.db.open(wait=False)
        self.broker.emit_after("process_boot")
        self.worker = dramatiq.Worker(
            self.broker, worker_threads=self.threads, worker_timeout=self.settings.idle_poll_ms
        )
        self.worker.start()
        worker = self.worker
        self.fleet = FleetPolling(
            self.redis,
            self.settings.redis_namespace,
            leader.holder_id(self.instance),
            self.settings.idle_poll_ms,
            lambda ms: internals.set_idle_poll(worker, ms),
        )
        self.fleet.start()
        self.leases.start()
        self.maintenance.start()
        self.retention.start()
        from worker.observability import start_metrics_server

        start_metrics_server(self)
        self._wait_consuming()
        if self.stopping.is_set():  # SIGTERM during start-up: drain without announcing READY
            return
        sdnotify.notify("READY=1", f"STATUS={self._status()}")
        log.info(
            "worker %s ready: %d threads on %s", self.instance, self.threads, ", ".join(self.queues)
        )

    def _wait_consuming(self) -> None:
        """Return once Redis answers and every consumer thread runs.

        Wait up to ``STARTUP_WAIT`` seconds for Redis, then raise: a
        start that fails slowly during an outage is retried by systemd without ever reaching
        its start limit, which is there for processes that crash at once.
        """
        assert self.worker is not None
        deadline = time.monotonic() + STARTUP_WAIT
        while True:
            try:
                self.redis.ping()
                break
            except redis.RedisError as exc:
                if time.monotonic() > deadline or self.stopping.is_set():
                    raise
                log.warning("waiting for Redis: %s", exc)
                time.sleep(1.0)
        deadline = time.monotonic() + CONSUMERS_TIMEOUT
        consumers = internals.consumer_threads(self.worker)
        while not all(c.running for c in consumers) and time.monotonic() < deadline:
            time.sleep(0.05)

    def _status(self) -> str:
        return f"consuming {len(self.queues)} queues with {self.threads} threads"

    def check_health(self) -> Health:
        """Redis and PostgreSQL answer, and the threads that do the work are alive and moving:
        every Dramatiq worker and consumer thread, the maintenance loop, and the lease keeper,
        whose ``last_beat`` moves every ``LEASE_SECONDS / 3`` even with nothing in flight. A
        keeper silent for a whole lease is stuck, and the leases it should extend are lost."""
        health = Health()
        try:
            self.redis.ping()
        except Exception as exc:
            health.problems.append(f"Redis does not answer ({exc})")
        try:
            with self.db.pool.connection(timeout=HEALTH_DB_TIMEOUT) as conn:
                conn.execute("SELECT 1")
        except Exception as exc:
            health.problems.append(f"PostgreSQL does not answer ({exc})")
        beat_age = time.monotonic() - self.leases.last_beat
        if beat_age > max(self.settings.lease_seconds, 2.0):
            health.problems.append(f"lease keeper silent for {beat_age:.0f} s")
        if self.worker is not None:
            threads = internals.all_threads(self.worker)
            dead = sum(1 for t in threads if not t.is_alive())
            if dead:
                health.problems.append(f"{dead} of {len(threads)} Dramatiq threads died")
        maintenance = self.maintenance._thread  # not exposed otherwise
        if maintenance is not None and not maintenance.is_alive():
            # Its leader lease would only expire: restart to run the loop again.
            health.problems.append("maintenance loop died")
        return health

    def healthy(self) -> bool:
        """True when :meth:`check_health` finds nothing wrong."""
        return self.check_health().ok

    def request_stop(self, signum: int, _frame: FrameType | None) -> None:
        if self.stopping.is_set():
            log.warning(
                "second signal %s: exiting at once; in-flight steps will be rescued", signum
            )
            os._exit(1)
        # Set first: a second signal can run this handler again before this call returns.
        self.stopping.set()
        self.runtime.draining.set()
        log.info("signal %s: draining (up to %.0f s)", signum, self.settings.drain_seconds)
        sdnotify.notify("STOPPING=1", "STATUS=draining")

    def wait(self) -> None:
        """Until SIGTERM: under a systemd watchdog, ping it only while healthy. An unhealthy
        process skips pings; once a whole ``WatchdogSec`` passes without one, systemd restarts
        it (its in-flight steps are rescued when their leases expire)."""
        interval = sdnotify.watchdog_interval()
        was_ok = True
        while not self.stopping.wait(interval or 1.0):
            if not interval:
                continue
            health = self.check_health()
            if self.stopping.is_set():
                break
            if health.ok:
                states = ["WATCHDOG=1"] if was_ok else ["WATCHDOG=1", f"STATUS={self._status()}"]
                sdnotify.notify(*states)
                if not was_ok:
                    log.info("healthy again")
            else:
                text = redact(str(health))
                log.warning("unhealthy, not pinging the watchdog: %s", text)
                sdnotify.notify(f"STATUS=unhealthy: {text}")
            was_ok = health.ok

    def drain(self) -> bool:
        """Stop consuming, finish in-flight steps, requeue prefetched messages. True if clean."""
        assert self.worker is not None
        deadline = time.monotonic() + self.settings.drain_seconds

        def extend() -> str:
            # Tell systemd the stop may take until our own deadline (plus margin): only matters
            # when DRAIN_SECONDS is raised above TimeoutStopSec, since it never shortens it.
            remaining = max(deadline + 10 - time.monotonic(), 1.0)
            return f"EXTEND_TIMEOUT_USEC={int(remaining * 1_000_000)}"

        sdnotify.notify(extend(), f"STATUS=draining {self.leases.in_flight()} step(s)")
        done = threading.Event()

        def stop_worker() -> None:
            assert self.worker is not None
            self.worker.stop(timeout=int(self.settings.drain_seconds * 1000))
            self._requeue_fetched()
            done.set()

        stopper = threading.Thread(target=stop_worker, name="drain", daemon=True)
        stopper.start()
        while not done.wait(1.0):
            in_flight = self.leases.in_flight()
            sdnotify.notify(f"STATUS=draining {in_flight} step(s)", extend())
            if time.monotonic() > deadline + 5:
                log.error(
                    "drain timed out with %d step(s) in flight; they will be rescued", in_flight
                )
                return False
        clean = self.leases.in_flight() == 0
        if self.fleet is not None:
            self.fleet.stop()
        self.maintenance.stop()
        self.retention.stop()
        self.leases.stop()
        self.services.close()
        self.broker.close()
        self.db.close()
        return clean

    def _requeue_fetched(self) -> None:
        """Put back what the Redis consumers fetched but never handed to a thread
        (``worker.dramatiq_internals.take_prefetched`` says why)."""
        assert self.worker is not None
        for queue_name, consumer, messages in internals.take_prefetched(self.worker):
            try:
                consumer.requeue(messages)
                log.info("requeued %d prefetched message(s) on %s", len(messages), queue_name)
            except Exception as exc:
                log.warning("could not requeue %d prefetched message(s): %s", len(messages), exc)


def run(settings: Settings, *, threads: int | None = None, instance: int = 0) -> int:
    """Run one worker process until SIGTERM; return the exit status."""
    install_logging()
    process = WorkerProcess(settings, threads=threads or settings.worker_threads, instance=instance)
    signal.signal(signal.SIGTERM, process.request_stop)
    signal.signal(signal.SIGINT, process.request_stop)
    process.start()
    process.wait()
    clean = process.drain()
    log.info("worker %s stopped %s", instance, "cleanly" if clean else "after the drain timeout")
    return 0 if clean else 1
