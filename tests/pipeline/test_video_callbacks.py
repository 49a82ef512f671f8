"""KIE callbacks end to end: the simulator calls back when a task ends, `worker webhooks`
(in a thread, over real HTTP) makes the job's poll due, a real Dramatiq worker polls once and
delivers. Lost, duplicated, forged and early callbacks never lose a video, send it twice or
pay for it twice."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest

from tests.conftest import RunningWebhooks
from tests.pipeline.conftest import Pipeline, wait_for

HMAC_KEY = "pipeline-webhook-hmac-key"


@pytest.fixture
def callbacks(pipeline: Pipeline) -> Iterator[RunningWebhooks]:
    """`worker webhooks` on the pipeline's database and Redis; the workers started afterwards
    give KIE its URL. The safety-net poll is a minute away unless a test shortens it."""
    running = RunningWebhooks(pipeline.settings)
    pipeline.reconfigure(
        kie_callback_url=f"{running.url}/callbacks/video/kie", kie_safety_poll_seconds=60.0
    )
    yield running
    running.stop()


def _at(job: dict[str, Any], event: str) -> datetime:
    return datetime.fromisoformat(next(e["at"] for e in job["events"] if e["event"] == event))


def _detail(job: dict[str, Any], event: str) -> str:
    return str(next(e["detail"] for e in job["events"] if e["event"] == event))


def test_a_callback_delivers_the_video_after_a_single_poll(
    pipeline: Pipeline, callbacks: RunningWebhooks
) -> None:
    pipeline.sim.configure({"kie": {"render_seconds": 1.5}})
    pipeline.start_worker()
    jobs = pipeline.submit(1, count=3, credits=3)
    done = pipeline.wait(jobs, timeout=20)  # the safety-net poll would take a minute
    assert [j["status"] for j in done] == ["succeeded"] * 3
    for job in done:
        # The last of the three to end also sent the request's summary.
        events = [e["event"] for e in job["events"] if e["event"] != "summary message sent"]
        assert events == [
            "submitted",
            "prompt written",
            "task created",
            "callback",
            "video ready",
            "stored",
            "succeeded",
        ]
        assert "(KIE called back)" in _detail(job, "video ready")
        # The video is found as soon as KIE calls back, not on the 2-3 s schedule.
        assert (_at(job, "video ready") - _at(job, "task created")).total_seconds() < 6
    tasks = pipeline.sim.tasks()
    assert [t["polls"] for t in tasks] == [1, 1, 1]
    assert all(
        t["callback_url"].endswith(f"?job={j}")
        for t, j in zip(sorted(tasks, key=lambda t: t["callback_url"]), sorted(jobs), strict=True)
    )
    assert [m["method"] for m in pipeline.messages(1)] == ["sendVideo"] * 3 + ["sendMessage"]
    assert pipeline.paid_creates() == 3 and pipeline.ledger_ok()


def test_a_task_that_ends_at_once_calls_back_before_its_id_is_recorded(
    pipeline: Pipeline, callbacks: RunningWebhooks
) -> None:
    """With a zero render the callback races createTask's own answer: the receiver waits
    for the submit step's write instead of dropping the callback."""
    pipeline.sim.configure({"kie": {"render_seconds": 0.0}})
    pipeline.start_worker()
    jobs = pipeline.submit(2, count=3, credits=3)
    done = pipeline.wait(jobs, timeout=20)
    assert [j["status"] for j in done] == ["succeeded"] * 3
    assert all("callback" in [e["event"] for e in j["events"]] for j in done)
    assert [t["polls"] for t in pipeline.sim.tasks()] == [1, 1, 1]
    assert pipeline.paid_creates() == 3 and pipeline.ledger_ok()


def test_lost_callbacks_are_found_by_the_safety_net_poll(
    pipeline: Pipeline, callbacks: RunningWebhooks
) -> None:
    pipeline.reconfigure(kie_safety_poll_seconds=2.0)
    pipeline.sim.configure({"kie": {"render_seconds": 1.0, "rate_callback_lost": 1.0}})
    pipeline.start_worker()
    (job,) = pipeline.submit(3, credits=1)
    (done,) = pipeline.wait([job], timeout=20)
    assert done["status"] == "succeeded"
    assert "callback" not in [e["event"] for e in done["events"]]
    assert "found by the safety-net poll: no callback came" in _detail(done, "video ready")
    (task,) = pipeline.sim.tasks()
    assert task["polls"] == 1 and task["callbacks"] == 0  # 1.8-2.2 s > 1 s render


def test_duplicate_callbacks_deliver_and_charge_once(
    pipeline: Pipeline, callbacks: RunningWebhooks
) -> None:
    pipeline.sim.configure({"kie": {"render_seconds": 1.0, "rate_callback_duplicate": 1.0}})
    pipeline.start_worker()
    jobs = pipeline.submit(4, count=3, credits=3)
    done = pipeline.wait(jobs, timeout=20)
    assert [j["status"] for j in done] == ["succeeded"] * 3
    wait_for(lambda: sum(t["callbacks"] for t in pipeline.sim.tasks()) == 6, 5, "the duplicates")
    assert [t["callbacks"] for t in pipeline.sim.tasks()] == [2, 2, 2]
    assert [t["polls"] for t in pipeline.sim.tasks()] == [1, 1, 1]
    assert [m["method"] for m in pipeline.messages(4)] == ["sendVideo"] * 3 + ["sendMessage"]
    assert pipeline.client.balance(4).spent == 3
    assert pipeline.paid_creates() == 3 and pipeline.ledger_ok()


