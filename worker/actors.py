"""Dramatiq actors: one per (job kind, step), on one queue per kind, plus ``notify`` for the
outbox.

Every actor takes only the job id (``notify`` also the message kind). Their bodies claim the row
and do nothing when the claim fails, so a duplicate or late message is harmless. Dramatiq's own
retries are not used (the broker has no Retries middleware): the policy table decides, and the
jobs table remembers.
"""

from __future__ import annotations

from collections.abc import Callable

import dramatiq

from worker.notifications import QUEUE as NOTIFY_QUEUE
from worker.runtime import Runtime


def _step_actor(runtime: Runtime, kind: str, step: str) -> Callable[[int], None]:
    def run_step(job_id: int) -> None:
        runtime.execute(kind, step, job_id)

    run_step.__name__ = f"{kind}_{step}"
    return run_step


def declare_actors(broker: dramatiq.Broker, runtime: Runtime) -> list[str]:
    """Register the actors on ``broker``; return the queue names this process consumes."""
    queues = []
    for kind in runtime.kinds.values():
        for step in kind.steps:
            dramatiq.Actor(
                _step_actor(runtime, kind.name, step),
                broker=broker,
                actor_name=kind.actor(step),
                queue_name=kind.queue,
                priority=0,
                options={},
            )
        queues.append(kind.queue)

    def notify(job_id: int, kind: str) -> None:
        runtime.services.notifications.deliver(job_id, kind)

    dramatiq.Actor(
        notify,
        broker=broker,
        actor_name=NOTIFY_QUEUE,
        queue_name=NOTIFY_QUEUE,
        priority=0,
        options={},
    )
    queues.append(NOTIFY_QUEUE)
    return queues
