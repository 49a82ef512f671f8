"""What a step handler returns, and the plan the runtime turns every outcome into.

A handler does one exchange and says what comes next: :class:`Next` (another step),
:class:`Again` (this step later, polling), :class:`Succeed` or :class:`Fail`. The runtime turns
``Next``, ``Again`` and the policy's retries and waits into one :class:`Plan` (which step, when,
with which attempt count, and the :class:`~worker.lifecycle.Change` to write), and ``Succeed``
and ``Fail`` into an :class:`~worker.lifecycle.Ending`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from worker.errors import ProviderError
from worker.events import EventCode
from worker.lifecycle import Change
from worker.status import StepOutcome

if TYPE_CHECKING:
    from worker.context import StepContext


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

    @property
    def change(self) -> Change:
        return Change(
            state=self.state,
            provider_task_id=self.provider_task_id,
            key_name=self.key_name,
            clear_task=self.clear_task,
            event=self.event or None,
            detail=self.detail,
        )


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


@dataclass(frozen=True)
class Plan:
    """How the runtime reschedules a claimed job: run ``step`` (None: the same one) after
    ``delay`` seconds with ``attempts`` used, writing ``change``; ``error`` (if any) becomes the
    job's last error. Every reschedule is one: a next step, a poll, a retry, a wait."""

    outcome: StepOutcome
    delay: float
    attempts: int
    change: Change
    step: str | None = None
    error: ProviderError | None = None

    @classmethod
    def of(cls, outcome: Next | Again, attempts: int) -> Plan:
        """The plan of a handler's :class:`Next` or :class:`Again`."""
        if isinstance(outcome, Next):
            return cls(StepOutcome.NEXT, outcome.delay, 0, outcome.change, step=outcome.step)
        change = Change(state=outcome.state, event=outcome.event or None, detail=outcome.detail)
        return cls(StepOutcome.AGAIN, outcome.delay, attempts, change)

    @classmethod
    def same_step(
        cls,
        outcome: StepOutcome,
        delay: float,
        attempts: int,
        *,
        event: str | None,
        code: EventCode | None,
        detail: str,
        error: ProviderError | None = None,
        state: dict[str, Any] | None = None,
    ) -> Plan:
        """Run the same step again (a retry or a wait the policy decided)."""
        change = Change(state=state or {}, event=event, detail=detail, code=code)
        return cls(outcome, delay, attempts, change, error=error)


class LeaseLost(Exception):
    """The claim was taken over (rescued) while the step ran; its results are discarded."""


class StepHandler(Protocol):
    def __call__(self, ctx: StepContext, /) -> Outcome: ...