def test_signed_callbacks_are_accepted_and_forged_ones_wake_nothing(
    pipeline: Pipeline,
) -> None:
    pipeline.reconfigure(kie_webhook_hmac_key=HMAC_KEY, kie_safety_poll_seconds=2.0)
    running = RunningWebhooks(pipeline.settings)
    try:
        pipeline.reconfigure(kie_callback_url=f"{running.url}/callbacks/video/kie")
        pipeline.sim.configure({"kie": {"render_seconds": 1.0, "webhook_hmac_key": HMAC_KEY}})
        pipeline.start_worker()
        (signed,) = pipeline.submit(5, credits=2)
        (done,) = pipeline.wait([signed], timeout=20)
        assert "callback" in [e["event"] for e in done["events"]]
        # Every callback now carries a wrong signature: refused, and found by the safety net.
        pipeline.sim.configure({"kie": {"rate_callback_bad_signature": 1.0}})
        (forged,) = pipeline.submit(5)
        (done,) = pipeline.wait([forged], timeout=20)
        assert done["status"] == "succeeded"
        assert "callback" not in [e["event"] for e in done["events"]]
        refused = [c for c in pipeline.sim.callbacks() if c["fault"] == "bad_signature"]
        assert refused and all(c["status"] == 401 for c in refused)
        assert pipeline.ledger_ok()
    finally:
        running.stop()


def test_a_task_refused_by_content_policy_fails_by_callback_and_is_refunded(
    pipeline: Pipeline, callbacks: RunningWebhooks
) -> None:
    pipeline.sim.configure(
        {"openai": {"content_policy_marker": "NOTHING-MATCHES"}, "kie": {"render_seconds": 2.0}}
    )
    pipeline.start_worker()
    (job,) = pipeline.submit(6, credits=1, title="FORBIDDEN product")
    (done,) = pipeline.wait([job], timeout=20)
    assert (done["status"], done["error_class"], done["credits"]) == (
        "failed",
        "USER_ERROR",
        "refunded",
    )
    assert "callback" in [e["event"] for e in done["events"]]
    (task,) = pipeline.sim.tasks()
    assert task["polls"] == 1
    assert pipeline.client.balance(6).available == 1 and pipeline.ledger_ok()


def test_a_callback_ahead_of_record_info_brings_early_polls_not_the_safety_net(
    pipeline: Pipeline, callbacks: RunningWebhooks
) -> None:
    """KIE's callback says the task ended, but recordInfo still shows it rendering (KIE's own
    systems disagreeing for a moment, or a forgery): the job polls again in 2-3 s, not in
    the safety net's two minutes."""
    import httpx

    pipeline.sim.configure({"kie": {"render_seconds": 60.0}})
    pipeline.start_worker()
    (job,) = pipeline.submit(7, credits=1)
    row = wait_for(
        lambda: pipeline.db.fetchone(
            "SELECT provider_task_id FROM jobs WHERE id = %s AND step = 'poll'"
            " AND status = 'queued'",
            (job,),
        ),
        15,
        "the task",
    )
    task_id = row["provider_task_id"]
    early = {"code": 200, "msg": "success", "data": {"taskId": task_id, "state": "success"}}
    answer = httpx.post(f"{callbacks.url}/callbacks/video/kie", params={"job": job}, json=early)
    assert answer.status_code == 200

    def re_polling() -> bool:
        events = pipeline.client.job(job)["events"]
        return any("though KIE called back" in e["detail"] for e in events)

    wait_for(re_polling, 10, "an early poll after the callback")
    due = pipeline.db.fetchone(
        "SELECT extract(epoch FROM next_run_at - now()) AS s FROM jobs WHERE id = %s", (job,)
    )
    assert due is not None and float(due["s"]) < 3.5
    # The render then really ends: its own callback delivers the video.
    pipeline.sim.finish_task(task_id)
    (done,) = pipeline.wait([job], timeout=15)
    assert done["status"] == "succeeded" and pipeline.paid_creates() == 1


def test_tasks_created_without_a_callback_url_keep_kies_schedule(pipeline: Pipeline) -> None:
    """Turning callbacks on or off changes nothing for the tasks already rendering: only a task
    created with a callback URL waits for its callback (and only while callbacks are on)."""
    from jobs.video.steps import expects_callback, next_poll_delay

    off = pipeline.settings
    pipeline.reconfigure(kie_callback_url="https://bot.example.com/callbacks/video/kie")
    on = pipeline.settings
    with_url, without = {"callback_given": True}, {"callback_given": False}
    assert expects_callback(on, with_url) and not expects_callback(on, without)
    assert not expects_callback(off, with_url)  # turned off: the receiver may be gone
    assert 108 <= next_poll_delay(on, with_url, 0) <= 132  # the safety net, 120 s +-10%
    assert 2 <= next_poll_delay(on, without, 0) <= 3  # KIE's early schedule
    assert 2 <= next_poll_delay(off, with_url, 0) <= 3
