"""What a step handler sees: its claim, its job's columns, and the writes it may make."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from worker import fair_gate, lifecycle
from worker.config import ApiKey
from worker.db_retry import with_db_retry
from worker.errors import ErrorClass, ProviderError
from worker.keys import UnknownKey
from worker.kinds import JobKind
from worker.notifications import Notifications
from worker.outcomes import LeaseLost
from worker.services import Services
from worker.status import NotificationStatus
from worker.telegram import TelegramNotifier

log = logging.getLogger(__name__)


class StepContext:
    """One claimed step of one job, as its handler sees it."""

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
        #: This run passed its kind's gate (``worker.fair_gate``): later keys skip it.
        self.gate_passed = False

    @property
    def job_id(self) -> int:
        return self.claim.job_id

    @property
    def payload(self) -> dict[str, Any]:
        """The request, as submitted (a copy)."""
        return dict(self.claim.payload)

    @property
    def state(self) -> dict[str, Any]:
        """What the kind's steps have learned so far (a copy)."""
        return dict(self.claim.state)

    @property
    def chat_id(self) -> int:
        return self.claim.chat_id

    @property
    def provider_task_id(self) -> str | None:
        """The provider task the job holds, if a step created one."""
        return self.claim.provider_task_id

    @property
    def key_name(self) -> str | None:
        """The key that created :attr:`provider_task_id`."""
        return self.claim.key_name

    @property
    def created_at(self) -> datetime:
        return self.claim.created_at

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

        change = lifecycle.Change(
            state=state or {},
            provider_task_id=provider_task_id,
            key_name=key_name,
            event=event or None,
            detail=detail,
        )

        def write() -> bool:
            with self.services.db.connection() as conn:  # one statement: the write and its event
                return lifecycle.record(conn, self.claim, change)

        if not with_db_retry(write):
            raise LeaseLost(f"job {self.job_id} was taken over while {self.claim.step} ran")

    def event(self, event: str, detail: str = "", data: dict[str, Any] | None = None) -> None:
        """Append to the job's timeline outside the fence (for facts that stand regardless)."""
        with self.services.db.connection() as conn:
            lifecycle.add_event(conn, self.job_id, event, detail, data)

    def notify(self, kind: str, text: str, *, per_request: bool = False) -> bool:
        """Queue a message to the user (at most one per job and kind; with ``per_request``, one
        per request and kind: the first of its jobs to queue it wins, in any process)."""
        with self.services.db.connection() as conn:
            queued = Notifications.enqueue(
                conn,
                job_id=self.job_id,
                kind=kind,
                chat_id=self.chat_id,
                text=text,
                per_request=per_request,
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
                chat_id=self.chat_id,
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
            if status == NotificationStatus.SENDING:
                return f"an earlier attempt may have sent the {kind} message; not sent again"
            return f"the {kind} message is {status}; not sent again"
        result = notes.send_claimed(row, send, defer_sent=True)
        if result.status is NotificationStatus.SENT:
            self.unmarked.append(lifecycle.SentMark(kind, result.message_id, result.detail))
        if result.status is NotificationStatus.RETRY and result.error is not None:
            raise result.error
        return (
            f"{kind} sent to the user"
            if result.status is NotificationStatus.SENT
            else result.detail
        )

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
        """A key; at the kind's bottleneck (``JobKind.gate``), once it is the job's turn."""
        gate = self.kind.gate
        if (
            gate is not None
            and not self.gate_passed
            and gate.holds(self.claim.step, provider, purpose)
        ):
            key = fair_gate.acquire(self, gate)
            self.gate_passed = True
            return key
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
