"""Leases, fencing and the maintenance loop, one mechanism at a time."""

from __future__ import annotations

import time

import httpx
import redis

from tests.pipeline.conftest import Pipeline, wait_for
from worker import lifecycle
from worker.dispatch import Dispatcher
from worker.errors import ErrorClass
from worker.kinds import all_kinds
from worker.maintenance import Maintenance
from worker.notifications import Notifications
from worker.policy import Backoff


def _maintenance(p: Pipeline, dispatcher: Dispatcher | None = None) -> Maintenance:
    from worker.broker import make_broker

    d = dispatcher or Dispatcher(make_broker(p.settings))
    notes = Notifications(p.db, None, d, Backoff(0.1, 0.2))
    return Maintenance(p.settings, p.db, d, {k.name: k for k in all_kinds()}, notes)


def test_a_stalled_worker_cannot_write_after_its_lease_was_taken(pipeline: Pipeline) -> None:
    (job,) = pipeline.submit(1, credits=1)
    with pipeline.db.transaction() as conn:
        stale = lifecycle.claim(conn, job, "photo", "stalled-worker", 0.2)
    assert stale is not None
    time.sleep(0.5)  # the stalled worker misses its heartbeats
    m = _maintenance(pipeline)
    assert m.elect()
    assert m.tick().rescued == 1
    with pipeline.db.transaction() as conn:
        fresh = lifecycle.claim(conn, job, "photo", "new-worker", 30)
        assert fresh is not None and fresh.token == stale.token + 1
        # The stalled worker wakes up: every write it tries is refused by the fence.
        task = lifecycle.Change(provider_task_id="task_dup", key_name="k1")
        assert not lifecycle.record(conn, stale, task)
        assert (
            lifecycle.reschedule(
                conn, stale, step="submit", delay=0, attempts=0, change=lifecycle.Change()
            )
            is None
        )
        assert not lifecycle.succeed(conn, stale, result="x")
        assert not lifecycle.fail(
            conn, stale, error_class=ErrorClass.TEMPORARY, error="x", user_error="x"
        )
    job_view = pipeline.client.job(job)
    assert (job_view["status"], job_view["credits"], job_view["provider_task_id"]) == (
        "running",
        "held",
        None,
    )
    assert [e["event"] for e in job_view["events"]] == ["submitted", "rescued"]
    m.stop()


def _rescue_in(pipeline: Pipeline, job: int, step: str) -> lifecycle.Claim:
    """A worker claims ``job`` (going on to ``step`` with a written prompt, as a chained run
    does) and dies there: its lease runs out and the maintenance loop takes the job back."""
    with pipeline.db.transaction() as conn:
        dying = lifecycle.claim(conn, job, "photo", "dying-worker", 0.2)
        assert dying is not None
        if step != "photo":
            dying = lifecycle.advance(
                conn,
                dying,
                step=step,
                lease_seconds=0.2,
                change=lifecycle.Change(state={"prompt": "A slow push-in on a red ceramic mug."}),
            )
            assert dying is not None
    time.sleep(0.5)
    m = _maintenance(pipeline)
    assert m.elect()
    assert m.tick().rescued == 1
    m.stop()
    return dying


