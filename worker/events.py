"""Codes of the timeline events the framework writes.

A job's timeline (``job_events``) has two names for each event: ``event``, the words
`worker jobs show` displays ("waiting for a key"), and ``code``, a stable identifier for
programs ("step.waiting_for_key"). The framework names its codes here; an event a job kind
writes with only its words gets a code derived from them by the database
(``event_code_of``, migrations/0005: "prompt written" is ``prompt_written``).
"""

from __future__ import annotations

import enum


class EventCode(enum.StrEnum):
    SUCCEEDED = "job.succeeded"
    FAILED = "job.failed"
    CANCELLED = "job.cancelled"
    REDISPATCHED = "job.redispatched"
    RESCUED = "job.rescued"
    CALLBACK = "job.callback"
    RETRY = "step.retry"
    WAIT = "step.wait"
    WAITING_FOR_KEY = "step.waiting_for_key"
    ORPHANED_TASK = "task.orphaned"
    HOLD_RESOLVED = "hold.resolved"
    MESSAGE_SENT = "message.sent"
    MESSAGE_RETRY = "message.retry"
    MESSAGE_UNDELIVERABLE = "message.undeliverable"

    @classmethod
    def of_message(cls, status: str) -> EventCode:
        """The code of an event about a user message that ended ``status``."""
        return cls(f"message.{status}")
