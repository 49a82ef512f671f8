"""The step runtime: turns a wake-up message into at most one step of one job.

For each message: claim the row (compare-and-set; a failed claim is a no-op), check the
deadline, run the kind's handler for the step (one provider exchange), then write the outcome
and its event in one transaction fenced by the claim token, and only after the commit send the
next wake-up. Failures are classified exceptions; :func:`worker.policy.decide` says what they do.
This module knows nothing about videos: handlers come from the job kinds.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol, TypeVar

import psycopg
from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_random_exponential

from worker import lifecycle
from worker.alerts import alert
from worker.config import ApiKey, Settings
from worker.db import Database
from worker.dispatch import Dispatcher
from worker.errors import ErrorClass, NoKeyAvailable, ProviderError
from worker.keys import KeyPool, UnknownKey
from worker.kinds import JobKind, keys_for
from worker.metrics import CLAIM_MISSES, JOBS_FINISHED, PROVIDER_ERRORS, STEP_SECONDS, STEPS
from worker.notifications import Notifications
from worker.policy import Action, Backoff, decide
from worker.redaction import redact
from worker.sql import lifecycle as lifecycle_sql
from worker.storage import Storage
from worker.telegram import TelegramNotifier

log = logging.getLogger(__name__)

T = TypeVar("T")
M = TypeVar("M")

#: How long a job with no usable key (all quarantined) waits before looking again.
NO_KEY_RECHECK_SECONDS = 60.0

#: Steps one wake-up message may run back to back on one thread (see ``Runtime.execute``).
MAX_CHAINED_STEPS = 4


# --- what a handler returns -------------------------------------------------------------------


@dataclass(frozen=True)
class Next:
    """Go on to ``step`` after ``delay`` seconds (attempts start afresh).

    ``provider_task_id`` and ``key_name`` name a task this step just created at a provider:
    they are committed in the same fenced statement as the move, so the task is on the row the
    moment the step's outcome is, and a later run of the step finds it instead of creating
    another. If that write fails (the job was taken over), an "orphaned task" event records the
    task on the job's timeline."""

    step: str
    event: str
    detail: str = ""
    delay: float = 0.0
    state: dict[str, Any] = field(default_factory=dict)
    clear_task: bool = False
    provider_task_id: str | None = None
    key_name: str | None = None


@dataclass(frozen=True)
class Again:
    """Run this step again after ``delay`` seconds, consuming no attempt (polling)."""

    delay: float
    event: str | None = None
    detail: str = ""
    state: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Succeed:
    """The job is done: capture the hold."""

    result: str | None
    detail: str = ""
    state: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Fail:
    """The job failed for good: refund, tell the user."""

    error: ProviderError
    state: dict[str, Any] = field(default_factory=dict)


Outcome = Next | Again | Succeed | Fail


class LeaseLost(Exception):
    """The claim was taken over (rescued) while the step ran; its results are discarded."""


class StepHandler(Protocol):
    def __call__(self, ctx: StepContext, /) -> Outcome: ...


# --- per-process services ---------------------------------------------------------------------


class Services:
    """Everything a step may use, built once per worker process."""

    def __init__(
        self,
        settings: Settings,
        db: Database,
        keys: KeyPool,
        dispatcher: Dispatcher,
        telegram: TelegramNotifier | None,
    ) -> None:
        self.settings = settings
        self.db = db
        self.keys = keys
        self.dispatcher = dispatcher
        self.telegram = telegram
        self.storage = Storage(settings.storage_dir)
        self.backoff = Backoff(settings.backoff_base_seconds, settings.backoff_max_seconds)
        self.notifications = Notifications(db, telegram, dispatcher, self.backoff)
        self._extensions: dict[str, Any] = {}
        self._lock = threading.Lock()

    def extension(self, name: str, factory: Callable[[Settings], T]) -> T:
        """A per-process object a job kind needs (e.g. its provider client), built once."""
        with self._lock:
            if name not in self._extensions:
                self._extensions[name] = factory(self.settings)
            return self._extensions[name]  # type: ignore[no-any-return]

    def close(self) -> None:
        for ext in self._extensions.values():
            close = getattr(ext, "close", None)
            if callable(close):
                close()
        if self.telegram is not None:
            self.telegram.close()
        self.storage.close()


# --- what a handler sees ----------------------------------------------------------------------


