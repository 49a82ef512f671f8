"""Moving a job through its lifecycle: claim, record, reschedule, advance, end.

``claim`` is the compare-and-set that turns a wake-up message into the right to run one step:
it bumps the job's ``claims`` counter, which is the fencing token. Every later write of that step
is conditional on the token, so a worker that stalled past its lease and wakes up after another
worker took the job over changes nothing. :func:`end` is the only way any job reaches a
terminal state, with or without a claim: it moves the money in the same statement (success
captures the hold, failure and cancellation refund it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from worker import ledger
from worker.db import Connection
from worker.errors import ErrorClass, ProviderError
from worker.events import EventCode
from worker.redaction import redact
from worker.sql import jobs as jobs_q
from worker.sql import lifecycle as q
from worker.status import TERMINAL, JobStatus

#: A message may arrive this much before the job's next run time and still be honoured
#: (clock skew between hosts; Dramatiq's delay is measured on the sender's clock).
EARLY_TOLERANCE_SECONDS = 1.0


@dataclass(frozen=True)
class Claim:
    """The right to run one step of one job, until its lease expires: the claimed row's columns
    a step reads, typed."""

    job_id: int
    token: int  # the fencing token (the row's ``claims``)
    owner: str
    step: str
    attempts: int
    kind: str
    user_id: int
    chat_id: int
    price: int
    payload: dict[str, Any] = field(repr=False)
    state: dict[str, Any] = field(repr=False)
    provider_task_id: str | None
    key_name: str | None
    error_class: ErrorClass | None
    error: str | None
    created_at: datetime
    deadline_at: datetime
    db_now: datetime  # the database's clock when the claim was made
    rescued_claim: int | None = None

    @classmethod
    def of(cls, row: dict[str, Any], owner: str, step: str) -> Claim:
        return cls(
            job_id=int(row["id"]),
            token=int(row["claims"]),
            owner=owner,
            step=step,
            attempts=int(row["attempts"]),
            kind=str(row["kind"]),
            user_id=int(row["user_id"]),
            chat_id=int(row["chat_id"]),
            price=int(row["price"]),
            payload=dict(row["payload"]),
            state=dict(row["state"]),
            provider_task_id=row["provider_task_id"],
            key_name=row["key_name"],
            error_class=ErrorClass(row["error_class"]) if row["error_class"] else None,
            error=row["error"],
            created_at=row["created_at"],
            deadline_at=row["deadline_at"],
            db_now=row["db_now"],
            rescued_claim=row.get("rescued_claim"),
        )

    @property
    def follows_rescue(self) -> bool:
        """The claim before this one ran this same step and was taken back by a rescue: its
        worker died or stalled, and what that run did outside the database is unknown."""
        return self.rescued_claim == self.token - 1

    def _fence(self) -> dict[str, Any]:
        return {"id": self.job_id, "claims": self.token}


@dataclass(frozen=True)
class Change:
    """What a fenced write puts on the job's row besides moving it, and the timeline event that
    says so: one value from a step's outcome through the runtime to the SQL."""

    state: dict[str, Any] = field(default_factory=dict)
    provider_task_id: str | None = None  # a task the step created at a provider
    key_name: str | None = None  # the key that created it
    clear_task: bool = False  # forget the job's task (a new one will be created)
    event: str | None = None  # appended to the timeline, if not None
    detail: str = ""
    code: EventCode | None = None  # the event's code; None: derived from its words

    def params(self) -> dict[str, Any]:
        return {
            "state": Jsonb(self.state),
            "provider_task_id": self.provider_task_id,
            "key_name": self.key_name,
            "clear_task": self.clear_task,
            "event": self.event,
            "detail": self.detail,
            "code": str(self.code) if self.code else None,
        }


def add_event(
    conn: Connection,
    job_id: int,
    event: str,
    detail: str = "",
    data: dict[str, Any] | None = None,
    *,
    code: EventCode | None = None,
) -> None:
    """Append ``event`` to the job's timeline; ``code`` None: derived from its words."""
    conn.execute(
        jobs_q.INSERT_EVENT,
        {
            "job_id": job_id,
            "code": str(code) if code else None,
            "event": event,
            "detail": detail,
            "data": Jsonb(data or {}),
        },
    )


def task_of(conn: Connection, job_id: int) -> str | None:
    """The provider task the job's row holds now, if any."""
    row = conn.execute(q.TASK_OF, {"id": job_id}).fetchone()
    return row["provider_task_id"] if row else None


