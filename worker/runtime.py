"""The step runtime: turns a wake-up message into the steps of one job it may run now.

For each message: claim the row (compare-and-set; a failed claim is a no-op), check the
deadline, run the kind's handler for the step (one provider exchange), then write the outcome
and its event in one statement fenced by the claim token, and only after the commit send the
next wake-up. A step that goes on at once (a :class:`~worker.outcomes.Next` due now) runs on
this thread under a fresh claim, up to :data:`MAX_CHAINED_STEPS` steps per message. Failures
are classified exceptions; :mod:`worker.failures` applies the policy table to them. This module
knows nothing about any kind's work: handlers come from the job kinds.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping
from typing import TypeVar

import psycopg

from worker import failures, lifecycle
from worker.context import StepContext
from worker.db_retry import with_db_retry
from worker.errors import NoKeyAvailable, ProviderError
from worker.events import EventCode
from worker.kinds import JobKind
from worker.lease_keeper import LeaseKeeper
from worker.metrics import CLAIM_MISSES, JOBS_FINISHED, STEP_SECONDS, STEPS
from worker.outcomes import Fail, LeaseLost, Next, Outcome, Plan, Succeed
from worker.redaction import redact
from worker.services import Services
from worker.status import JobStatus, StepOutcome

log = logging.getLogger(__name__)

M = TypeVar("M")

#: Steps one wake-up message may run back to back on one thread (see ``Runtime.execute``).
MAX_CHAINED_STEPS = 4


def owner_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident() % 100000}"


class Runtime:
    """Runs steps for every job kind in this process."""

    def __init__(
        self, services: Services, kinds: Mapping[str, JobKind], leases: LeaseKeeper | None = None
    ) -> None:
        self.services = services
        self.settings = services.settings
        self.kinds = dict(kinds)
        self.handlers = {name: kind.handlers() for name, kind in self.kinds.items()}
        self.leases = leases
        #: Set while the process drains: steps then hand over through the broker.
        self.draining = threading.Event()

    # The body of every step actor.
    def execute(self, kind_name: str, step: str, job_id: int) -> StepOutcome:
        """Claim the job at ``step`` and run it. A step that says go on with no delay (a
        :class:`Next` due now) continues on this thread under a fresh claim, up to
        ``MAX_CHAINED_STEPS`` steps per message, instead of sending itself a wake-up."""
        kind = self.kinds[kind_name]

        def claim() -> lifecycle.Claim | None:
            with self.services.db.connection() as conn:
                return lifecycle.claim(conn, job_id, step, owner_id(), self.settings.lease_seconds)

        try:
            c: lifecycle.Claim | None = with_db_retry(claim, seconds=10.0)
        except psycopg.Error as exc:
            log.warning("cannot claim job %s (%s); the dispatcher will resend it", job_id, exc)
            return StepOutcome.DB_ERROR
        if c is None:
            CLAIM_MISSES.labels(kind=kind_name, step=step).inc()
            return StepOutcome.NOOP
        label = StepOutcome.NOOP
        for chained in range(MAX_CHAINED_STEPS):
            label, c = self._step(kind, c, may_chain=chained + 1 < MAX_CHAINED_STEPS)
            if c is None:
                break
        return label

    def _step(
        self, kind: JobKind, c: lifecycle.Claim, *, may_chain: bool
    ) -> tuple[StepOutcome, lifecycle.Claim | None]:
        """Run one claimed step and write its outcome; return the claim of the next step when
        it goes on right here."""
        started = time.monotonic()
        if self.leases:
            self.leases.add(c)
        ctx = StepContext(c, kind, self.services)
        following = None
        try:
            outcome = self._run(ctx)
            if may_chain and isinstance(outcome, Next) and self._chains(c, outcome):
                following = self._advance(ctx, outcome)
                label = StepOutcome.NEXT
            else:
                label = self._apply(ctx, outcome)
            ctx._committed()
        except LeaseLost as exc:
            log.warning("%s; discarding its results", exc)
            label = StepOutcome.LEASE_LOST
        finally:
            self._mark_sent(ctx)
            if self.leases:
                self.leases.remove(c)
        STEPS.labels(kind=kind.name, step=c.step, outcome=str(label)).inc()
        STEP_SECONDS.labels(kind=kind.name, step=c.step).observe(time.monotonic() - started)
        return label, following

    def _chains(self, c: lifecycle.Claim, outcome: Next) -> bool:
        """Go on here only with a next step due now, and not while the process drains (then the
        wake-up goes through the broker, to whichever worker is still running)."""
        return self._clamp(c, outcome.delay) <= 0 and not self.draining.is_set()

    def _run(self, ctx: StepContext) -> Outcome | Plan:
        c = ctx.claim
        if c.db_now >= c.deadline_at:
            return Fail(
                lifecycle.deadline_error(c.created_at, c.deadline_at, c.error_class, c.error)
            )
        try:
            return self.handlers[c.kind][c.step](ctx)
        except ProviderError as err:
            return failures.on_error(ctx, err)
        except NoKeyAvailable as exc:
            return failures.on_no_key(ctx, exc)
        except LeaseLost:
            raise
        except Exception as exc:  # a bug on our side: INTERNAL, retried like TEMPORARY
            log.exception("job %s step %s raised", c.job_id, c.step)
            return failures.on_error(ctx, failures.bug(exc))

    # -- writing the outcome ---------------------------------------------------------------

    def _apply(self, ctx: StepContext, outcome: Outcome | Plan) -> StepOutcome:
        if isinstance(outcome, Succeed):
            return self._succeed(ctx, outcome)
        if isinstance(outcome, Fail):
            return self._fail(ctx, outcome)
        if not isinstance(outcome, Plan):
            outcome = Plan.of(outcome, ctx.claim.attempts)
        return self._reschedule(ctx, outcome)

    def _reschedule(self, ctx: StepContext, plan: Plan) -> StepOutcome:
        c = ctx.claim
        step = plan.step or c.step
        err = plan.error
        delay = self._clamp(c, plan.delay)
        change = _redacted(plan.change)

        def write() -> lifecycle.Rescheduled | None:
            with self.services.db.connection() as conn:  # one statement: the move and its event
                return lifecycle.reschedule(
                    conn,
                    c,
                    step=step,
                    delay=delay,
                    attempts=plan.attempts,
                    change=change,
                    error_class=err.error_class if err else None,
                    error=err.message if err else None,
                )

        done = self._write_move(ctx, write, change)
        self.services.dispatcher.send(
            ctx.kind.queue, c.job_id, actor=ctx.kind.actor(step), delay_ms=done.delay_ms
        )
        return plan.outcome

    def _advance(self, ctx: StepContext, outcome: Next) -> lifecycle.Claim:
        c = ctx.claim
        change = _redacted(outcome.change)

        def write() -> lifecycle.Claim | None:
            with self.services.db.connection() as conn:  # one statement: move, event, claim
                return lifecycle.advance(
                    conn,
                    c,
                    step=outcome.step,
                    lease_seconds=self.settings.lease_seconds,
                    change=change,
                )

        return self._write_move(ctx, write, change)

    def _write_move(
        self, ctx: StepContext, write: Callable[[], M | None], change: lifecycle.Change
    ) -> M:
        """Run a fenced move; LeaseLost if the claim was lost. A move that carried a new
        provider task and could not be written leaves an "orphaned task" event behind."""
        c = ctx.claim
        try:
            done = with_db_retry(write)
        except Exception:
            if change.provider_task_id:
                self._orphaned(ctx, change.provider_task_id, change.key_name)
            raise
        if done is None:
            if change.provider_task_id:
                self._orphaned(ctx, change.provider_task_id, change.key_name)
            raise LeaseLost(f"job {c.job_id} was taken over before {c.step} could finish")
        return done

    def _orphaned(self, ctx: StepContext, task_id: str, key_name: str | None) -> None:
        """Put a task the job's row does not hold on its timeline (best effort: the write that
        failed may have failed because the database is gone)."""
        try:
            with self.services.db.connection() as conn:
                held = lifecycle.task_of(conn, ctx.job_id)
                if held == task_id:  # the move did commit; only its answer was lost
                    return
                lifecycle.add_event(
                    conn,
                    ctx.job_id,
                    "orphaned task",
                    f"provider task {task_id} (key {key_name or '-'}) was created but the job "
                    "was taken over before it could be recorded",
                    code=EventCode.ORPHANED_TASK,
                )
        except psycopg.Error as exc:
            log.error(
                "job %s: provider task %s (key %s) was created but not recorded, "
                "and neither was this (%s)",
                ctx.job_id,
                task_id,
                key_name,
                exc,
            )

    def _mark_sent(self, ctx: StepContext) -> None:
        """Mark the messages the step sent that its last write did not (best effort: a row left
        ``sending`` means "may have been sent", so it is never sent twice either way)."""
        while ctx.unmarked:
            mark = ctx.unmarked.pop(0)
            try:
                self.services.notifications.mark_sent(ctx.job_id, mark)
            except psycopg.Error as exc:
                log.warning(
                    "job %s: the %s message was sent but could not be marked (%s); it stays "
                    "'sending' and is not sent again",
                    ctx.job_id,
                    mark.kind,
                    exc,
                )

    def _succeed(self, ctx: StepContext, outcome: Succeed) -> StepOutcome:
        c = ctx.claim
        # The message the step just sent (the result) is marked in the same statement.
        sent = ctx.unmarked[0] if ctx.unmarked else None
        ending = lifecycle.Ending(
            JobStatus.SUCCEEDED,
            event="succeeded",
            code=EventCode.SUCCEEDED,
            detail=redact(outcome.detail),
            state=outcome.state,
            result=outcome.result,
        )
        wake = self.services.notifications.wake  # the request's summary, if this end queues it

        def write() -> bool:
            with self.services.db.connection() as conn:  # one statement (end_job)
                return lifecycle.end(conn, c.job_id, ending, claim=c, sent=sent, wake=wake)

        done = with_db_retry(write)
        if sent is not None:
            ctx.unmarked.remove(sent)  # committed, whether or not the claim still held
        if not done:
            raise LeaseLost(f"job {c.job_id} was taken over before it could succeed")
        JOBS_FINISHED.labels(kind=ctx.kind.name, status="succeeded", error_class="").inc()
        return StepOutcome.SUCCEEDED

    def _fail(self, ctx: StepContext, outcome: Fail) -> StepOutcome:
        c = ctx.claim
        err = outcome.error
        ending = lifecycle.failure(
            err,
            price=c.price,
            notify_text=ctx.kind.failure_text(c.payload, err.user_message, c.price, ctx.settings),
            state=outcome.state,
        )
        wake = self.services.notifications.wake  # the request's summary, if this end queues it

        def write() -> bool:
            with self.services.db.connection() as conn:  # one statement (end_job)
                return lifecycle.end(conn, c.job_id, ending, claim=c, wake=wake)

        if not with_db_retry(write):
            raise LeaseLost(f"job {c.job_id} was taken over before it could fail")
        JOBS_FINISHED.labels(
            kind=ctx.kind.name, status="failed", error_class=str(err.error_class)
        ).inc()
        self.services.notifications.wake(c.job_id, "failure")
        return StepOutcome.FAILED

    def _clamp(self, c: lifecycle.Claim, delay: float) -> float:
        """Never sleep past the deadline: wake just after it, to fail the job cleanly."""
        until_deadline = (c.deadline_at - c.db_now).total_seconds() + 0.5
        return max(0.0, min(delay, until_deadline))


def _redacted(change: lifecycle.Change) -> lifecycle.Change:
    """The change with its event detail free of secrets (it goes on the timeline)."""
    return dataclasses.replace(change, detail=redact(change.detail))
