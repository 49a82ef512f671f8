"""Provider callbacks: a provider says a job's task ended, and the step waiting for it runs now.

A provider's task may run for minutes. Without callbacks a job learns that its result is ready
only at its next poll, on the provider's schedule: dozens of polls a task, each a delayed message,
a claim,
a key-pool script, an HTTP exchange and a reschedule. With them the poll step runs once, when
the callback comes, plus a slow safety-net poll in case a callback is lost.

A callback is a hint, exactly like a Dramatiq message: it never decides an outcome. The job
kind's :class:`Webhook` authenticates and reads the request and names the job, the step waiting
for it and the provider task (a :class:`Wake`). :func:`wake` then makes that job due now, in
one statement that only matches a job queued at that step, holding that task and not due
already; it appends "callback" to the job's timeline, and the caller sends the wake-up. The step
asks the provider itself (its status query stays the authority). A forged, duplicated,
late or stale callback costs at most one early poll, and nothing at all once the job moved on.

A callback can beat the step it is meant for: a task that fails at once may call back before
the step that created it has recorded the task id, and one can arrive while a safety-net poll of
the same task is running, just before that poll reschedules itself for minutes later. In both
cases the job is ``running``, and :func:`wake` looks again for a few seconds until the step's
own write lands, so no callback is lost to that race.

`worker webhooks` (:mod:`worker.webhook_server`) serves every kind's webhooks. This module knows
nothing about any provider: a provider's signature and body live with the kind that calls it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from psycopg.types.json import Jsonb

from worker.config import Settings
from worker.db import AsyncDatabase
from worker.errors import WorkerError
from worker.kinds import JobKind
from worker.redaction import redact
from worker.sql import webhooks as q
from worker.status import WakeOutcome

log = logging.getLogger(__name__)

#: How long :func:`wake` keeps looking at a job whose step is running (see the module doc).
RUNNING_WAIT_SECONDS = 10.0
#: Its first pause, doubled each time up to :data:`RUNNING_POLL_MAX_SECONDS`.
RUNNING_POLL_SECONDS = 0.05
RUNNING_POLL_MAX_SECONDS = 1.0

#: Outcomes of :func:`wake`; see ``worker.sql.webhooks.WAKE``.
OUTCOMES = tuple(WakeOutcome)


@dataclass(frozen=True)
class WebhookRequest:
    """What a webhook sees of one HTTP request: headers (lower-case names), query, raw body."""

    headers: Mapping[str, str]
    query: Mapping[str, str]
    body: bytes
    #: Unix time the request arrived (for signature timestamps).
    received_at: float = field(default_factory=time.time)

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


@dataclass(frozen=True)
class Wake:
    """A callback's claim: job ``job_id`` waits at ``step`` for ``provider_task_id``, which
    the provider says has ended. ``detail`` goes on the job's timeline; ``data`` too."""

    job_id: int
    step: str
    provider_task_id: str
    detail: str
    data: dict[str, Any] = field(default_factory=dict)


class WebhookRejected(WorkerError):
    """The request is not a callback we accept: nothing changes, the provider gets ``status``.

    400 for a body or URL we cannot read, 401 for a missing or wrong signature. ``reason`` is
    for our log and the answer's body, so it never quotes a secret."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class Webhook:
    """One provider's callbacks for one job kind, served at ``/callbacks/<kind>/<name>``.

    ``read`` turns a request into a :class:`Wake` or raises :class:`WebhookRejected`; it runs on
    the server's event loop, so it must not block (parse and verify only). ``public_url`` is
    where the provider is told to call (``None``: callbacks are off); ``signed`` whether
    requests must carry a valid signature. ``url_variable`` and ``key_variable`` name the
    settings, for `worker doctor`'s advice."""

    name: str
    provider: str
    read: Callable[[WebhookRequest, Settings], Wake]
    public_url: Callable[[Settings], str | None]
    signed: Callable[[Settings], bool]
    url_variable: str
    key_variable: str


def path_of(kind: JobKind, hook: Webhook) -> str:
    """The path `worker webhooks` serves ``hook`` at: ``/callbacks/<kind>/<webhook>``."""
    return f"/callbacks/{kind.name}/{hook.name}"


async def wake(
    db: AsyncDatabase,
    kind: JobKind,
    w: Wake,
    *,
    wait_seconds: float = RUNNING_WAIT_SECONDS,
    sleep: Callable[[float], Any] = asyncio.sleep,
) -> WakeOutcome:
    """Make job ``w.job_id`` due now if it waits at ``w.step`` for ``w.provider_task_id``.

    Returns one of :data:`OUTCOMES`; on ``"woken"`` the caller sends the wake-up message. While
    the job's step runs (``"running"``), looks again with a growing pause for up to
    ``wait_seconds``, and returns ``"running"`` if it still runs then (the safety-net poll
    will find the task)."""
    steps = kind.steps
    index = steps.index(w.step) if w.step in steps else -1
    # The step that creates the task runs just before the one that waits for it.
    waiting_steps = [w.step] + ([steps[index - 1]] if index > 0 else [])
    params = {
        "id": w.job_id,
        "kind": kind.name,
        "step": w.step,
        "task": w.provider_task_id,
        "waiting_steps": waiting_steps,
        "detail": redact(w.detail),
        "data": Jsonb({"task_id": w.provider_task_id, **w.data}),
    }
    deadline = time.monotonic() + wait_seconds
    pause = RUNNING_POLL_SECONDS
    while True:
        async with db.pool.connection() as conn:
            cur = await conn.execute(q.WAKE, params)
            row = await cur.fetchone()
        assert row is not None
        outcome = WakeOutcome(row["outcome"])
        if outcome is not WakeOutcome.RUNNING or time.monotonic() + pause > deadline:
            return outcome
        await sleep(pause)
        pause = min(pause * 2, RUNNING_POLL_MAX_SECONDS)
