"""A step due right after another runs on the same thread under a fresh claim, instead of a
round trip through the broker; while the process drains it goes through the broker again."""

from __future__ import annotations

import json
import time

from tests.pipeline.conftest import Pipeline
from worker import lifecycle
from worker.context import StepContext
from worker.kinds import JobKind
from worker.outcomes import Next, Outcome, Succeed
from worker.runner import WorkerProcess
from worker.runtime import MAX_CHAINED_STEPS, Runtime


def _wakeups(w: WorkerProcess) -> list[str]:
    """The actors of the wake-up messages waiting on the video queue (ready or delayed)."""
    ns, client = w.broker.namespace, w.broker.client
    found = []
    for table in (f"{ns}:video.msgs", f"{ns}:video.DQ.msgs"):
        found += [json.loads(m)["actor_name"] for m in client.hvals(table)]
    return sorted(found)


def _job(p: Pipeline, job: int) -> dict[str, object]:
    row = p.db.fetchone("SELECT status, step, claims, lease_owner FROM jobs WHERE id = %s", (job,))
    assert row is not None
    return row


def test_steps_due_at_once_run_back_to_back_on_one_message(
    pipeline: Pipeline, worker: WorkerProcess
) -> None:
    (job,) = pipeline.submit(1, credits=1, chat_id=11)
    assert worker.runtime.execute("video", "photo", job) == "next"

    # photo (a link: nothing to fetch), prompt, then submit under a third claim; the poll is
    # delayed, so it goes via the broker.
    assert _job(pipeline, job) == {
        "status": "queued",
        "step": "poll",
        "claims": 3,
        "lease_owner": None,
    }
    assert _wakeups(worker) == ["video.photo", "video.poll"]  # the submit's, never consumed
    assert pipeline.events(job) == ["submitted", "prompt written", "task created"]

    # poll finds the video ready and deliver runs right after it; the job ends on this message.
    deadline = time.monotonic() + 10
    label = "noop"
    while label == "noop" and time.monotonic() < deadline:
        time.sleep(0.2)
        label = worker.runtime.execute("video", "poll", job)
    assert label == "succeeded"
    assert _job(pipeline, job)["claims"] == 5
    assert _wakeups(worker) == ["video.photo", "video.poll"]  # none for deliver
    view = pipeline.client.job(job)
    assert (view["status"], view["credits"]) == ("succeeded", "captured")
    assert [e["event"] for e in view["events"]][-3:] == ["video ready", "stored", "succeeded"]
    assert [m["method"] for m in pipeline.messages(11)] == ["sendVideo"]
    assert pipeline.paid_creates() == 1
    assert pipeline.ledger_ok()


def test_a_draining_worker_hands_the_next_step_to_the_broker(
    pipeline: Pipeline, worker: WorkerProcess
) -> None:
    (job,) = pipeline.submit(2, credits=1)
    worker.runtime.draining.set()
    assert worker.runtime.execute("video", "photo", job) == "next"
    assert _job(pipeline, job) == {
        "status": "queued",
        "step": "prompt",
        "claims": 1,
        "lease_owner": None,
    }
    assert _wakeups(worker) == ["video.photo", "video.prompt"]
    assert pipeline.paid_creates() == 0


def test_a_step_that_lost_its_claim_cannot_go_on(pipeline: Pipeline) -> None:
    (job,) = pipeline.submit(3, credits=1)
    with pipeline.db.connection() as conn:
        stale = lifecycle.claim(conn, job, "photo", "stalled", 30)
        assert stale is not None
        conn.execute("UPDATE jobs SET claims = claims + 1 WHERE id = %s", (job,))  # taken over
        moved = lifecycle.advance(
            conn, stale, step="prompt", lease_seconds=30, change=lifecycle.Change()
        )
        assert moved is None
    assert _job(pipeline, job)["step"] == "photo"
    assert pipeline.events(job) == ["submitted"]


# A kind of six steps that each go straight on: more than one message may run.
STEPS = ("a", "b", "c", "d", "e", "f")


def _go_on(ctx: StepContext) -> Outcome:
    following = STEPS.index(ctx.claim.step) + 1
    if following == len(STEPS):
        return Succeed(None, detail="all steps ran")
    return Next(STEPS[following], event=f"{ctx.claim.step} done")


HANDLERS = dict.fromkeys(STEPS, _go_on)

CHAIN = JobKind(
    name="chain",
    steps=STEPS,
    validate=lambda request, settings: dict(request),
    price=lambda settings, payload: 0,
    deadline=lambda settings, payload: 600.0,
    handlers_module=__name__,
)


def test_a_chain_stops_at_the_cap_and_goes_on_through_the_broker(
    pipeline: Pipeline, worker: WorkerProcess
) -> None:
    runtime = Runtime(worker.services, {"chain": CHAIN})
    job = pipeline.submit_kind("chain", "a", 4, {})

    assert runtime.execute("chain", "a", job) == "next"
    assert len(STEPS) > MAX_CHAINED_STEPS
    cap = STEPS[MAX_CHAINED_STEPS]  # the first step the chain leaves to the broker
    assert _job(pipeline, job) == {
        "status": "queued",
        "step": cap,
        "claims": MAX_CHAINED_STEPS,
        "lease_owner": None,
    }
    ns, client = worker.broker.namespace, worker.broker.client
    assert [json.loads(m)["actor_name"] for m in client.hvals(f"{ns}:chain.msgs")] == [
        f"chain.{cap}"
    ]

    assert runtime.execute("chain", cap, job) == "succeeded"
    assert pipeline.events(job) == [
        "submitted",
        *(f"{s} done" for s in STEPS[:-1]),
        "succeeded",
    ]