def test_a_job_whose_worker_died_while_creating_its_task_is_refunded_not_paid_twice(
    pipeline: Pipeline,
) -> None:
    (job,) = pipeline.submit(5, credits=1, chat_id=5005)
    dying = _rescue_in(pipeline, job, "submit")
    # Before it died, the worker's createTask reached KIE, which created (and charged) the task;
    # the task id never reached the database.
    accepted = httpx.post(
        f"{pipeline.sim.kie_url}/api/v1/jobs/createTask",
        headers={"Authorization": "Bearer sim-kie-1"},
        json={
            "model": "bytedance/seedance-2-mini",
            "input": {
                "prompt": "A slow push-in",
                "first_frame_url": "https://example.test/p.jpg",
                "duration": 5,
            },
        },
    )
    assert accepted.json()["code"] == 200 and pipeline.paid_creates() == 1

    pipeline.start_worker()
    (done,) = pipeline.wait([job], timeout=30)
    assert (done["status"], done["error_class"], done["credits"]) == (
        "failed",
        "TEMPORARY",
        "refunded",
    )
    assert "never paid twice" in done["error"] and done["provider_task_id"] is None
    assert pipeline.paid_creates() == 1  # the rescued run did not create another
    events = [e["event"] for e in done["events"]]
    assert events.index("rescued") < events.index("failed"), events
    (message,) = pipeline.messages(5005)
    assert message["method"] == "sendMessage"
    with pipeline.db.transaction() as conn:
        row = conn.execute(
            "SELECT claims, rescued_claim FROM jobs WHERE id = %s", (job,)
        ).fetchone()
    assert row is not None and row["rescued_claim"] == dying.token < row["claims"]
    assert pipeline.ledger_ok()


def test_a_job_rescued_before_any_paid_request_runs_again_and_succeeds(
    pipeline: Pipeline,
) -> None:
    (job,) = pipeline.submit(6, credits=1)
    _rescue_in(pipeline, job, "prompt")
    pipeline.start_worker()
    (done,) = pipeline.wait([job], timeout=30)
    assert (done["status"], done["credits"]) == ("succeeded", "captured"), done["events"]
    assert "rescued" in [e["event"] for e in done["events"]]
    assert pipeline.paid_creates() == 1


def test_a_poison_job_fails_and_refunds_after_the_rescue_cap(pipeline: Pipeline) -> None:
    pipeline.reconfigure(max_rescues=2)
    (job,) = pipeline.submit(2, credits=1)
    m = _maintenance(pipeline)
    assert m.elect()
    for _ in range(3):  # each claim "dies" (its lease simply runs out)
        with pipeline.db.transaction() as conn:
            assert lifecycle.claim(conn, job, "photo", "doomed", 0.1) is not None
        time.sleep(0.3)
        m.tick()
    done = pipeline.client.job(job)
    assert (done["status"], done["error_class"], done["credits"]) == (
        "failed",
        "INTERNAL",
        "refunded",
    )
    assert [e["event"] for e in done["events"]].count("rescued") == 2
    assert "poison" in done["error"]
    m.stop()


def test_lost_messages_are_redispatched(pipeline: Pipeline) -> None:
    pipeline.reconfigure(redispatch_after_seconds=1.0)
    jobs = pipeline.submit(3, count=3, credits=3)
    assert pipeline.client.dispatcher.flush()
    # Redis restarted and lost every queued message:
    r = redis.Redis.from_url(pipeline.settings.redis_url)
    for key in r.scan_iter(f"{pipeline.settings.redis_namespace}:q:*"):
        r.delete(key)
    pipeline.start_worker()
    done = pipeline.wait(jobs, timeout=40)
    assert [j["status"] for j in done] == ["succeeded"] * 3
    assert all("redispatched" in [e["event"] for e in j["events"]] for j in done)


def test_a_backlog_waiting_in_redis_is_not_sent_again(pipeline: Pipeline) -> None:
    """Behind a backlog the messages wait in Redis, not lost: maintenance sends none again (it
    used to re-send every due job after 30 s, lengthening the queue it was behind). Once some are
    really lost, it sends exactly those the queue cannot account for."""
    pipeline.reconfigure(redispatch_after_seconds=0.5)
    jobs = pipeline.submit(7, count=3, credits=3)
    assert pipeline.client.dispatcher.flush()
    time.sleep(1.0)  # due, undispatched for longer than REDISPATCH_AFTER_SECONDS, no worker yet
    m = _maintenance(pipeline)
    assert m.elect()
    assert m.tick().redispatched == 0  # three due jobs, three messages waiting
    r = redis.Redis.from_url(pipeline.settings.redis_url)
    queue = f"{pipeline.settings.redis_namespace}:q:video"
    assert r.llen(queue) == 3
    r.rpop(queue)  # one message lost
    assert m.tick().redispatched == 1
    assert r.llen(queue) == 3
    m.stop()
    pipeline.start_worker()
    done = pipeline.wait(jobs, timeout=40)
    assert [j["status"] for j in done] == ["succeeded"] * 3


