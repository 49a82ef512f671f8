"""The Python API the bot uses: submit jobs, look at them, and move credits.

``submit`` writes the job rows and their credit holds in one transaction, then sends the
wake-up messages. If Redis is down the submit still succeeds: the jobs are committed and the
maintenance loop dispatches them when the broker is back. A refused request raises a typed
error and changes nothing.

Idempotency is Stripe's: the same key with the same request returns the first result (nothing is
charged again); the same key with a different request is refused.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

from psycopg.types.json import Jsonb

from jobs._client import AsyncKindSubmits, KindSubmits
from worker import ledger, lifecycle
from worker import validation as v
from worker.admission import Admission
from worker.config import Settings, load_settings
from worker.db import Database
from worker.dispatch import Dispatcher
from worker.errors import (
    Busy,
    InsufficientCredits,
    InvalidRequest,
    JobStateConflict,
    LedgerError,
    NotYourJob,
    RequestRefused,
    UnknownJob,
)
from worker.events import EventCode
from worker.kinds import JobKind, get_kind
from worker.ledger import Balance
from worker.sql import gate as admission_q
from worker.sql import jobs as q
from worker.status import JobStatus

__all__ = [
    "AsyncClient",
    "Balance",
    "Busy",
    "Client",
    "InsufficientCredits",
    "InvalidRequest",
    "JobStateConflict",
    "NotYourJob",
    "RequestRefused",
    "SubmitResult",
    "UnknownJob",
]


@dataclass(frozen=True)
class SubmitResult:
    job_ids: list[int]
    request_id: str
    credits_held: int
    available: int
    replayed: bool = False
    #: Expected seconds from now until the request's last result is delivered (``None``: the
    #: kind has no bottleneck to estimate; ``worker.admission``). Recomputed on a replay.
    eta_seconds: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _fingerprint(request: Mapping[str, Any]) -> str:
    canonical = json.dumps(request, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def job_view(row: Mapping[str, Any], events: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The public shape of a job (docs/interface.md), as `worker jobs show --json` prints it."""
    view: dict[str, Any] = {
        "id": row["id"],
        "kind": row["kind"],
        "user_id": row["user_id"],
        "chat_id": row["chat_id"],
        "status": row["status"],
        "step": row["step"],
        "attempts": row["attempts"],
        "error_class": row["error_class"],
        "error": row["error"],
        "provider_task_id": row["provider_task_id"],
        "key_name": row["key_name"],
        "credits": row.get("credits"),
        "price": row["price"],
        "result": row["result"],
        "request_id": str(row["request_id"]),
        "rescues": row["rescues"],
        "cloned_from": row["cloned_from"],
        "deadline_at": _iso(row["deadline_at"]),
        "next_run_at": _iso(row["next_run_at"]) if row["status"] == "queued" else None,
        "payload": row["payload"],
        # What was sold and what made it, where the kind records them: the tier (payload),
        # the model its provider task ran on and what that task cost (state; see worker.models).
        "tier": (row["payload"] or {}).get("tier"),
        "model": (row.get("state") or {}).get("model"),
        "spend": (row.get("state") or {}).get("spend"),
        # The file_id Telegram keeps the delivered file under (a resend names it, no upload).
        "telegram_file_id": (row.get("state") or {}).get("telegram_file_id"),
        "created_at": _iso(row["created_at"]),
        "started_at": _iso(row["started_at"]),
        "finished_at": _iso(row["finished_at"]),
    }
    if events is not None:
        view["events"] = [
            {"at": _iso(e["at"]), "event": e["event"], "detail": e["detail"]} for e in events
        ]
    return view


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


