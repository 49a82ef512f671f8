"""User notifications, at most once per job and kind.

Failure and progress messages go through an outbox: the row is written in the same transaction
as the job's outcome, and a ``notify`` message asks a worker to send it. Sending first claims the
row (``pending``/``retry`` → ``sending``), so two workers never both send it; a crash between the
claim and the send leaves it ``sending`` and it is not sent again (at most once beats twice).
Telegram's 403 (blocked) and 400 (chat not found) make the row ``undeliverable`` and never touch
the job; rate limits and outages put it back to ``retry`` with a delay, a few times at most.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from psycopg.types.json import Jsonb

from worker import lifecycle
from worker.db import Connection, Database
from worker.dispatch import Dispatcher
from worker.errors import ErrorClass, ProviderError
from worker.metrics import NOTIFICATIONS
from worker.policy import Backoff
from worker.sql import notifications as q
from worker.telegram import TelegramNotifier

log = logging.getLogger(__name__)

QUEUE = "notify"
MAX_SEND_ATTEMPTS = 5


@dataclass(frozen=True)
class SendResult:
    status: str  # sent, undeliverable, retry, skipped
    detail: str
    message_id: int | None = None
    error: ProviderError | None = None


class Notifications:
    def __init__(
        self,
        db: Database,
        telegram: TelegramNotifier | None,
        dispatcher: Dispatcher,
        backoff: Backoff,
    ) -> None:
        self.db = db
        self.telegram = telegram
        self.dispatcher = dispatcher
        self.backoff = backoff

    # -- the outbox ------------------------------------------------------------------------

    @staticmethod
    def enqueue(conn: Connection, *, job_id: int, kind: str, chat_id: int, text: str) -> bool:
        """Write a message to the outbox inside the caller's transaction. False if this job
        already has a message of this kind (it is never sent twice)."""
        row = conn.execute(
            q.ENQUEUE, {"job_id": job_id, "kind": kind, "chat_id": chat_id, "text": text}
        ).fetchone()
        return row is not None

    def wake(self, job_id: int, kind: str, delay_ms: int | None = None) -> None:
        self.dispatcher.send(QUEUE, job_id, kind, delay_ms=delay_ms)

    def deliver(self, job_id: int, kind: str) -> SendResult:
        """Send one outbox message (the ``notify`` actor's body)."""
        with self.db.connection() as conn:
            row = conn.execute(q.CLAIM_EXISTING, {"job_id": job_id, "kind": kind}).fetchone()
        if row is None:
            return SendResult("skipped", "already handled or not due")
        result = self._send(row, lambda t: t.send_message(int(row["chat_id"]), row["text"]))
        if result.status == "retry":
            delay = (result.error.retry_after if result.error else None) or self.backoff.delay(
                int(row["attempts"])
            )
            self.wake(job_id, kind, int(delay * 1000))
        return result

    # -- sending under a claim (the result video, sent by the step itself) -----------------

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
        result = SendResult("sent", mark.detail, mark.message_id)
        with self.db.connection() as conn:
            self._mark(conn, job_id, mark.kind, result, 0.0)

    def _send(
        self,
        row: dict[str, Any],
        send: Callable[[TelegramNotifier], int],
        *,
        defer_sent: bool = False,
    ) -> SendResult:
        job_id, kind = int(row["job_id"]), str(row["kind"])
        if self.telegram is None:
            result = SendResult("undeliverable", "TELEGRAM_BOT_TOKEN is not set; nothing was sent")
        else:
            try:
                message_id = send(self.telegram)
                result = SendResult("sent", f"message {message_id}", message_id)
            except ProviderError as err:
                result = self._classify(err, int(row["attempts"]))
        delay = 0.0
        if result.status == "retry":
            delay = (result.error.retry_after if result.error else None) or self.backoff.delay(
                int(row["attempts"])
            )
        NOTIFICATIONS.labels(kind=kind, outcome=result.status).inc()
        if result.status == "sent":
            if not defer_sent:
                with self.db.connection() as conn:  # one statement: the common case
                    self._mark(conn, job_id, kind, result, delay)
            return result
        with self.db.transaction() as conn:  # the mark and its event together
            self._mark(conn, job_id, kind, result, delay)
            lifecycle.add_event(conn, job_id, f"{kind} message {result.status}", result.detail)
        return result

    @staticmethod
    def _mark(conn: Connection, job_id: int, kind: str, result: SendResult, delay: float) -> None:
        conn.execute(
            q.MARK,
            {
                "job_id": job_id,
                "kind": kind,
                "status": result.status,
                "message_id": result.message_id,
                "detail": result.detail,
                "delay": delay,
            },
        )

    @staticmethod
    def _classify(err: ProviderError, attempts: int) -> SendResult:
        if err.permanent_for_notification:
            return SendResult("undeliverable", f"Telegram refused: {err.message}", error=err)
        if err.error_class is ErrorClass.RATE_LIMIT or (
            err.error_class in (ErrorClass.TEMPORARY, ErrorClass.INTERNAL)
            and attempts < MAX_SEND_ATTEMPTS
        ):
            return SendResult("retry", f"{err.error_class}: {err.message}", error=err)
        return SendResult(
            "undeliverable", f"gave up after {attempts} attempt(s): {err.message}", error=err
        )

    def redispatch_due(
        self, conn: Connection, after_seconds: float, limit: int = 500
    ) -> list[tuple[int, str]]:
        rows = conn.execute(q.REDISPATCH_DUE, {"after": after_seconds, "limit": limit}).fetchall()
        return [(int(r["job_id"]), str(r["kind"])) for r in rows]
