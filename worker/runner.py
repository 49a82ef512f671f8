"""`worker run`: one worker process with T threads, what systemd's ``worker@N`` starts.

Startup: Sentry (before the broker, as its Dramatiq integration requires), the broker, the
actors of every job kind, the Dramatiq worker, the lease keeper, the maintenance loop (which
only acts when this process is the elected leader), metrics, then ``READY=1``.

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
from dataclasses import dataclass
from types import FrameType

import dramatiq
from dramatiq.middleware import Middleware

from worker import sdnotify
from worker.actors import declare_actors
from worker.broker import make_broker, redis_client
from worker.config import Settings
from worker.db import Database
from worker.dispatch import Dispatcher
from worker.keys import KeyPool
from worker.kinds import all_kinds
from worker.maintenance import Maintenance
from worker.redaction import install_logging
from worker.steps import LeaseKeeper, Runtime, Services
from worker.telegram import TelegramNotifier

log = logging.getLogger("worker.run")


@dataclass
class Health:
    """What the watchdog checks before saying WATCHDOG=1."""

    broker_ok: bool = True
    last_progress: float = 0.0


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
        self.forced = False
        from worker.observability import init_sentry

        init_sentry(settings)  # before the broker: the Dramatiq integration patches it
        self.broker = make_broker(settings, extra_middleware or [])
        dramatiq.set_broker(self.broker)
        self.db = Database(
            settings.database_url,
            min_size=min(2, settings.db_pool_min),
            max_size=max(settings.db_pool_max, threads + 3),
            name=f"worker{instance}",
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
            settings, self.db, self.dispatcher, kinds, self.services.notifications
        )
        self.worker: dramatiq.Worker | None = None

    def start(self) -> None:
        self.db.open(wait=True, timeout=30)
        self.broker.emit_after("process_boot")
        self.worker = dramatiq.Worker(self.broker, worker_threads=self.threads, worker_timeout=500)
        self.worker.start()
        self.leases.start()
        self.maintenance.start()
        from worker.observability import start_metrics_server

        start_metrics_server(self)
        sdnotify.notify(
            "READY=1", f"STATUS=consuming {len(self.queues)} queues with {self.threads} threads"
        )
        log.info(
            "worker %s ready: %d threads on %s", self.instance, self.threads, ", ".join(self.queues)
        )

    def healthy(self) -> bool:
        """Broker reachable, database reachable, the lease keeper and maintenance loop alive."""
        try:
            self.redis.ping()
            with self.db.transaction() as conn:
                conn.execute("SELECT 1")
        except Exception as exc:
            log.warning("health check failed: %s", exc)
            return False
        beat_age = time.monotonic() - self.leases.last_beat
        return beat_age < max(30.0, self.settings.lease_seconds)

    def request_stop(self, signum: int, _frame: FrameType | None) -> None:
        if self.stopping.is_set():
            log.warning(
                "second signal %s: exiting at once; in-flight steps will be rescued", signum
            )
            self.forced = True
            os._exit(1)
        log.info("signal %s: draining (up to %.0f s)", signum, self.settings.drain_seconds)
        sdnotify.notify("STOPPING=1", "STATUS=draining")
        self.stopping.set()

    def wait(self) -> None:
        interval = sdnotify.watchdog_interval()
        while not self.stopping.wait(interval or 1.0):
            if interval and self.healthy():
                sdnotify.notify("WATCHDOG=1")

    def drain(self) -> bool:
        """Stop consuming, finish in-flight steps, requeue prefetched messages. True if clean."""
        assert self.worker is not None
        deadline = time.monotonic() + self.settings.drain_seconds
        # Tell systemd the stop may take up to the drain time (plus margin).
        extend = int((self.settings.drain_seconds + 10) * 1_000_000)
        sdnotify.notify(f"EXTEND_TIMEOUT_USEC={extend}")
        done = threading.Event()

        def stop_worker() -> None:
            assert self.worker is not None
            self.worker.stop(timeout=int(self.settings.drain_seconds * 1000))
            done.set()

        stopper = threading.Thread(target=stop_worker, name="drain", daemon=True)
        stopper.start()
        while not done.wait(1.0):
            in_flight = self.leases.in_flight()
            sdnotify.notify(f"STATUS=draining {in_flight} step(s)", f"EXTEND_TIMEOUT_USEC={extend}")
            if time.monotonic() > deadline + 5:
                log.error(
                    "drain timed out with %d step(s) in flight; they will be rescued", in_flight
                )
                return False
        clean = self.leases.in_flight() == 0
        self.maintenance.stop()
        self.leases.stop()
        self.services.close()
        self.broker.close()
        self.db.close()
        return clean


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
