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
from collections.abc import Mapping
from dataclasses import dataclass, field

import psycopg

from worker import ledger, lifecycle
from worker.config import Settings
from worker.db import Database
from worker.dispatch import Dispatcher
from worker.errors import ErrorClass
from worker.kinds import JobKind
from worker.leader import LeaderElector, lease_seconds
from worker.metrics import MAINTENANCE
from worker.notifications import Notifications
from worker.sql import maintenance as q

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
            rows = conn.execute(
                q.REDISPATCH, {"after": self.settings.redispatch_after_seconds, "limit": BATCH}
            ).fetchall()
            for r in rows:
                lifecycle.add_event(
                    conn,
                    r["id"],
                    "redispatched",
                    f"no worker took step {r['step']}; wake-up message sent again",
                )
        for r in rows:
            self._wake(r["kind"], r["step"], r["id"])
        report.redispatched = len(rows)

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
            if self._fail(
                job_id,
                ErrorClass.INTERNAL,
                f"its worker died or stalled {self.settings.max_rescues + 1} times; "
                "given up as a poison job",
                "Something went wrong on our side while making this.",
                event="poison",
            ):
                report.poisoned += 1

    def _fail_past_deadline(self, report: TickReport) -> None:
        with self.db.transaction() as conn:
            ids = [r["id"] for r in conn.execute(q.PAST_DEADLINE, {"limit": BATCH}).fetchall()]
        for job_id in ids:
            if self._fail(
                job_id,
                None,
                "took too long: not finished within its deadline",
                "This took too long to make, so we stopped.",
                event="deadline",
            ):
                report.expired += 1

    def _fail(
        self,
        job_id: int,
        error_class: ErrorClass | None,
        error: str,
        user_error: str,
        *,
        event: str,
    ) -> bool:
        with self.db.transaction() as conn:
            row = conn.execute(q.JOB_FOR_FAILURE, {"id": job_id}).fetchone()
            if row is None:
                return False
            cls = error_class or (
                ErrorClass(row["error_class"]) if row["error_class"] else ErrorClass.TEMPORARY
            )
            if row["error"] and error_class is None:
                error = f"{error} (last error: {row['error_class']}: {row['error']})"
            if not lifecycle.fail_unclaimed(
                conn, job_id, error_class=cls, error=error, user_error=user_error
            ):
                return False
            refunded = f"; {row['price']} credit(s) refunded" if row["price"] else ""
            lifecycle.add_event(
                conn, job_id, "failed", f"{cls}: {error}{refunded}", {"by": f"maintenance/{event}"}
            )
            kind = self.kinds.get(row["kind"])
            if kind is not None:
                Notifications.enqueue(
                    conn,
                    job_id=job_id,
                    kind="failure",
                    chat_id=int(row["chat_id"]),
                    text=kind.failure_text(row["payload"], user_error, int(row["price"])),
                )
        self.notifications.wake(job_id, "failure")
        return True

    def _resolve_open_holds(self, report: TickReport) -> None:
        with self.db.transaction() as conn:
            rows = conn.execute(q.OPEN_HOLDS, {"limit": BATCH}).fetchall()
            for r in rows:
                moved = (
                    ledger.capture(conn, r["id"])
                    if r["status"] == "succeeded"
                    else ledger.refund(conn, r["id"])
                )
                if moved:
                    what = "captured" if r["status"] == "succeeded" else "refunded"
                    lifecycle.add_event(
                        conn,
                        r["id"],
                        "hold resolved",
                        f"the {r['status']} job's open hold was {what}",
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
