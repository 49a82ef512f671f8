"""A job ends in one place: the runtime, maintenance and cancel end jobs through the same
database function, so what ending a job does (the hold, the event, the user's message, a result
message nobody will retry) cannot drift between them."""

from __future__ import annotations

import time

from tests.pipeline.conftest import Pipeline
from worker.dispatch import Dispatcher
from worker.kinds import all_kinds
from worker.maintenance import Maintenance
from worker.notifications import Notifications
from worker.policy import Backoff


def _maintenance(p: Pipeline) -> Maintenance:
    from worker.broker import make_broker

    d = Dispatcher(make_broker(p.settings))
    notes = Notifications(p.db, None, d, Backoff(0.1, 0.2))
    return Maintenance(p.settings, p.db, d, {k.name: k for k in all_kinds()}, notes)


def _result_message_in_retry(p: Pipeline, job: int) -> None:
    """The deliver step's own message (the video) hit an error and waits for that step."""
    with p.db.transaction() as conn:
        conn.execute(
            "INSERT INTO notifications (job_id, kind, chat_id, status, text, attempts, outbox)"
            " SELECT id, 'result', chat_id, 'retry', 'video', 1, false FROM jobs WHERE id = %s",
            (job,),
        )


def _result_message(p: Pipeline, job: int) -> tuple[str, str]:
    row = p.db.fetchone(
        "SELECT status, detail FROM notifications WHERE job_id = %s AND kind = 'result'", (job,)
    )
    assert row is not None
    return row["status"], row["detail"]


def test_a_job_failed_by_its_deadline_gives_up_its_result_message(pipeline: Pipeline) -> None:
    pipeline.reconfigure(video_deadline_seconds=0.5)
    (job,) = pipeline.submit(31, credits=1)
    _result_message_in_retry(pipeline, job)
    time.sleep(0.8)
    m = _maintenance(pipeline)
    assert m.elect() and m.tick().expired == 1
    m.stop()
    done = pipeline.client.job(job)
    assert (done["status"], done["credits"]) == ("failed", "refunded")
    assert _result_message(pipeline, job) == (
        "undeliverable",
        "gave up: the job failed before the message could be sent again",
    )
    failure = pipeline.db.fetchone(
        "SELECT status, outbox FROM notifications WHERE job_id = %s AND kind = 'failure'", (job,)
    )
    assert failure is not None and failure["outbox"]
    # The deadline's text is written once, on the job and on its "failed" event alike.
    events = [e for e in done["events"] if e["event"] == "failed"]
    assert len(events) == 1
    assert done["error"].count("took too long") == 1
    assert events[0]["detail"].count("took too long") == 1


def test_a_cancelled_job_gives_up_its_result_message(pipeline: Pipeline) -> None:
    (job,) = pipeline.submit(32, credits=1)
    _result_message_in_retry(pipeline, job)
    done = pipeline.client.cancel(job, reason="changed my mind")
    assert (done["status"], done["credits"]) == ("cancelled", "refunded")
    assert _result_message(pipeline, job) == (
        "undeliverable",
        "gave up: the job cancelled before the message could be sent again",
    )
    (event,) = [e for e in done["events"] if e["event"] == "cancelled"]
    assert event["detail"] == "changed my mind; 1 credit(s) refunded"