def test_submit_while_the_broker_is_down_runs_once_it_is_back(pipeline: Pipeline) -> None:
    down = pipeline.settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"})
    from worker.client import Client

    with Client(down, db=pipeline.db) as c:
        c.grant(4, 1)
        (job,) = c.submit_video(
            user_id=4, product={"title": "Mug", "image_url": "https://x.test/a.jpg"}
        ).job_ids
    pipeline.reconfigure(redispatch_after_seconds=1.0)
    pipeline.start_worker()
    (done,) = pipeline.wait([job], timeout=40)
    assert done["status"] == "succeeded"


def test_only_one_process_leads_and_another_takes_over(pipeline: Pipeline) -> None:
    a, b = _maintenance(pipeline), _maintenance(pipeline)
    assert a.elect() and not b.elect()
    a.stop()  # the leader dies: its connection closes and the lock is released
    assert b.elect()
    b.stop()


def test_an_open_hold_on_a_terminal_job_is_resolved(pipeline: Pipeline) -> None:
    ok, bad = pipeline.submit(5, count=1, credits=2) + pipeline.submit(6, count=1, credits=1)
    with pipeline.db.transaction() as conn:  # status moved by hand, money not: a bug's footprint
        conn.execute(
            "UPDATE jobs SET status = 'succeeded', finished_at = now() WHERE id = %s", (ok,)
        )
        conn.execute("UPDATE jobs SET status = 'failed', finished_at = now() WHERE id = %s", (bad,))
    assert not pipeline.ledger_ok()
    m = _maintenance(pipeline)
    assert m.elect() and m.tick().holds_resolved == 2
    assert pipeline.ledger_ok()
    assert (pipeline.client.job(ok)["credits"], pipeline.client.job(bad)["credits"]) == (
        "captured",
        "refunded",
    )
    m.stop()


def test_a_queued_job_past_its_deadline_fails_and_refunds(pipeline: Pipeline) -> None:
    pipeline.reconfigure(video_deadline_seconds=0.5)
    (job,) = pipeline.submit(7, credits=1)
    time.sleep(0.8)
    m = _maintenance(pipeline)
    assert m.elect() and m.tick().expired == 1
    done = pipeline.client.job(job)
    assert (done["status"], done["credits"]) == ("failed", "refunded")
    assert "took too long" in done["error"]
    m.stop()


def test_malformed_provider_answers_are_classified_not_crashes(pipeline: Pipeline) -> None:
    pipeline.sim.configure({"kie": {"rate_malformed": 1.0}})
    pipeline.start_worker()
    (job,) = pipeline.submit(8, credits=1)
    (done,) = pipeline.wait([job])
    assert (done["status"], done["error_class"], done["credits"]) == (
        "failed",
        "TEMPORARY",
        "refunded",
    )
    assert "malformed" in done["error"].lower()


def test_an_html_page_served_as_the_video_is_retried_then_refused(pipeline: Pipeline) -> None:
    pipeline.sim.configure({"kie": {"rate_malformed_result": 1.0}})
    pipeline.start_worker()
    (job,) = pipeline.submit(9, credits=1)
    (done,) = pipeline.wait([job])
    assert (done["status"], done["error_class"], done["credits"]) == (
        "failed",
        "TEMPORARY",
        "refunded",
    )
    assert "text/html" in done["error"]
    assert pipeline.paid_creates() == 1  # the download is retried, never the paid creation