def claim(
    conn: Connection, job_id: int, step: str, owner: str, lease_seconds: float
) -> Claim | None:
    """Take the job for ``step`` if it is queued there and due. None: not ours, do nothing."""
    row = conn.execute(
        q.CLAIM,
        {
            "id": job_id,
            "step": step,
            "owner": owner,
            "lease": lease_seconds,
            "early": EARLY_TOLERANCE_SECONDS,
        },
    ).fetchone()
    return None if row is None else Claim.of(row, owner, step)


def record(conn: Connection, c: Claim, change: Change) -> bool:
    """Store what a step learned while keeping the lease (e.g. the task id the moment the
    provider accepted it), with its event (if any) in the same statement. False: the lease was lost
    and nothing was written."""
    return conn.execute(q.RECORD, {**c._fence(), **change.params()}).fetchone() is not None


@dataclass(frozen=True)
class SentMark:
    """A message the step sent whose row is still ``sending``: mark it with the next write."""

    kind: str
    message_id: int | None
    detail: str


@dataclass(frozen=True)
class Rescheduled:
    next_run_at: datetime
    db_now: datetime

    @property
    def delay_ms(self) -> int:
        return max(0, int((self.next_run_at - self.db_now).total_seconds() * 1000))


def reschedule(
    conn: Connection,
    c: Claim,
    *,
    step: str,
    delay: float,
    attempts: int,
    change: Change,
    error_class: ErrorClass | None = None,
    error: str | None = None,
) -> Rescheduled | None:
    """Release the lease and queue the job at ``step`` after ``delay`` seconds with ``change``
    (its event in the same statement). None: the lease was lost and nothing changed."""
    row = conn.execute(
        q.RESCHEDULE,
        {
            **c._fence(),
            **change.params(),
            "step": step,
            "delay": max(0.0, delay),
            "attempts": attempts,
            "error_class": str(error_class) if error_class else None,
            "error": error,
        },
    ).fetchone()
    if row is None:
        return None
    return Rescheduled(row["next_run_at"], row["db_now"])


def advance(
    conn: Connection, c: Claim, *, step: str, lease_seconds: float, change: Change
) -> Claim | None:
    """Move the job on to ``step`` with ``change`` and claim it again at once (new token, fresh
    lease), in one statement. None: the lease was lost and nothing changed."""
    row = conn.execute(
        q.ADVANCE,
        {**c._fence(), **change.params(), "step": step, "owner": c.owner, "lease": lease_seconds},
    ).fetchone()
    return None if row is None else Claim.of(row, c.owner, step)


@dataclass(frozen=True)
class Ending:
    """How a job ends: everything :func:`end` writes in its one statement."""

    status: JobStatus
    event: str | None = None  # the timeline event (display text); None: no event
    code: EventCode | None = None  # the event's code; None: derived from ``event``
    detail: str = ""
    data: dict[str, Any] = field(default_factory=dict)
    state: dict[str, Any] = field(default_factory=dict)
    result: str | None = None
    error_class: ErrorClass | None = None
    error: str | None = None
    user_error: str | None = None
    notify_kind: str | None = None  # a message for the outbox, at most one per job and kind
    notify_text: str = ""