class Client(KindSubmits):
    """Synchronous client. Thread-safe; share one per process.

    Jobs of any kind are submitted with :meth:`submit`; the bot's named form of it for each
    kind comes with the kinds (:mod:`jobs._client`)."""

    def __init__(
        self, settings: Settings, db: Database | None = None, dispatcher: Dispatcher | None = None
    ) -> None:
        self.settings = settings
        self._owns_db = db is None
        self.db = db or Database.from_settings(settings).open()
        self._dispatcher = dispatcher
        self.admission = Admission(settings, self.db)

    @classmethod
    def from_env(cls, **overrides: Any) -> Client:
        return cls(load_settings(**overrides))

    @property
    def dispatcher(self) -> Dispatcher:
        if self._dispatcher is None:
            from worker.broker import make_broker

            self._dispatcher = Dispatcher(make_broker(self.settings), background=True)
        return self._dispatcher

    def close(self) -> None:
        if self._dispatcher is not None:
            self._dispatcher.close()
        if self._owns_db:
            self.db.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- submitting ------------------------------------------------------------------------

    def submit(
        self,
        kind_name: str,
        *,
        user_id: int,
        chat_id: int | None,
        request: Mapping[str, Any],
        count: int = 1,
        idempotency_key: str | None = None,
        cloned_from: int | None = None,
    ) -> SubmitResult:
        """Submit jobs of any kind (the kind validates ``request`` into the stored payload)."""
        kind = get_kind(kind_name)
        user_id = v.positive_id("user_id", user_id)
        chat_id = v.chat_id("chat_id", chat_id if chat_id is not None else user_id)
        idempotency_key = v.idempotency_key(idempotency_key)
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= 100:
            raise InvalidRequest("count", "must be a whole number from 1 to 100")
        if kind.counts is not None and cloned_from is None:
            # A new request picks one of the counts the kind offers; a clone is always one job.
            count = v.count_in("count", count, kind.counts(self.settings))
        payload = kind.validate(request, self.settings)
        fingerprint = _fingerprint(
            {
                "kind": kind.name,
                "user_id": user_id,
                "chat_id": chat_id,
                "count": count,
                "request": {k: payload[k] for k in sorted(request) if k in payload},
                "cloned_from": cloned_from,
            }
        )
        # Busy is decided before anything is written: no request, hold, job or message.
        eta = self.admission.admit(
            kind,
            payload,
            count=count,
            user_id=user_id,
            replay=lambda: self._known_request(user_id, idempotency_key),
        )
        result = self._submit_tx(
            kind, user_id, chat_id, payload, count, idempotency_key, fingerprint, cloned_from
        )
        if eta is not None:
            result = replace(result, eta_seconds=eta)
            if not result.replayed:
                self.admission.submitted(kind, user_id, count)
        if not result.replayed:
            for job_id in result.job_ids:
                self.dispatcher.send(kind.queue, job_id, actor=kind.actor(kind.first_step))
        return result

    def _known_request(self, user_id: int, idempotency_key: str | None) -> bool:
        """Whether the user already made a request with this key (a replay is never Busy)."""
        if idempotency_key is None:
            return False
        row = self.db.fetchone(
            admission_q.REQUEST_BY_KEY, {"user_id": user_id, "idempotency_key": idempotency_key}
        )
        return row is not None

    def _submit_tx(
        self,
        kind: JobKind,
        user_id: int,
        chat_id: int,
        payload: dict[str, Any],
        count: int,
        idempotency_key: str | None,
        fingerprint: str,
        cloned_from: int | None,
    ) -> SubmitResult:
        """One statement, one round trip: the ``submit_jobs`` function (migrations/0002) checks
        the key, locks and checks the balance, and writes the request, jobs, holds and events."""
        price = kind.price(self.settings, payload)
        request_id = uuid.uuid4()
        if cloned_from is not None:
            detail = f"clone of job {cloned_from}; {price} credit(s) held"
        else:
            detail = f"{count} job(s) in request {request_id}, {price} credit(s) held each"
        row = self.db.fetchone(
            q.SUBMIT,
            {
                "request_id": request_id,
                "user_id": user_id,
                "chat_id": chat_id,
                "kind": kind.name,
                "step": kind.first_step,
                "payload": Jsonb(payload),
                "price": price,
                "count": count,
                "deadline_seconds": kind.deadline(self.settings, payload),
                "idempotency_key": idempotency_key,
                "fingerprint": fingerprint,
                "cloned_from": cloned_from,
                "detail": detail,
            },
        )
        assert row is not None
        answer = row["answer"]
        status = answer["status"]
        if status == "insufficient":
            raise InsufficientCredits(user_id, int(answer["needed"]), int(answer["available"]))
        if status == "conflict":
            raise InvalidRequest(
                "idempotency_key", "was already used with a different request; use a new key"
            )
        return SubmitResult(
            [int(j) for j in answer["job_ids"]],
            str(answer["request_id"]),
            int(answer["credits_held"]),
            int(answer["available"]),
            replayed=status == "replayed",
        )

    def clone(
        self, job_id: int, *, idempotency_key: str | None = None, user_id: int | None = None
    ) -> SubmitResult:
        """A new job with the same product ("make another"), charged again. With ``user_id``
        (the bot passes the user who pressed the button), another user's job is refused with
        :class:`NotYourJob`; the same for :meth:`retry`, :meth:`cancel` and :meth:`job`."""
        original = self._job_row(job_id, user_id)
        request = get_kind(original["kind"]).request_of(original["payload"])
        return self.submit(
            original["kind"],
            user_id=original["user_id"],
            chat_id=original["chat_id"],
            request=request,
            count=1,
            idempotency_key=idempotency_key,
            cloned_from=job_id,
        )

    def retry(
        self, job_id: int, *, idempotency_key: str | None = None, user_id: int | None = None
    ) -> SubmitResult:
        """Run a failed or cancelled job again as a new, charged job."""
        original = self._job_row(job_id, user_id)
        if original["status"] not in ("failed", "cancelled"):
            raise JobStateConflict(
                f"job {job_id} is {original['status']}; "
                "only failed or cancelled jobs can be retried"
            )
        return self.clone(
            job_id, idempotency_key=idempotency_key or f"retry-of-{job_id}", user_id=user_id
        )

    def cancel(
        self, job_id: int, *, reason: str = "cancelled by operator", user_id: int | None = None
    ) -> dict[str, Any]:
        """Cancel a queued job and refund its hold. Running or finished jobs are refused."""
        v.positive_id("job_id", job_id)
        _check_user(user_id)
        with self.db.transaction() as conn:
            row = conn.execute(q.JOB_FOR_UPDATE, {"id": job_id}).fetchone()
            if row is None:
                raise UnknownJob(job_id)
            _owned(row, job_id, user_id)
            if row["status"] != "queued":
                raise JobStateConflict(
                    f"job {job_id} is {row['status']}; only queued jobs can be cancelled"
                )
            refunded = f"; {row['price']} credit(s) refunded" if row["price"] else ""
            ending = lifecycle.Ending(
                JobStatus.CANCELLED,
                event="cancelled",
                code=EventCode.CANCELLED,
                detail=reason + refunded,
                error=reason,
            )
            lifecycle.end(conn, job_id, ending)  # the one way a job ends; the row is locked
        return self.job(job_id)

    # -- reading ---------------------------------------------------------------------------

    def _job_row(self, job_id: int, user_id: int | None = None) -> dict[str, Any]:
        v.positive_id("job_id", job_id)
        _check_user(user_id)
        row = self.db.fetchone(q.JOB, {"id": job_id})
        if row is None:
            raise UnknownJob(job_id)
        _owned(row, job_id, user_id)
        return row

    def job(self, job_id: int, *, user_id: int | None = None) -> dict[str, Any]:
        """The job with its event timeline: the same view as `worker jobs show` (``user_id``:
        the ownership guard, as :meth:`clone`)."""
        v.positive_id("job_id", job_id)
        _check_user(user_id)
        with self.db.transaction() as conn:
            row = conn.execute(q.JOB, {"id": job_id}).fetchone()
            if row is None:
                raise UnknownJob(job_id)
            _owned(row, job_id, user_id)
            events = conn.execute(q.EVENTS, {"id": job_id}).fetchall()
        return job_view(row, events)

    def jobs(
        self, *, status: str | None = None, user_id: int | None = None, limit: int = 50
    ) -> list[dict[str, Any]]:
        if status is not None and status not in (
            "queued",
            "running",
            "succeeded",
            "failed",
            "cancelled",
        ):
            raise InvalidRequest(
                "status", "must be queued, running, succeeded, failed or cancelled"
            )
        if user_id is not None:
            v.positive_id("user_id", user_id)
        if not 1 <= limit <= 10_000:
            raise InvalidRequest("limit", "must be from 1 to 10000")
        rows = self.db.fetchall(q.LIST_JOBS, {"status": status, "user_id": user_id, "limit": limit})
        return [job_view(r) for r in rows]

    # -- credits ---------------------------------------------------------------------------

    def balance(self, user_id: int) -> Balance:
        v.positive_id("user_id", user_id)
        with self.db.transaction() as conn:
            return ledger.balance(conn, user_id)

    def grant(
        self,
        user_id: int,
        amount: int,
        *,
        idempotency_key: str | None = None,
        reason: str = "grant",
    ) -> Balance:
        """Add credits. With an idempotency key, a replay changes nothing."""
        v.positive_id("user_id", user_id)
        if isinstance(amount, bool) or not isinstance(amount, int) or not 0 < amount <= 10**12:
            raise InvalidRequest("amount", "must be a positive whole number of credits")
        idempotency_key = v.idempotency_key(idempotency_key)
        with self.db.transaction() as conn:
            try:
                ledger.grant(conn, user_id, amount, idempotency_key=idempotency_key, reason=reason)
            except LedgerError:
                raise InvalidRequest(
                    "idempotency_key", "was already used for a grant of a different amount"
                ) from None
            return ledger.balance(conn, user_id)