def test_an_outbox_message_whose_wake_up_was_lost_is_sent(pipeline: Pipeline) -> None:
    pipeline.reconfigure(redispatch_after_seconds=1.0)
    pipeline.sim.configure({"openai": {"rate_5xx": 1.0}})  # the job will fail for good
    pipeline.sim.configure({"telegram": {"rate_5xx": 1.0}})  # and its message cannot go out yet
    worker = pipeline.start_worker()
    (job,) = pipeline.submit(10, credits=1)
    wait_for(
        lambda: pipeline.db.fetchone(
            "SELECT 1 FROM notifications WHERE job_id = %s AND status = 'retry'", (job,)
        ),
        30,
        "the failure message in retry",
    )
    # Redis loses the delayed wake-up of the retry; Telegram recovers.
    r = redis.Redis.from_url(pipeline.settings.redis_url)
    for key in r.scan_iter(f"{pipeline.settings.redis_namespace}:q:notify*"):
        r.delete(key)
    pipeline.sim.configure({"telegram": {"rate_5xx": 0.0}})
    assert worker.maintenance.is_leader  # the worker's own maintenance loop must notice
    (msg,) = wait_for(lambda: pipeline.messages(10), 30, "the failure message")
    assert "refunded" in msg["text"]


def test_a_result_message_in_retry_is_never_taken_by_the_outbox(pipeline: Pipeline) -> None:
    """Found by the chaos suite: the deliver step's own message (the video) hit a 429, Redis then
    lost the step's delayed wake-up, and the outbox re-dispatch sent the caption as a text."""
    pipeline.reconfigure(redispatch_after_seconds=0.5)
    pipeline.sim.configure({"telegram": {"rate_429": 1.0, "retry_after_seconds": 2}})
    worker = pipeline.start_worker()
    (job,) = pipeline.submit(11, credits=1)
    wait_for(
        lambda: pipeline.db.fetchone(
            "SELECT 1 FROM notifications WHERE job_id = %s AND kind = 'result'"
            " AND status = 'retry'",
            (job,),
        ),
        30,
        "the result message in retry",
    )
    r = redis.Redis.from_url(pipeline.settings.redis_url)  # Redis restarts: wake-ups lost
    for key in r.scan_iter(f"{pipeline.settings.redis_namespace}:q:*"):
        r.delete(key)
    time.sleep(2.0)  # several maintenance ticks with the row in 'retry'
    pipeline.sim.configure({"telegram": {"rate_429": 0.0}})
    (done,) = pipeline.wait([job], timeout=40)
    assert done["status"] == "succeeded"
    assert [m["method"] for m in pipeline.messages(11)] == ["sendVideo"]
    assert worker.maintenance.is_leader


def test_a_result_message_left_in_retry_is_given_up_when_the_job_fails(
    pipeline: Pipeline,
) -> None:
    """Found by the chaos suite: the deliver step's video hit Telegram errors until the job
    failed, and its row said 'retry' forever although nothing would ever retry it."""
    pipeline.sim.configure({"telegram": {"rate_5xx": 1.0}})
    pipeline.start_worker()
    (job,) = pipeline.submit(12, credits=1)
    row = wait_for(
        lambda: pipeline.db.fetchone(
            "SELECT status, step FROM jobs WHERE id = %s AND status = 'failed'", (job,)
        ),
        60,
        "the job failed",
    )
    assert (row["status"], row["step"]) == ("failed", "deliver")
    result = pipeline.db.fetchone(
        "SELECT status, detail FROM notifications WHERE job_id = %s AND kind = 'result'", (job,)
    )
    assert result is not None
    assert (result["status"], result["detail"]) == (
        "undeliverable",
        "gave up: the job failed before the message could be sent again",
    )
    pipeline.sim.configure({"telegram": {"rate_5xx": 0.0}})  # the failure message goes out
    (done,) = pipeline.wait([job], timeout=60)
    assert done["credits"] == "refunded"
    assert [m["method"] for m in pipeline.messages(12)] == ["sendMessage"]
