"""Moving a job through its lifecycle: claim, record, reschedule, succeed, fail.

``claim`` is the compare-and-set that turns a wake-up message into the right to run one step:
it bumps the job's ``claims`` counter, which is the fencing token. Every later write of that step
is conditional on the token, so a worker that stalled past its lease and wakes up after another
worker took the job over changes nothing. Terminal transitions move the money in the same
transaction: success captures the hold, failure and cancellation refund it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from worker import ledger
from worker.db import Connection
from worker.errors import ErrorClass
from worker.sql import jobs as jobs_q
from worker.sql import lifecycle as q

#: A message may arrive this much before the job's next run time and still be honoured
#: (clock skew between hosts; Dramatiq's delay is measured on the sender's clock).
EARLY_TOLERANCE_SECONDS = 1.0


@dataclass(frozen=True)
class Claim:
    """The right to run one step of one job, until ``lease_expires_at``."""

    job_id: int
    token: int
    owner: str
    step: str
    attempts: int
    row: dict[str, Any] = field(repr=False)

    @property
    def kind(self) -> str:
        return str(self.row["kind"])

    @property
    def payload(self) -> dict[str, Any]:
        return dict(self.row["payload"])

    @property
    def state(self) -> dict[str, Any]:
        return dict(self.row["state"])

    @property
    def deadline_at(self) -> datetime:
        return self.row["deadline_at"]  # type: ignore[no-any-return]

    @property
    def follows_rescue(self) -> bool:
        """The claim before this one ran this same step and was taken back by a rescue: its
        worker died or stalled, and what that run did outside the database is unknown."""
        return self.row.get("rescued_claim") == self.token - 1

    @property
    def db_now(self) -> datetime:
        return self.row["db_now"]  # type: ignore[no-any-return]

    def _fence(self) -> dict[str, Any]:
        return {"id": self.job_id, "claims": self.token}


def add_event(
    conn: Connection, job_id: int, event: str, detail: str = "", data: dict[str, Any] | None = None
) -> None:
    conn.execute(
        jobs_q.INSERT_EVENT,
        {"job_id": job_id, "event": event, "detail": detail, "data": Jsonb(data or {})},
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
    if row is None:
        return None
    return Claim(job_id, int(row["claims"]), owner, step, int(row["attempts"]), row)


def record(
    conn: Connection,
    c: Claim,
    *,
    provider_task_id: str | None = None,
    key_name: str | None = None,
    state: dict[str, Any] | None = None,
    event: str | None = None,
    detail: str = "",
) -> bool:
    """Store what a step learned while keeping the lease (e.g. the task id the moment KIE
    accepted it), with ``event`` (if any) in the same statement. False: the lease was lost and
    nothing was written."""
    params = {
        **c._fence(),
        "provider_task_id": provider_task_id,
        "key_name": key_name,
        "state": Jsonb(state or {}),
        "event": event,
        "detail": detail,
    }
    return conn.execute(q.RECORD, params).fetchone() is not None


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
    state: dict[str, Any] | None = None,
    provider_task_id: str | None = None,
    key_name: str | None = None,
    clear_task: bool = False,
    error_class: ErrorClass | None = None,
    error: str | None = None,
    event: str | None = None,
    detail: str = "",
) -> Rescheduled | None:
    """Release the lease and queue the job at ``step`` after ``delay`` seconds, appending
    ``event`` (if any) to the timeline in the same statement."""
    row = conn.execute(
        q.RESCHEDULE,
        {
            **c._fence(),
            "step": step,
            "delay": max(0.0, delay),
            "attempts": attempts,
            "state": Jsonb(state or {}),
            "provider_task_id": provider_task_id,
            "key_name": key_name,
            "clear_task": clear_task,
            "error_class": str(error_class) if error_class else None,
            "error": error,
            "event": event,
            "detail": detail,
        },
    ).fetchone()
    if row is None:
        return None
    return Rescheduled(row["next_run_at"], row["db_now"])


def advance(
    conn: Connection,
    c: Claim,
    *,
    step: str,
    owner: str,
    lease_seconds: float,
    state: dict[str, Any] | None = None,
    provider_task_id: str | None = None,
    key_name: str | None = None,
    clear_task: bool = False,
    event: str | None = None,
    detail: str = "",
) -> Claim | None:
    """Move the job on to ``step`` and claim it again at once (new token, fresh lease), with
    ``event`` and the provider task the step created (if any) in the same statement. None: the
    lease was lost and nothing changed."""
    row = conn.execute(
        q.ADVANCE,
        {
            **c._fence(),
            "step": step,
            "owner": owner,
            "lease": lease_seconds,
            "state": Jsonb(state or {}),
            "provider_task_id": provider_task_id,
            "key_name": key_name,
            "clear_task": clear_task,
            "event": event,
            "detail": detail,
        },
    ).fetchone()
    if row is None:
        return None
    return Claim(c.job_id, int(row["claims"]), owner, step, int(row["attempts"]), row)


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
    """Mark the job succeeded and capture its hold, in one statement, marking ``sent`` (a
    message the step sent just before) in the same statement. False: lease lost (the mark is
    written all the same)."""
    return _finish(
        conn, c, "succeeded", state=state, result=result, event=event, detail=detail, sent=sent
    )


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
    """Mark the job failed and refund its hold, in one statement, queueing the user's message
    (``notify_kind``) in the outbox. False: lease lost."""
    return _finish(
        conn,
        c,
        "failed",
        state=state,
        error_class=str(error_class),
        error=error,
        user_error=user_error,
        event=event,
        detail=detail,
        notify_kind=notify_kind,
        notify_text=notify_text,
    )


def _finish(
    conn: Connection,
    c: Claim,
    status: str,
    *,
    state: dict[str, Any] | None,
    result: str | None = None,
    error_class: str | None = None,
    error: str | None = None,
    user_error: str | None = None,
    event: str | None,
    detail: str,
    notify_kind: str | None = None,
    notify_text: str = "",
    sent: SentMark | None = None,
) -> bool:
    """``finish_job`` (migrations/0003): the fenced update, the hold's capture or refund (a
    ledger transfer), the event and the outbox message, atomically."""
    params = {
        "sent_kind": sent.kind if sent else None,
        "sent_message_id": sent.message_id if sent else None,
        "sent_detail": sent.detail if sent else None,
        **c._fence(),
        "status": status,
        "state": Jsonb(state or {}),
        "result": result,
        "error_class": error_class,
        "error": error,
        "user_error": user_error,
        "event": event,
        "detail": detail,
        "notify_kind": notify_kind,
        "notify_text": notify_text,
    }
    try:
        row = conn.execute(q.FINISH, params).fetchone()
    except psycopg.errors.IntegrityError as exc:
        refusal = ledger.refusal_of(exc, hold=f"of job {c.job_id}")
        if refusal is None:
            raise
        raise refusal from None
    return bool(row and row["done"])


def fail_unclaimed(
    conn: Connection,
    job_id: int,
    *,
    error_class: ErrorClass,
    error: str,
    user_error: str,
    force: bool = False,
) -> bool:
    """Fail a job nobody holds (queued, or running under an expired lease) and refund it.

    ``force`` also takes a job whose lease is still live (its worker's later writes are then
    refused by the fence, since this bumps the claim token)."""
    done = conn.execute(
        q.FINISH_UNCLAIMED,
        {
            "id": job_id,
            "status": "failed",
            "error_class": str(error_class),
            "error": error,
            "user_error": user_error,
            "force": force,
        },
    ).fetchone()
    if done is None:
        return False
    ledger.refund(conn, job_id)
    return True