def _check_user(user_id: int | None) -> None:
    if user_id is not None:
        v.positive_id("user_id", user_id)


def _owned(row: Mapping[str, Any], job_id: int, user_id: int | None) -> None:
    """The ownership guard: refuse another user's job (nothing was changed yet)."""
    if user_id is not None and row["user_id"] != user_id:
        raise NotYourJob(job_id, user_id)


class AsyncClient(AsyncKindSubmits):
    """The same API as coroutines, for an asyncio bot.

    Each call runs the synchronous client's code in a worker thread: the transactions are
    short, the behaviour is identical by construction, and the bot's event loop never blocks.
    """

    def __init__(self, client: Client) -> None:
        self._client = client

    @classmethod
    def from_env(cls, **overrides: Any) -> AsyncClient:
        return cls(Client.from_env(**overrides))

    @property
    def sync(self) -> Client:
        return self._client

    async def submit(self, kind_name: str, **kwargs: Any) -> SubmitResult:
        return await asyncio.to_thread(lambda: self._client.submit(kind_name, **kwargs))

    async def clone(self, job_id: int, **kwargs: Any) -> SubmitResult:
        return await asyncio.to_thread(lambda: self._client.clone(job_id, **kwargs))

    async def retry(self, job_id: int, **kwargs: Any) -> SubmitResult:
        return await asyncio.to_thread(lambda: self._client.retry(job_id, **kwargs))

    async def cancel(self, job_id: int, **kwargs: Any) -> dict[str, Any]:
        return await asyncio.to_thread(lambda: self._client.cancel(job_id, **kwargs))

    async def job(self, job_id: int, **kwargs: Any) -> dict[str, Any]:
        return await asyncio.to_thread(lambda: self._client.job(job_id, **kwargs))

    async def jobs(self, **kwargs: Any) -> list[dict[str, Any]]:
        return await asyncio.to_thread(lambda: self._client.jobs(**kwargs))

    async def balance(self, user_id: int) -> Balance:
        return await asyncio.to_thread(self._client.balance, user_id)

    async def grant(self, user_id: int, amount: int, **kwargs: Any) -> Balance:
        return await asyncio.to_thread(lambda: self._client.grant(user_id, amount, **kwargs))

    async def close(self) -> None:
        await asyncio.to_thread(self._client.close)
