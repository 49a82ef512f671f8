"""The states the framework writes and reads, as enums: what a job is, what a user message is,
and what one wake-up message did.

Job and notification statuses are also CHECK constraints in the schema (migrations/0001);
``tests/test_policy_unit.py`` keeps the two lists equal.
"""

from __future__ import annotations

import enum


class JobStatus(enum.StrEnum):
    QUEUED = "queued"  # waiting for its next run time (or a worker)
    RUNNING = "running"  # a step holds the lease
    SUCCEEDED = "succeeded"  # the hold was captured
    FAILED = "failed"  # the hold was refunded
    CANCELLED = "cancelled"  # refunded, by an operator or the bot

    @property
    def terminal(self) -> bool:
        return self in TERMINAL


TERMINAL = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED})


class NotificationStatus(enum.StrEnum):
    PENDING = "pending"  # in the outbox, not sent yet
    SENDING = "sending"  # claimed by a sender: may have been sent, never sent again
    SENT = "sent"
    RETRY = "retry"  # a rate limit or an outage; sent again later
    UNDELIVERABLE = "undeliverable"  # given up (blocked bot, missing chat, too many attempts)
    SKIPPED = "skipped"  # not a row status: nothing to send (already handled, or not due)


class StepOutcome(enum.StrEnum):
    """What one wake-up message of a step actor did (the ``outcome`` label of the step metrics)."""

    NOOP = "noop"  # the claim failed: not due, not at this step, or already taken
    DB_ERROR = "db-error"  # the claim could not be made; the dispatcher sends it again
    NEXT = "next"  # moved on to the next step
    AGAIN = "again"  # the same step later, no attempt used (polling)
    RETRY = "retry"  # the same step later, one attempt used
    WAIT = "wait"  # the same step later, no attempt used (a rate limit, a quarantined key)
    WAITING_FOR_KEY = "waiting for a key"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    LEASE_LOST = "lease-lost"  # the job was taken over while the step ran; results discarded


class WakeOutcome(enum.StrEnum):
    """What a provider's callback did to the job it names (``worker.webhooks.wake``)."""

    WOKEN = "woken"  # the job was waiting for the task: due now, a wake-up message follows
    DUE = "due"  # it was already due
    RUNNING = "running"  # its step is running (the safety-net poll will find the task)
    STALE = "stale"  # the job waits for another task
    MOVED = "moved"  # the job is at another step
    FINISHED = "finished"  # the job has ended
    UNKNOWN = "unknown"  # no such job of this kind
