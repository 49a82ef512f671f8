"""The maintenance loop, run by exactly one worker process at a time.

Every worker process runs this loop; a lease row elects the one that acts (worker/leader.py,
River's design): the leader renews it at every tick on a pooled connection, and when the leader
dies the lease expires and another process takes over at its next tick. Each tick:

1. re-dispatches queued jobs whose wake-up message was lost (Redis restarted or was down);
2. rescues running jobs whose lease expired (their worker died or stalled), at most
   ``MAX_RESCUES`` times per job; a job that keeps killing workers fails and is refunded;
3. fails and refunds queued jobs past their deadline;
4. resolves any terminal job whose hold is still open (capture if succeeded, else refund);
5. re-sends outbox notifications whose message was lost.

Every action leaves an event in the job's timeline.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import psycopg
import redis
from dramatiq.brokers.redis import RedisBroker

from worker import balance_watch, ledger, ledger_audit, lifecycle
from worker.config import Settings
from worker.db import Database
from worker.dispatch import Dispatcher
from worker.errors import ErrorClass, ProviderError
from worker.events import EventCode
from worker.kinds import JobKind
from worker.leader import LeaderElector, lease_seconds
from worker.metrics import MAINTENANCE
from worker.notifications import Notifications
from worker.sql import maintenance as q
from worker.stats import queue_depths
from worker.status import JobStatus

log = logging.getLogger(__name__)

BATCH = 500


@dataclass
class TickReport:
    redispatched: int = 0
    rescued: int = 0
    poisoned: int = 0
    expired: int = 0
    holds_resolved: int = 0
    notifications: int = 0
    details: list[str] = field(default_factory=list)

    def total(self) -> int:
        return (
            self.redispatched
            + self.rescued
            + self.poisoned
            + self.expired
            + self.holds_resolved
            + self.notifications
        )


class Maintenance:
    def __init__(
        self,
        settings: Settings,
        db: Database,
        dispatcher: Dispatcher,
        kinds: Mapping[str, JobKind],
        notifications: Notifications,
        *,
        holder: str | None = None,
    ) -> None:
        self.settings = settings
        self.db = db
        self.dispatcher = dispatcher
        self.kinds = dict(kinds)
        self.notifications = notifications
        self.leader = LeaderElector(
            db, ttl=lease_seconds(settings.maintenance_interval_seconds), holder=holder
        )
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- leadership ------------------------------------------------------------------------

    @property
    def is_leader(self) -> bool:
        return self.leader.is_leader

    def elect(self) -> bool:
        """Take or renew the leader's lease; True while we are the leader."""
        return self.leader.elect()

    def _drop_leadership(self) -> None:
        self.leader.resign()

    # -- one tick --------------------------------------------------------------------------

    def tick(self) -> TickReport:
        """Run every maintenance action once (the caller must be the leader)."""
        report = TickReport()
        self._redispatch(report)
        self._rescue(report)
        self._fail_poison(report)
        self._fail_past_deadline(report)
        self._resolve_open_holds(report)
        self._redispatch_notifications(report)
        ledger_audit.after_tick(self.db)  # hourly `worker ledger check`, exported as metrics
        balance_watch.after_tick(self.settings)  # providers' balances, every 5 minutes
        for name in (
            "redispatched",
            "rescued",
            "poisoned",
            "expired",
            "holds_resolved",
            "notifications",
        ):
            n = getattr(report, name)
            if n:
                MAINTENANCE.labels(action=name).inc(n)
        return report

    def _redispatch(self, report: TickReport) -> None:
        with self.db.transaction() as conn:
            due = {str(r["kind"]): int(r["due"]) for r in conn.execute(q.DUE_BY_KIND).fetchall()}
        limits = self._lost_messages(due)
        rows: list[Any] = []
        with self.db.transaction() as conn:
            for kind, limit in limits.items():
                rows += conn.execute(
                    q.REDISPATCH,
                    {"kind": kind, "after": self.settings.redispatch_after_seconds, "limit": limit},
                ).fetchall()
            for r in rows:
                lifecycle.add_event(
                    conn,
                    r["id"],
                    "redispatched",
                    f"no worker took step {r['step']}; wake-up message sent again",
                    code=EventCode.REDISPATCHED,
                )
        for r in rows:
            self._wake(r["kind"], r["step"], r["id"])
        report.redispatched = len(rows)

    def _lost_messages(self, due: Mapping[str, int]) -> dict[str, int]:
        """How many due jobs of each kind may have lost their message: those the kind's queue
        cannot account for. Behind a backlog the messages wait in Redis, and sending them again
        would only lengthen the queue. Redis out of reach: every due job may have lost it."""
        queues = {kind: self.kinds[kind].queue if kind in self.kinds else kind for kind in due}
        broker = self.dispatcher.broker
        if not isinstance(broker, RedisBroker):
            return {kind: min(BATCH, n) for kind, n in due.items() if n > 0}
        try:
            depths = queue_depths(
                broker.client,
                self.settings.redis_namespace,
                sorted(set(queues.values())),
            )
            ready = {d.queue: d.ready for d in depths}
        except redis.RedisError:
            ready = {}
        limits = {kind: min(BATCH, n - ready.get(queues[kind], 0)) for kind, n in due.items()}
        return {kind: n for kind, n in limits.items() if n > 0}

    def _rescue(self, report: TickReport) -> None:
        with self.db.transaction() as conn:
            rows = conn.execute(
                q.RESCUE, {"max_rescues": self.settings.max_rescues, "limit": BATCH}
            ).fetchall()
            for r in rows:
                lifecycle.add_event(
                    conn,
                    r["id"],
                    "rescued",
                    f"lease of {r['lease_owner']} expired during step {r['step']} "
                    f"(rescue {r['rescues']} of {self.settings.max_rescues})",
                    code=EventCode.RESCUED,
                )
        for r in rows:
            self._wake(r["kind"], r["step"], r["id"])
        report.rescued = len(rows)

    def _fail_poison(self, report: TickReport) -> None:
        with self.db.transaction() as conn:
            ids = [
                r["id"]
                for r in conn.execute(
                    q.POISON, {"max_rescues": self.settings.max_rescues, "limit": BATCH}
                ).fetchall()
            ]
        for job_id in ids:
            if self._fail(job_id, "poison", self._poison_error):
                report.poisoned += 1

    def _fail_past_deadline(self, report: TickReport) -> None:
        with self.db.transaction() as conn:
            ids = [r["id"] for r in conn.execute(q.PAST_DEADLINE, {"limit": BATCH}).fetchall()]
        for job_id in ids:
            if self._fail(job_id, "deadline", _deadline_error):
                report.expired += 1

    def _poison_error(self, row: dict[str, Any]) -> ProviderError:
        return ProviderError(
            ErrorClass.INTERNAL,
            f"its worker died or stalled {self.settings.max_rescues + 1} times; "
            "given up as a poison job",
            provider="worker",
            user_message="Something went wrong on our side while making this.",
        )

    def _fail(
        self, job_id: int, why: str, error_of: Callable[[dict[str, Any]], ProviderError]
    ) -> bool:
        """End a job nobody holds as failed (``lifecycle.end``, the one way a job ends)."""
        with self.db.transaction() as conn:
            row = conn.execute(q.JOB_FOR_FAILURE, {"id": job_id}).fetchone()
            if row is None:
                return False
            err = error_of(row)
            kind = self.kinds.get(row["kind"])
            price = int(row["price"])
            text = (
                kind.failure_text(row["payload"], err.user_message, price, self.settings)
                if kind
                else None
            )
            ending = lifecycle.failure(
                err, price=price, notify_text=text, data={"by": f"maintenance/{why}"}
            )
            if not lifecycle.end(conn, job_id, ending):
                return False
        if kind is not None:
            self.notifications.wake(job_id, "failure")
        return True

    def _resolve_open_holds(self, report: TickReport) -> None:
        with self.db.transaction() as conn:
            rows = conn.execute(q.OPEN_HOLDS, {"limit": BATCH}).fetchall()
            for r in rows:
                moved = (
                    ledger.capture(conn, r["id"])
                    if r["status"] == JobStatus.SUCCEEDED
                    else ledger.refund(conn, r["id"])
                )
                if moved:
                    what = "captured" if r["status"] == JobStatus.SUCCEEDED else "refunded"
                    lifecycle.add_event(
                        conn,
                        r["id"],
                        "hold resolved",
                        f"the {r['status']} job's open hold was {what}",
                        code=EventCode.HOLD_RESOLVED,
                    )
                    report.holds_resolved += 1

    def _redispatch_notifications(self, report: TickReport) -> None:
        with self.db.transaction() as conn:
            due = self.notifications.redispatch_due(conn, self.settings.redispatch_after_seconds)
        for job_id, kind in due:
            self.notifications.wake(job_id, kind)
        report.notifications = len(due)

    def _wake(self, kind: str, step: str, job_id: int) -> None:
        known = self.kinds.get(kind)
        queue, actor = (known.queue, known.actor(step)) if known else (kind, f"{kind}.{step}")
        self.dispatcher.send(queue, job_id, actor=actor)

    # -- the loop --------------------------------------------------------------------------

    def run_once(self) -> TickReport | None:
        if not self.elect():
            return None
        try:
            return self.tick()
        except psycopg.Error as exc:
            log.warning("maintenance tick failed: %s", exc)
            return None

    def start(self) -> None:
        def loop() -> None:
            while not self._stop.is_set():
                report = self.run_once()
                if report and report.total():
                    log.info("maintenance: %s", report)
                self._stop.wait(self.settings.maintenance_interval_seconds)
            self._drop_leadership()

        self._thread = threading.Thread(target=loop, name="maintenance", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._drop_leadership()


def _deadline_error(row: dict[str, Any]) -> ProviderError:
    last = ErrorClass(row["error_class"]) if row["error_class"] else None
    return lifecycle.deadline_error(row["created_at"], row["deadline_at"], last, row["error"])