def end(
    conn: Connection,
    job_id: int,
    ending: Ending,
    *,
    claim: Claim | None = None,
    force: bool = False,
    sent: SentMark | None = None,
    wake: Callable[[int, str], None] | None = None,
) -> bool:
    """End the job: the only way any job reaches a terminal state (``end_job``,
    migrations/0005 and 0008). In one statement: the status (fenced by ``claim``'s token; without
    a claim only a job nobody holds, or any active job with ``force``), the hold's capture or
    refund (a ledger transfer), the event, giving up a result message left in ``retry`` that
    nobody will retry now, the outbox message, and, when this job is the last of a request of
    several to end, the request's summary (decided under a lock of the request's row: exactly
    one of its jobs queues it). ``sent`` (a message the step sent just before) is marked in the
    same statement, and stands even if the claim was lost, since it went out either way.

    ``wake(job_id, kind)`` is called for the summary once the statement is committed, that is
    at once on a connection in autocommit mode; inside the caller's transaction it is not called
    (the row is not visible yet) and the maintenance loop's outbox re-send sends the summary at
    its next tick. False: the job was not in a state this call may end, and nothing changed."""
    if ending.status not in TERMINAL:
        raise ValueError(f"a job cannot end {ending.status!r}")
    params = {
        "id": job_id,
        "claims": claim.token if claim else None,
        "force": force,
        "status": str(ending.status),
        "state": Jsonb(ending.state),
        "result": ending.result,
        "error_class": str(ending.error_class) if ending.error_class else None,
        "error": ending.error,
        "user_error": ending.user_error,
        "code": str(ending.code) if ending.code else None,
        "event": ending.event,
        "detail": ending.detail,
        "data": Jsonb(ending.data),
        "notify_kind": ending.notify_kind,
        "notify_text": ending.notify_text,
        "sent_kind": sent.kind if sent else None,
        "sent_message_id": sent.message_id if sent else None,
        "sent_detail": sent.detail if sent else None,
    }
    try:
        row = conn.execute(q.END, params).fetchone()
    except psycopg.errors.IntegrityError as exc:
        refusal = ledger.refusal_of(exc, hold=f"of job {job_id}")
        if refusal is None:
            raise
        raise refusal from None
    if row is None or not row["done"]:
        return False
    message = row["request_message"]
    committed = conn.info.transaction_status is psycopg.pq.TransactionStatus.IDLE
    if message is not None and wake is not None and committed:
        wake(job_id, str(message))
    return True


def succeed(
    conn: Connection,
    c: Claim,
    *,
    result: str | None,
    state: dict[str, Any] | None = None,
    event: str | None = None,
    detail: str = "",
    sent: SentMark | None = None,
) -> bool:
    """Mark the claimed job succeeded and capture its hold (:func:`end`). False: lease lost
    (``sent`` is marked all the same)."""
    ending = Ending(
        JobStatus.SUCCEEDED,
        event=event,
        code=EventCode.SUCCEEDED,
        detail=detail,
        state=state or {},
        result=result,
    )
    return end(conn, c.job_id, ending, claim=c, sent=sent)


def fail(
    conn: Connection,
    c: Claim,
    *,
    error_class: ErrorClass,
    error: str,
    user_error: str,
    state: dict[str, Any] | None = None,
    event: str | None = None,
    detail: str = "",
    notify_kind: str | None = None,
    notify_text: str = "",
) -> bool:
    """Mark the claimed job failed and refund its hold, queueing the user's message
    (``notify_kind``) in the outbox (:func:`end`). False: lease lost."""
    ending = Ending(
        JobStatus.FAILED,
        event=event,
        code=EventCode.FAILED,
        detail=detail,
        state=state or {},
        error_class=error_class,
        error=error,
        user_error=user_error,
        notify_kind=notify_kind,
        notify_text=notify_text,
    )
    return end(conn, c.job_id, ending, claim=c)


def deadline_error(
    created_at: datetime,
    deadline_at: datetime,
    last_class: ErrorClass | None,
    last_error: str | None,
) -> ProviderError:
    """Why a job past its deadline fails: the one wording, for a step that finds its job late
    and for the maintenance loop that finds it queued. The class is the last error's (the
    reason it was still waiting), TEMPORARY if it had none."""
    minutes = (deadline_at - created_at).total_seconds() / 60
    last = f" (last error: {last_class}: {last_error})" if last_error else ""
    return ProviderError(
        last_class or ErrorClass.TEMPORARY,
        f"took too long: not finished within its deadline of {minutes:.0f} min{last}",
        provider="worker",
        user_message="This took too long to make, so we stopped.",
    )


def failure(
    err: ProviderError,
    *,
    price: int,
    notify_text: str | None,
    state: dict[str, Any] | None = None,
    data: dict[str, Any] | None = None,
) -> Ending:
    """How a job fails with ``err``, whoever ends it: the job's error columns, the "failed"
    event (saying what was refunded), and the user's message (``notify_text``; None: none)."""
    refunded = f"; {price} credit(s) refunded" if price else ""
    return Ending(
        JobStatus.FAILED,
        event="failed",
        code=EventCode.FAILED,
        detail=redact(f"{err}{refunded}"),
        data=data or {},
        state=state or {},
        error_class=err.error_class,
        error=err.message,
        user_error=err.user_message,
        notify_kind=None if notify_text is None else "failure",
        notify_text=notify_text or "",
    )
