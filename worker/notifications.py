"""User notifications, at most once per job and kind.

Failure and progress messages go through an outbox: the row is written in the same transaction
as the job's outcome, and a ``notify`` message asks a worker to send it. Sending first claims the
row (``pending``/``retry`` → ``sending``), so two workers never both send it; a crash between the
claim and the send leaves it ``sending`` and it is not sent again (at most once beats twice).
Telegram's 403 (blocked) and 400 (chat not found) make the row ``undeliverable`` and never touch
the job; otherwise the policy table decides (``worker.policy.decide`` with nothing to rotate to):
rate limits and outages put it back to ``retry`` with a delay, outages a few times at most.

A message about a whole request (``request_id`` set) is at most one per request and kind: the
"still working" message (:meth:`Notifications.enqueue` with ``per_request``) and the summary
that ``end_job`` queues when a request's last job ends (migrations/0008). The summary is written
when it is sent: the job's kind renders it (``JobKind.summary``) from the request's tally, in
the user's language, with its buttons; the text sent is stored on the row.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from psycopg.types.json import Jsonb

from worker import lifecycle
from worker.db import Connection, Database
from worker.dispatch import Dispatcher
from worker.errors import ProviderError, WorkerError
from worker.events import EventCode
from worker.kinds import Message, RequestTally, UnknownKind, get_kind
from worker.metrics import NOTIFICATIONS
from worker.policy import Action, Backoff, decide
from worker.sql import notifications as q
from worker.status import NotificationStatus
from worker.telegram import TelegramNotifier

if TYPE_CHECKING:
    from worker.config import Settings

log = logging.getLogger(__name__)

QUEUE = "notify"
MAX_SEND_ATTEMPTS = 5
#: The kind of the message a request of several jobs gets once its last job ended.
SUMMARY = "summary"


@dataclass(frozen=True)
class SendResult:
    status: NotificationStatus  # sent, undeliverable, retry, skipped
    detail: str
    message_id: int | None = None
    error: ProviderError | None = None
    delay: float = 0.0  # before the next attempt (retry only)
    text: str | None = None  # the text written at send time, stored on the row (None: as queued)


class Notifications:
    def __init__(
        self,
        db: Database,
        telegram: TelegramNotifier | None,
        dispatcher: Dispatcher,
        backoff: Backoff,
        settings: Settings | None = None,
    ) -> None:
        self.db = db
        self.telegram = telegram
        self.dispatcher = dispatcher
        self.backoff = backoff
        self.settings = settings  # the operator's texts and language, for messages written here

    # -- the outbox ------------------------------------------------------------------------

    @staticmethod
    def enqueue(
        conn: Connection,
        *,
        job_id: int,
        kind: str,
        chat_id: int,
        text: str,
        per_request: bool = False,
    ) -> bool:
        """Write a message to the outbox inside the caller's transaction. False if this job
        already has a message of this kind, or with ``per_request`` if any job of its request
        has (the message is about the whole request: one, whichever job queues it first)."""
        params = {
            "job_id": job_id,
            "kind": kind,
            "chat_id": chat_id,
            "text": text,
            "per_request": per_request,
        }
        return conn.execute(q.ENQUEUE, params).fetchone() is not None

    def wake(self, job_id: int, kind: str, delay_ms: int | None = None) -> None:
        self.dispatcher.send(QUEUE, job_id, kind, delay_ms=delay_ms)

    def deliver(self, job_id: int, kind: str) -> SendResult:
        """Send one outbox message (the ``notify`` actor's body). A request's summary goes
        after its job's own messages still waiting (the last job's failure message, whose
        wake-up may come second): they are sent first, here."""
        if kind == SUMMARY:
            with self.db.connection() as conn:
                before = conn.execute(q.WAITING_BEFORE, {"job_id": job_id, "kind": kind})
                kinds = [str(r["kind"]) for r in before.fetchall()]
            for other in kinds:
                self.deliver(job_id, other)
        with self.db.connection() as conn:
            row = conn.execute(q.CLAIM_EXISTING, {"job_id": job_id, "kind": kind}).fetchone()
            written = self._summary(conn, row) if row and row["kind"] == SUMMARY else None
        if row is None:
            return SendResult(NotificationStatus.SKIPPED, "already handled or not due")
        chat_id = int(row["chat_id"])
        if isinstance(written, str):  # nothing to send: say why on the row and the timeline
            result = self._give_up(row, written)
        elif written is not None:
            message = written
            result = self._send(
                row,
                lambda t: t.send_message(chat_id, message.text, reply_markup=message.reply_markup),
                defer_sent=True,
                text=message.text,
            )
            if result.status is NotificationStatus.SENT:  # marked with what the user read,
                with self.db.transaction() as conn:  # on the timeline too, in one transaction
                    self._mark(conn, job_id, kind, result)
                    lifecycle.add_event(
                        conn,
                        job_id,
                        f"{kind} message sent",
                        f"{message.text} (request {row['request_id']})",
                        code=EventCode.MESSAGE_SENT,
                    )
        else:
            result = self._send(row, lambda t: t.send_message(chat_id, row["text"]))
        if result.status is NotificationStatus.RETRY:
            self.wake(job_id, kind, int(result.delay * 1000))
        return result

    def _summary(self, conn: Connection, row: dict[str, Any]) -> Message | str:
        """The request's summary, written now by its kind from the request's tally; a string
        says why there is nothing to send."""
        if row["request_id"] is None:
            return "a summary must belong to a request"
        tally = conn.execute(q.REQUEST_TALLY, {"request_id": row["request_id"]}).fetchone()
        if tally is None or int(tally["active"]):
            return "the request still has jobs in progress"
        try:
            kind = get_kind(str(tally["kind"]))
        except UnknownKind as exc:
            return str(exc)
        if kind.summary is None:
            return f"the {kind.name} kind sends no summary"
        counts = RequestTally(
            total=int(tally["total"]),
            succeeded=int(tally["succeeded"]),
            failed=int(tally["failed"]),
            cancelled=int(tally["cancelled"]),
            refunded=int(tally["refunded"]),
            button_job=int(tally["button_job"]),
        )
        try:
            return kind.summary(self.settings, dict(tally["payload"]), counts)
        except (WorkerError, ValueError, KeyError) as exc:
            log.exception("job %s: the %s kind's summary failed", row["job_id"], kind.name)
            return f"the summary could not be written: {exc}"

    def _give_up(self, row: dict[str, Any], why: str) -> SendResult:
        result = SendResult(NotificationStatus.UNDELIVERABLE, why)
        job_id, kind = int(row["job_id"]), str(row["kind"])
        NOTIFICATIONS.labels(kind=kind, outcome=str(result.status)).inc()
        with self.db.transaction() as conn:
            self._mark(conn, job_id, kind, result)
            lifecycle.add_event(
                conn,
                job_id,
                f"{kind} message {result.status}",
                why,
                code=EventCode.of_message(result.status),
            )
        return result

    # -- sending under a claim (the result file, sent by the step itself) -----------------

    def claim(
        self,
        conn: Connection,
        fence: dict[str, Any],
        *,
        kind: str,
        chat_id: int,
        text: str = "",
        state: dict[str, Any] | None = None,
        event: str | None = None,
        detail: str = "",
    ) -> tuple[bool, dict[str, Any] | None]:
        """Claim the right to send (creating the row if needed) under the job's claim token
        (``fence``: ``id`` and ``claims``), committing ``state`` and ``event`` with it.

        Returns (held, row). held False: the job was taken over; nothing was written. row None:
        already sent, given up, or a previous attempt may have sent it (crashed mid-send); do
        not send again."""
        found = conn.execute(
            q.CLAIM,
            {
                "job_id": fence["id"],
                "claims": fence["claims"],
                "kind": kind,
                "chat_id": chat_id,
                "text": text,
                "state": Jsonb(state or {}),
                "event": event,
                "detail": detail,
            },
        ).fetchone()
        if found is None:
            return False, None
        if found["job_id"] is None:
            return True, None
        row = dict(found)
        del row["kept"]
        return True, row

    def existing(self, conn: Connection, job_id: int, kind: str) -> dict[str, Any] | None:
        return conn.execute(q.GET, {"job_id": job_id, "kind": kind}).fetchone()

    def send_claimed(
        self,
        row: dict[str, Any],
        send: Callable[[TelegramNotifier], int],
        *,
        defer_sent: bool = False,
    ) -> SendResult:
        """Send a claimed message and mark its row. With ``defer_sent``, a message that was sent
        is left ``sending`` for the caller to mark in its own next statement (a step folds the
        mark into its terminal call) or with :meth:`mark_sent`; until then it counts as "may
        have been sent" and is never sent again."""
        return self._send(row, send, defer_sent=defer_sent)

    def mark_sent(self, job_id: int, mark: lifecycle.SentMark) -> None:
        """Mark a message sent whose mark was deferred."""
        result = SendResult(NotificationStatus.SENT, mark.detail, mark.message_id)
        with self.db.connection() as conn:
            self._mark(conn, job_id, mark.kind, result)

    def _send(
        self,
        row: dict[str, Any],
        send: Callable[[TelegramNotifier], int],
        *,
        defer_sent: bool = False,
        text: str | None = None,
    ) -> SendResult:
        job_id, kind = int(row["job_id"]), str(row["kind"])
        if self.telegram is None:
            result = SendResult(
                NotificationStatus.UNDELIVERABLE, "TELEGRAM_BOT_TOKEN is not set; nothing was sent"
            )
        else:
            try:
                message_id = send(self.telegram)
                result = SendResult(NotificationStatus.SENT, f"message {message_id}", message_id)
            except ProviderError as err:
                result = self._classify(err, int(row["attempts"]))
        result = dataclasses.replace(result, text=text)
        NOTIFICATIONS.labels(kind=kind, outcome=str(result.status)).inc()
        if result.status is NotificationStatus.SENT:
            if not defer_sent:
                with self.db.connection() as conn:  # one statement: the common case
                    self._mark(conn, job_id, kind, result)
            return result
        with self.db.transaction() as conn:  # the mark and its event together
            self._mark(conn, job_id, kind, result)
            lifecycle.add_event(
                conn,
                job_id,
                f"{kind} message {result.status}",
                result.detail,
                code=EventCode.of_message(result.status),
            )
        return result

    @staticmethod
    def _mark(conn: Connection, job_id: int, kind: str, result: SendResult) -> None:
        conn.execute(
            q.MARK,
            {
                "job_id": job_id,
                "kind": kind,
                "status": str(result.status),
                "message_id": result.message_id,
                "detail": result.detail,
                "delay": result.delay,
                "text": result.text,
            },
        )

    def _classify(self, err: ProviderError, attempts: int) -> SendResult:
        """The policy table's answer for a message that failed on its ``attempts``-th try."""
        if err.permanent_for_notification:
            return SendResult(
                NotificationStatus.UNDELIVERABLE, f"Telegram refused: {err.message}", error=err
            )
        d = decide(
            err.error_class,
            attempts=attempts - 1,
            max_attempts=MAX_SEND_ATTEMPTS,
            backoff=self.backoff,
            retry_after=err.retry_after,
            rotates=False,
        )
        if d.action is Action.FAIL:
            return SendResult(
                NotificationStatus.UNDELIVERABLE,
                f"gave up after {attempts} attempt(s): {err.message}",
                error=err,
            )
        detail = f"{err.error_class}: {err.message}"
        return SendResult(NotificationStatus.RETRY, detail, error=err, delay=d.delay)

    def redispatch_due(
        self, conn: Connection, after_seconds: float, limit: int = 500
    ) -> list[tuple[int, str]]:
        rows = conn.execute(q.REDISPATCH_DUE, {"after": after_seconds, "limit": limit}).fetchall()
        return [(int(r["job_id"]), str(r["kind"])) for r in rows]