class StepContext:
    def __init__(self, claim: lifecycle.Claim, kind: JobKind, services: Services) -> None:
        self.claim = claim
        self.kind = kind
        self.services = services
        self.settings = services.settings
        self._started = time.monotonic()
        #: Messages this step sent whose rows still say ``sending``: the runtime marks them in
        #: the step's terminal call, or on their own once the step is over.
        self.unmarked: list[lifecycle.SentMark] = []
        self._after_commit: list[Callable[[], None]] = []

    @property
    def job_id(self) -> int:
        return self.claim.job_id

    @property
    def payload(self) -> dict[str, Any]:
        return self.claim.payload

    @property
    def state(self) -> dict[str, Any]:
        return self.claim.state

    @property
    def row(self) -> dict[str, Any]:
        return self.claim.row

    @property
    def after_rescue(self) -> bool:
        """This step's previous run was cut off: its worker died or stalled past its lease and
        the maintenance loop took the job back. Whatever that run did outside the database
        (a paid request, say) is unknown; a step whose side effect must not happen twice checks
        this before repeating it."""
        return self.claim.follows_rescue

    def now(self) -> datetime:
        """The database's clock, advanced by the time this step has run."""
        return self.claim.db_now + timedelta(seconds=time.monotonic() - self._started)

    def seconds_since(self, moment: datetime | str | float | None) -> float:
        if moment is None:
            return 0.0
        if isinstance(moment, int | float):
            return max(0.0, self.now().timestamp() - float(moment))
        if isinstance(moment, str):
            moment = datetime.fromisoformat(moment)
        return max(0.0, (self.now() - moment).total_seconds())

    def record(
        self,
        *,
        provider_task_id: str | None = None,
        key_name: str | None = None,
        state: dict[str, Any] | None = None,
        event: str | None = None,
        detail: str = "",
    ) -> None:
        """Commit what the step learned now, keeping the lease (fenced). Raises LeaseLost."""

        def write() -> bool:
            with self.services.db.connection() as conn:  # one statement: the write and its event
                return lifecycle.record(
                    conn,
                    self.claim,
                    provider_task_id=provider_task_id,
                    key_name=key_name,
                    state=state,
                    event=event,
                    detail=detail,
                )

        if not with_db_retry(write):
            raise LeaseLost(f"job {self.job_id} was taken over while {self.claim.step} ran")

    def event(self, event: str, detail: str = "", data: dict[str, Any] | None = None) -> None:
        """Append to the job's timeline outside the fence (for facts that stand regardless)."""
        with self.services.db.connection() as conn:
            lifecycle.add_event(conn, self.job_id, event, detail, data)

    def notify(self, kind: str, text: str) -> bool:
        """Queue a message to the user (at most one per job and kind)."""
        with self.services.db.connection() as conn:
            queued = Notifications.enqueue(
                conn, job_id=self.job_id, kind=kind, chat_id=int(self.row["chat_id"]), text=text
            )
        if queued:
            self.services.notifications.wake(self.job_id, kind)
        return queued

    def send_once(
        self,
        kind: str,
        text: str,
        send: Callable[[TelegramNotifier], int],
        *,
        state: dict[str, Any] | None = None,
        event: str | None = None,
        detail: str = "",
    ) -> str:
        """Send the user a message of ``kind`` at most once per job, during this step.

        The message is claimed under the job's claim token, in one statement with ``state`` and
        ``event`` (what the step learned before sending, e.g. where the file is stored); if the
        job was taken over, nothing is written or sent and LeaseLost is raised. Returns what
        happened, for the timeline. A blocked user or a missing chat is final for the message
        only; rate limits and outages raise, and the policy decides."""
        notes = self.services.notifications
        with self.services.db.connection() as conn:
            held, row = notes.claim(
                conn,
                self.claim._fence(),
                kind=kind,
                chat_id=int(self.row["chat_id"]),
                text=text,
                state=state,
                event=event,
                detail=detail,
            )
            existing = None if row or not held else notes.existing(conn, self.job_id, kind)
        if not held:
            raise LeaseLost(f"job {self.job_id} was taken over before its {kind} message was sent")
        if row is None:
            status = existing["status"] if existing else "unknown"
            if status == "sending":
                return f"an earlier attempt may have sent the {kind} message; not sent again"
            return f"the {kind} message is {status}; not sent again"
        result = notes.send_claimed(row, send, defer_sent=True)
        if result.status == "sent":
            self.unmarked.append(lifecycle.SentMark(kind, result.message_id, result.detail))
        if result.status == "retry" and result.error is not None:
            raise result.error
        return f"{kind} sent to the user" if result.status == "sent" else result.detail

    def after_commit(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` once the step's outcome is committed (not if the job was taken over or
        the write failed): for bookkeeping that must not delay, or fail, the outcome's write."""
        self._after_commit.append(fn)

    def _committed(self) -> None:
        callbacks, self._after_commit = self._after_commit, []
        for fn in callbacks:
            try:
                fn()
            except Exception:
                log.exception("job %s: an after-commit callback failed", self.job_id)

    def acquire_key(self, provider: str, purpose: str = "default") -> ApiKey:
        return self.services.keys.acquire(provider, purpose)

    def acquire_named_key(self, provider: str, name: str, purpose: str = "default") -> ApiKey:
        try:
            return self.services.keys.acquire_named(provider, name, purpose)
        except UnknownKey:
            raise ProviderError(
                ErrorClass.INTERNAL,
                f"the {provider} key {name!r} that created this task is no longer configured",
                provider=provider,
                key_name=name,
            ) from None


# --- the runtime ------------------------------------------------------------------------------


def with_db_retry(fn: Callable[[], T], seconds: float = 30.0) -> T:
    """Retry a database write through a short outage (PostgreSQL restart, failover).

    A step that already created a provider task must not lose the task id to a blip. The
    first try is a plain call: building the retry machinery costs more than most writes."""
    try:
        return fn()
    except psycopg.OperationalError as exc:
        log.warning("database write failed (%s); retrying for up to %.0f s", exc, seconds)
    for attempt in Retrying(
        retry=retry_if_exception_type(psycopg.OperationalError),
        stop=stop_after_delay(seconds),
        wait=wait_random_exponential(multiplier=0.2, max=3.0),
        reraise=True,
    ):
        with attempt:
            return fn()
    raise AssertionError("unreachable")  # pragma: no cover


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
    def execute(self, kind_name: str, step: str, job_id: int) -> str:
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
            return "db-error"
        if c is None:
            CLAIM_MISSES.labels(kind=kind_name, step=step).inc()
            return "noop"
        label = "noop"
        for chained in range(MAX_CHAINED_STEPS):
            label, c = self._step(kind, c, may_chain=chained + 1 < MAX_CHAINED_STEPS)
            if c is None:
                break
        return label

    def _step(
        self, kind: JobKind, c: lifecycle.Claim, *, may_chain: bool
    ) -> tuple[str, lifecycle.Claim | None]:
        """Run one claimed step and write its outcome; return the claim of the next step when
        it goes on right here."""
        started = time.monotonic()
        if self.leases:
            self.leases.add(c)
        ctx = StepContext(c, kind, self.services)
        following = None
        try:
            outcome = self._run(ctx)
            if may_chain and self._chains(c, outcome):
                assert isinstance(outcome, Next)
                following = self._advance(ctx, outcome)
                label = "next"
            else:
                label = self._apply(ctx, outcome)
            ctx._committed()
        except LeaseLost as exc:
            log.warning("%s; discarding its results", exc)
            label = "lease-lost"
        finally:
            self._mark_sent(ctx)
            if self.leases:
                self.leases.remove(c)
        STEPS.labels(kind=kind.name, step=c.step, outcome=label).inc()
        STEP_SECONDS.labels(kind=kind.name, step=c.step).observe(time.monotonic() - started)
        return label, following

    def _chains(self, c: lifecycle.Claim, outcome: Outcome | _Retry) -> bool:
        """Go on here only with a next step due now, and not while the process drains (then the
        wake-up goes through the broker, to whichever worker is still running)."""
        return (
            isinstance(outcome, Next)
            and self._clamp(c, outcome.delay) <= 0
            and not self.draining.is_set()
        )

    def _run(self, ctx: StepContext) -> Outcome | _Retry:
        c = ctx.claim
        if c.db_now >= c.deadline_at:
            return Fail(self._deadline_error(c))
        try:
            return self.handlers[c.kind][c.step](ctx)
        except ProviderError as err:
            return self._on_error(ctx, err)
        except NoKeyAvailable as exc:
            return self._on_no_key(ctx, exc)
        except LeaseLost:
            raise
        except Exception as exc:  # a bug on our side: INTERNAL, retried like TEMPORARY
            log.exception("job %s step %s raised", c.job_id, c.step)
            bug = ProviderError(
                ErrorClass.INTERNAL, f"{type(exc).__name__}: {exc}", provider="worker"
            )
            return self._on_error(ctx, bug)

    def _deadline_error(self, c: lifecycle.Claim) -> ProviderError:
        minutes = (c.deadline_at - c.row["created_at"]).total_seconds() / 60
        last = f" (last error: {c.row['error_class']}: {c.row['error']})" if c.row["error"] else ""
        return ProviderError(
            ErrorClass(c.row["error_class"]) if c.row["error_class"] else ErrorClass.TEMPORARY,
            f"took too long: not finished within its deadline of {minutes:.0f} min{last}",
            provider="worker",
            user_message="This took too long to make, so we stopped.",
        )

    def _on_error(self, ctx: StepContext, err: ProviderError) -> Fail | _Retry:
        """Apply the policy table to a classified failure."""
        c = ctx.claim
        PROVIDER_ERRORS.labels(provider=err.provider, error_class=str(err.error_class)).inc()
        if err.key_name and err.provider in self.services.keys.providers():
            key = self._key(err.provider, err.key_name)
            if key is not None:
                self.services.keys.report_failure(key, err, backoff=self.services.backoff.delay(1))
        d = decide(
            err.error_class,
            attempts=c.attempts,
            max_attempts=self.settings.max_attempts,
            backoff=self.services.backoff,
            retry_after=err.retry_after,
        )
        if d.alert:
            alert(
                f"{err.error_class} from {err.provider}",
                str(err),
                job=c.job_id,
                step=c.step,
                key=err.key_name or "-",
            )
        if d.action is Action.FAIL:
            if d.attempts > c.attempts:  # retries exhausted
                err = _exhausted(err, d.attempts)
            return Fail(err)
        if d.action is Action.RETRY:
            detail = f"{err}; retrying in {d.delay:.1f} s ({d.reason})"
            return _Retry(d.delay, d.attempts, err, "retry", detail)
        if err.error_class in (ErrorClass.BILLING, ErrorClass.AUTH):
            detail = f"{err}; key {err.key_name} quarantined, trying another key"
        else:
            detail = f"{err}; waiting {d.delay:.1f} s, {d.reason}"
        return _Retry(d.delay, c.attempts, err, "wait", detail)

    def _on_no_key(self, ctx: StepContext, exc: NoKeyAvailable) -> Fail | _Retry:
        c = ctx.claim
        if not self.services.keys.has_keys(exc.provider):
            alert("no keys configured", exc.reason, provider=exc.provider, job=c.job_id)
            return Fail(
                ProviderError(
                    ErrorClass.UNAVAILABLE,
                    exc.reason,
                    provider=exc.provider,
                    user_message="This service is not available right now.",
                )
            )
        if exc.retry_at is not None:
            delay = max(0.05, exc.retry_at - time.time())
        else:
            delay = NO_KEY_RECHECK_SECONDS
        # Keep the job's last error (the reason it is waiting) so a deadline failure names it.
        quiet = ctx.state.get("waiting_for") == exc.reason
        return _Retry(
            delay,
            c.attempts,
            None,
            "waiting for a key",
            f"{exc}; looking again in {delay:.1f} s",
            quiet=quiet,
            state={"waiting_for": exc.reason},
        )

    def _key(self, provider: str, name: str) -> ApiKey | None:
        return next((k for k in keys_for(self.settings, provider) if k.name == name), None)

    # -- writing the outcome ---------------------------------------------------------------

    def _apply(self, ctx: StepContext, outcome: Outcome | _Retry) -> str:
        if isinstance(outcome, Succeed):
            return self._succeed(ctx, outcome)
        if isinstance(outcome, Fail):
            return self._fail(ctx, outcome)
        c = ctx.claim
        if isinstance(outcome, Next):
            plan = _Retry(
                outcome.delay,
                0,
                None,
                outcome.event,
                outcome.detail,
                state=outcome.state,
                step=outcome.step,
                clear_task=outcome.clear_task,
                provider_task_id=outcome.provider_task_id,
                key_name=outcome.key_name,
                label="next",
            )
        elif isinstance(outcome, Again):
            plan = _Retry(
                outcome.delay,
                c.attempts,
                None,
                outcome.event or "",
                outcome.detail,
                quiet=outcome.event is None,
                state=outcome.state,
                label="again",
            )
        else:
            plan = outcome
        return self._reschedule(ctx, plan)

    def _reschedule(self, ctx: StepContext, plan: _Retry) -> str:
        c = ctx.claim
        step = plan.step or c.step
        err = plan.error
        delay = self._clamp(c, plan.delay)

        def write() -> lifecycle.Rescheduled | None:
            with self.services.db.connection() as conn:  # one statement: the move and its event
                return lifecycle.reschedule(
                    conn,
                    c,
                    step=step,
                    delay=delay,
                    attempts=plan.attempts,
                    state=plan.state,
                    provider_task_id=plan.provider_task_id,
                    key_name=plan.key_name,
                    clear_task=plan.clear_task,
                    error_class=err.error_class if err else None,
                    error=err.message if err else None,
                    event=plan.event if plan.event and not plan.quiet else None,
                    detail=redact(plan.detail),
                )

        done = self._write_move(ctx, write, plan.provider_task_id, plan.key_name)
        self.services.dispatcher.send(
            ctx.kind.queue, c.job_id, actor=ctx.kind.actor(step), delay_ms=done.delay_ms
        )
        return plan.label or plan.event

    def _advance(self, ctx: StepContext, outcome: Next) -> lifecycle.Claim:
        c = ctx.claim

        def write() -> lifecycle.Claim | None:
            with self.services.db.connection() as conn:  # one statement: move, event, claim
                return lifecycle.advance(
                    conn,
                    c,
                    step=outcome.step,
                    owner=c.owner,
                    lease_seconds=self.settings.lease_seconds,
                    state=outcome.state,
                    provider_task_id=outcome.provider_task_id,
                    key_name=outcome.key_name,
                    clear_task=outcome.clear_task,
                    event=outcome.event,
                    detail=redact(outcome.detail),
                )

        return self._write_move(ctx, write, outcome.provider_task_id, outcome.key_name)

    def _write_move(
        self,
        ctx: StepContext,
        write: Callable[[], M | None],
        task_id: str | None,
        key_name: str | None,
    ) -> M:
        """Run a fenced move; LeaseLost if the claim was lost. A move that carried a new
        provider task and could not be written leaves an "orphaned task" event behind."""
        c = ctx.claim
        try:
            done = with_db_retry(write)
        except Exception:
            if task_id:
                self._orphaned(ctx, task_id, key_name)
            raise
        if done is None:
            if task_id:
                self._orphaned(ctx, task_id, key_name)
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

    def _succeed(self, ctx: StepContext, outcome: Succeed) -> str:
        c = ctx.claim
        # The message the step just sent (the result) is marked in the same statement.
        sent = ctx.unmarked[0] if ctx.unmarked else None

        def write() -> bool:
            with self.services.db.connection() as conn:  # one statement (finish_job)
                return lifecycle.succeed(
                    conn,
                    c,
                    result=outcome.result,
                    state=outcome.state,
                    event="succeeded",
                    detail=redact(outcome.detail),
                    sent=sent,
                )

        done = with_db_retry(write)
        if sent is not None:
            ctx.unmarked.remove(sent)  # committed, whether or not the claim still held
        if not done:
            raise LeaseLost(f"job {c.job_id} was taken over before it could succeed")
        JOBS_FINISHED.labels(kind=ctx.kind.name, status="succeeded", error_class="").inc()
        return "succeeded"

    def _fail(self, ctx: StepContext, outcome: Fail) -> str:
        c = ctx.claim
        err = outcome.error
        price = int(c.row["price"])
        refunded = f"; {price} credit(s) refunded" if price else ""

        def write() -> bool:
            with self.services.db.connection() as conn:  # one statement (finish_job)
                return lifecycle.fail(
                    conn,
                    c,
                    error_class=err.error_class,
                    error=err.message,
                    user_error=err.user_message,
                    state=outcome.state,
                    event="failed",
                    detail=redact(f"{err}{refunded}"),
                    notify_kind="failure",
                    notify_text=ctx.kind.failure_text(c.payload, err.user_message, price),
                )

        if not with_db_retry(write):
            raise LeaseLost(f"job {c.job_id} was taken over before it could fail")
        JOBS_FINISHED.labels(
            kind=ctx.kind.name, status="failed", error_class=str(err.error_class)
        ).inc()
        self.services.notifications.wake(c.job_id, "failure")
        return "failed"

    def _clamp(self, c: lifecycle.Claim, delay: float) -> float:
        """Never sleep past the deadline: wake just after it, to fail the job cleanly."""
        until_deadline = (c.deadline_at - c.db_now).total_seconds() + 0.5
        return max(0.0, min(delay, until_deadline))


@dataclass(frozen=True)
class _Retry:
    """The policy's answer: run the same step again after ``delay`` with ``attempts`` used."""

    delay: float
    attempts: int
    error: ProviderError | None
    event: str
    detail: str
    quiet: bool = False
    state: dict[str, Any] = field(default_factory=dict)
    step: str | None = None  # another step (a Next), or None for the same one
    clear_task: bool = False
    provider_task_id: str | None = None
    key_name: str | None = None
    label: str | None = None


def _exhausted(err: ProviderError, attempts: int) -> ProviderError:
    return ProviderError(
        err.error_class,
        f"gave up after {attempts} attempts: {err.message}",
        provider=err.provider,
        status=err.status,
        code=err.code,
        user_message=err.user_message,
        retry_after=err.retry_after,
        key_name=err.key_name,
    )


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
