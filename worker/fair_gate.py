"""Fair order at a kind's bottleneck: who takes the next provider slot when more jobs want one
than the accounts allow.

A kind declares its bottleneck (``JobKind.gate``: a step, a provider and the paced purpose,
e.g. the create step's create slots). When that step asks for a key of that purpose
(:meth:`worker.context.StepContext.acquire_key`), the job goes through the gate:

1. It takes a turn in PostgreSQL (``gate_enter``, migrations/0009): with V the smallest turn
   waiting (the current round), a user's next job gets max(V, the user's last waiting turn + 1)
   (start-time fair queueing). The order is (priority DESC, turn, job id): slots go round-robin
   across users, each user's jobs in their own order, a tier's priority before fairness. A new
   user's job lands in the current round, right behind its head. A user's earlier jobs still
   in the steps before the gate count as ahead of the user's later ones. With
   ``FAIR_ORDER=false`` the order is (priority DESC, job id): submit order.
2. A job with fewer jobs ahead of it than the window (one per account; more where the limit
   is so high that a quarter second's slots are more) enters the window in the same statement
   and asks the key pool for a key (Redis pacing, as before), still counted ahead of the jobs
   behind it, so none slips past it into a slot that is freeing. With the key it leaves the line
   (``gate_pass``), and the job that now stands at the window's last place is made due and
   woken, so no slot is lost to a sleeping job. Paced out, the job
   goes back in line with its turn and sleeps until the slot frees, plus its place in the
   window (jobs ahead / slots per second). A job further back sleeps in PostgreSQL (a queued
   row with ``next_run_at``) until about its turn: (jobs ahead - window + 1) / the accounts'
   slots per second.
3. A job that passed keeps its row (``passed_at``) for a day, for the wait percentiles and the
   typical times; a job that ends while waiting leaves the line with it (a trigger).

Every process, on every host, reads and writes the same rows, so the order holds across them
and survives restarts. The framework knows no provider: the kind names them.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from worker.admission import Admission
from worker.config import ApiKey
from worker.errors import NoKeyAvailable
from worker.kinds import Gate
from worker.metrics import GATE_WAIT_SECONDS
from worker.sql import gate as q

if TYPE_CHECKING:
    from worker.context import StepContext
    from worker.services import Services

log = logging.getLogger(__name__)

#: The shortest and the longest sleep of a job waiting for its turn (a job that took a slot
#: wakes the next in line anyway).
MIN_WAIT_SECONDS = 0.25
MAX_WAIT_SECONDS = 3600.0
#: How long the rows of jobs that passed are kept (wait percentiles, typical times).
KEEP_PASSED_SECONDS = 86400.0
#: How often one process prunes them.
PRUNE_EVERY_SECONDS = 600.0
#: How often a worker passing the gate refreshes the backlog gauges.
GAUGES_EVERY_SECONDS = 5.0


class FairGate:
    """The gate of every kind, for one worker process (``Services.extension``)."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.settings = services.settings
        self.admission = Admission(services.settings, services.db)
        self._pruned: dict[str, float] = {}
        self._gauges: dict[str, float] = {}

    def acquire(self, ctx: StepContext, gate: Gate) -> ApiKey:
        """A key for the gate's purpose once it is the job's turn; until then
        :class:`NoKeyAvailable` with the time to look again (the runtime reschedules the job,
        using no attempt)."""
        kind = ctx.kind
        cap = self.admission.capacity(kind)
        assert cap is not None
        with self.services.db.connection() as conn:
            row = conn.execute(
                q.ENTER,
                {
                    "id": ctx.job_id,
                    "gate": kind.name,
                    "user_id": ctx.claim.user_id,
                    "priority": gate.priority(self.settings, ctx.payload),
                    "fair": self.settings.fair_order,
                    "step": gate.step,
                    "before": list(kind.steps[: kind.steps.index(gate.step)]),
                    "width": cap.width,
                },
            ).fetchone()
        assert row is not None
        ahead = int(row["ahead"])
        for job_id in row["woken"] or []:
            self.services.dispatcher.send(kind.queue, int(job_id), actor=kind.actor(gate.step))
        if not row["passed"]:
            wait = max(MIN_WAIT_SECONDS, cap.seconds_for(ahead - cap.width + 1))
            raise NoKeyAvailable(
                gate.provider,
                time.time() + min(wait, MAX_WAIT_SECONDS),
                f"waiting for its turn at the {gate.provider} {gate.purpose} limit "
                f"({'fair order' if self.settings.fair_order else 'submit order'})",
            )
        try:
            key = self.services.keys.acquire(gate.provider, gate.purpose)
        except NoKeyAvailable as exc:
            # The accounts' window is spent: back in line with its turn, and look again when a
            # slot frees, after the jobs ahead of it in the window (so they go in order).
            with self.services.db.connection() as conn:
                conn.execute(q.UNPASS, {"id": ctx.job_id})
            if exc.retry_at is None:
                raise
            raise NoKeyAvailable(
                exc.provider, exc.retry_at + cap.seconds_for(ahead), exc.reason
            ) from None
        # The key is the job's own: it leaves the line, and the next job is woken.
        with self.services.db.connection() as conn:
            passed = conn.execute(
                q.PASS,
                {
                    "id": ctx.job_id,
                    "gate": kind.name,
                    "fair": self.settings.fair_order,
                    "step": gate.step,
                    "width": cap.width,
                },
            ).fetchone()
        for job_id in (passed["woken"] if passed else None) or []:
            self.services.dispatcher.send(kind.queue, int(job_id), actor=kind.actor(gate.step))
        GATE_WAIT_SECONDS.labels(kind=kind.name).observe(ctx.seconds_since(ctx.created_at))
        self._housekeeping(ctx)
        return key

    def _housekeeping(self, ctx: StepContext) -> None:
        """Now and then: refresh the backlog gauges, prune the rows of long-passed jobs."""
        kind, now = ctx.kind, time.monotonic()
        try:
            if now - self._gauges.get(kind.name, float("-inf")) >= GAUGES_EVERY_SECONDS:
                self._gauges[kind.name] = now
                self.admission.backlog(kind, fresh=True)
            if now - self._pruned.get(kind.name, float("-inf")) >= PRUNE_EVERY_SECONDS:
                self._pruned[kind.name] = now
                with self.services.db.connection() as conn:
                    conn.execute(q.PRUNE, {"gate": kind.name, "seconds": KEEP_PASSED_SECONDS})
        except Exception:  # figures only: never fail the step for them
            log.exception("fair gate housekeeping failed for %s", kind.name)


def acquire(ctx: StepContext, gate: Gate) -> ApiKey:
    """A key of the gate's provider and purpose, in the gate's order (see the module)."""
    services = ctx.services
    fair = services.extension("worker.fair_gate", lambda _settings: FairGate(services))
    return fair.acquire(ctx, gate)
