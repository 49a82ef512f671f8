"""The video pipeline end to end: every error class ends as the policy table says, with exact
final balances, one final message per job, and a timeline that tells the story in order."""

from __future__ import annotations

import time
from datetime import datetime

from tests.pipeline.conftest import Pipeline
from worker.dispatch import Dispatcher


def test_happy_path_count_1_and_3(pipeline: Pipeline) -> None:
    pipeline.start_worker()
    one = pipeline.submit(1, credits=5)
    group = -1001234567890  # bought in a Telegram supergroup: the videos go there
    three = pipeline.submit(2, count=3, credits=3, chat_id=group)
    jobs = pipeline.wait(one + three)
    assert [j["status"] for j in jobs] == ["succeeded"] * 4
    assert all(j["credits"] == "captured" and j["result"] for j in jobs)
    assert len({j["request_id"] for j in jobs[1:]}) == 1
    assert pipeline.client.balance(1).as_dict() == {
        "user_id": 1,
        "available": 4,
        "held": 0,
        "spent": 1,
        "refunded": 0,
    }
    assert pipeline.client.balance(2).as_dict() == {
        "user_id": 2,
        "available": 0,
        "held": 0,
        "spent": 3,
        "refunded": 0,
    }
    assert [m["method"] for m in pipeline.messages(1)] == ["sendVideo"]
    # The three videos, then the request's summary (tests/pipeline/test_request_messages.py).
    assert [m["method"] for m in pipeline.messages(group)] == ["sendVideo"] * 3 + ["sendMessage"]
    assert pipeline.events(one[0]) == [
        "submitted",
        "prompt written",
        "task created",
        "video ready",
        "stored",
        "succeeded",
    ]
    assert pipeline.paid_creates() == 4
    assert pipeline.ledger_ok()


def test_the_first_poll_waits_for_kie_first_poll_seconds(pipeline: Pipeline) -> None:
    # Renders take 1 s here; KIE's schedule would poll after 2-3 s, this setting after 4.
    pipeline.reconfigure(kie_first_poll_seconds=4.0)
    pipeline.start_worker()
    (job,) = pipeline.submit(3, credits=1)
    (done,) = pipeline.wait([job], timeout=30)
    assert done["status"] == "succeeded"
    at = {e["event"]: datetime.fromisoformat(e["at"]) for e in done["events"]}
    assert (at["video ready"] - at["task created"]).total_seconds() >= 4.0
    (task,) = pipeline.sim.tasks()
    assert task["polls"] == 1  # one poll, which found the video done


def test_user_error_refusal_fails_at_once_and_refunds(pipeline: Pipeline) -> None:
    pipeline.start_worker()
    (job,) = pipeline.submit(3, credits=2, title="FORBIDDEN product")
    (done,) = pipeline.wait([job])
    assert (done["status"], done["error_class"], done["credits"]) == (
        "failed",
        "USER_ERROR",
        "refunded",
    )
    assert pipeline.client.balance(3).available == 2
    (msg,) = pipeline.messages(3)
    assert msg["method"] == "sendMessage" and "refunded" in msg["text"]
    assert pipeline.paid_creates() == 0


def test_kie_content_policy_failure_is_user_error(pipeline: Pipeline) -> None:
    pipeline.sim.configure({"openai": {"content_policy_marker": "NOTHING-MATCHES"}})
    pipeline.start_worker()
    (job,) = pipeline.submit(4, credits=1, title="FORBIDDEN gadget")
    (done,) = pipeline.wait([job])
    assert (done["status"], done["error_class"]) == ("failed", "USER_ERROR")
    assert "prohibited content" in done["error"]
    assert pipeline.paid_creates() == 1 and pipeline.client.balance(4).available == 1


def test_temporary_errors_retry_three_times_then_fail_and_refund(pipeline: Pipeline) -> None:
    pipeline.sim.configure({"openai": {"rate_5xx": 1.0}})
    pipeline.start_worker()
    (job,) = pipeline.submit(5, credits=1)
    (done,) = pipeline.wait([job])
    assert (done["status"], done["error_class"], done["credits"]) == (
        "failed",
        "TEMPORARY",
        "refunded",
    )
    assert "gave up after 3 attempts" in done["error"]
    assert len(pipeline.sim.calls("openai")) == 3
    assert pipeline.events(job).count("retry") == 2
    assert len(pipeline.messages(5)) == 1 and pipeline.client.balance(5).available == 1


def test_rate_limit_storm_consumes_no_attempts(pipeline: Pipeline) -> None:
    pipeline.sim.configure({"kie": {"rate_429": 1.0}})
    pipeline.start_worker()
    (job,) = pipeline.submit(6, credits=1)
    time.sleep(4)  # well past three attempts' worth of backoff
    pipeline.sim.configure({"kie": {"rate_429": 0.0}})
    (done,) = pipeline.wait([job])
    assert done["status"] == "succeeded"
    rejected = [c for c in pipeline.sim.calls("kie", "createTask") if c["status"] == 429]
    assert len(rejected) > 3
    assert "retry" not in pipeline.events(job)
    assert pipeline.paid_creates() == 1


def test_key_out_of_credit_is_quarantined_and_the_other_carries_the_load(
    pipeline: Pipeline,
) -> None:
    pipeline.sim.configure(
        {"kie": {"keys": {"sim-kie-1": {"credits": 0}, "sim-kie-2": {"credits": None}}}}
    )
    pipeline.start_worker()
    jobs = pipeline.wait(pipeline.submit(7, count=3, credits=3))
    assert [j["status"] for j in jobs] == ["succeeded"] * 3
    assert {j["key_name"] for j in jobs} == {"k2"}
    states = {s.name: s for s in pipeline.workers[0].services.keys.statuses()}
    assert str(states["k1"].state) == "quarantined" and "BILLING" in (states["k1"].reason or "")
    assert str(states["k2"].state) == "active"


def test_all_keys_out_of_credit_waits_to_the_deadline_then_refunds(pipeline: Pipeline) -> None:
    pipeline.sim.configure(
        {"kie": {"keys": {"sim-kie-1": {"credits": 0}, "sim-kie-2": {"credits": 0}}}}
    )
    pipeline.reconfigure(video_deadline_seconds=4.0)
    pipeline.start_worker()
    (job,) = pipeline.submit(8, credits=1)
    (done,) = pipeline.wait([job], timeout=30)
    assert (done["status"], done["error_class"], done["credits"]) == (
        "failed",
        "BILLING",
        "refunded",
    )
    assert "took too long" in done["error"]
    assert len(pipeline.messages(8)) == 1


def test_revoked_key_is_auth_and_rotates(pipeline: Pipeline) -> None:
    pipeline.sim.configure({"kie": {"keys": {"sim-kie-1": {"revoked": True}, "sim-kie-2": {}}}})
    pipeline.start_worker()
    jobs = pipeline.wait(pipeline.submit(9, count=3, credits=3))
    assert [j["status"] for j in jobs] == ["succeeded"] * 3
    states = {s.name: s for s in pipeline.workers[0].services.keys.statuses()}
    assert "AUTH" in (states["k1"].reason or "")


def test_withdrawn_model_is_unavailable(pipeline: Pipeline) -> None:
    # A chain of one withdrawn model: nothing to fall through to, the job waits to its deadline.
    pipeline.reconfigure(kie_model="kling-2.6/image-to-video", video_deadline_seconds=5.0)
    pipeline.sim.configure({"kie": {"withdrawn_models": ["kling-2.6/image-to-video"]}})
    pipeline.start_worker()
    (job,) = pipeline.submit(10, credits=1)
    (done,) = pipeline.wait([job])
    assert (done["status"], done["error_class"], done["credits"]) == (
        "failed",
        "UNAVAILABLE",
        "refunded",
    )
    assert "temporarily unavailable" in done["error"] or "unavailable" in done["error"]
    assert "refunded" in pipeline.messages(10)[0]["text"]


def test_failed_generations_are_resubmitted_then_given_up(pipeline: Pipeline) -> None:
    pipeline.sim.configure({"kie": {"rate_generation_fail": 1.0, "render_seconds": 0.2}})
    pipeline.start_worker()
    (job,) = pipeline.submit(11, credits=1)
    (done,) = pipeline.wait([job])
    assert (done["status"], done["error_class"]) == ("failed", "TEMPORARY")
    assert "gave up after 3 generations" in done["error"]
    assert pipeline.paid_creates() == 3
    assert pipeline.events(job).count("generation failed") == 2


def test_corrupt_payload_is_internal_then_fails_and_refunds(pipeline: Pipeline) -> None:
    (job,) = pipeline.submit(12, credits=1)
    with pipeline.db.transaction() as conn:  # written by hand, as a broken migration might
        conn.execute("UPDATE jobs SET payload = '{\"nonsense\": true}' WHERE id = %s", (job,))
    pipeline.start_worker()
    (done,) = pipeline.wait([job])
    assert (done["status"], done["error_class"], done["credits"]) == (
        "failed",
        "INTERNAL",
        "refunded",
    )
    assert pipeline.client.balance(12).available == 1
    assert len(pipeline.messages(12)) == 1


def test_duplicate_and_late_messages_change_nothing(pipeline: Pipeline) -> None:
    worker = pipeline.start_worker()
    (job,) = pipeline.submit(13, credits=1)
    dispatcher = Dispatcher(worker.broker)
    for step in ("photo", "photo", "prompt", "submit", "poll", "deliver"):
        dispatcher.send("video", job, actor=f"video.{step}")
    (done,) = pipeline.wait([job])
    for step in ("photo", "prompt", "submit", "poll", "deliver"):  # late messages after the end
        dispatcher.send("video", job, actor=f"video.{step}")
    time.sleep(1)
    assert pipeline.client.job(job)["events"] == done["events"]
    assert pipeline.paid_creates() == 1
    assert len(pipeline.messages(13)) == 1
    assert pipeline.client.balance(13).spent == 1


def test_deadline_expiry_refunds(pipeline: Pipeline) -> None:
    pipeline.sim.configure({"kie": {"render_seconds": 30}})
    pipeline.reconfigure(video_deadline_seconds=3.0)
    pipeline.start_worker()
    (job,) = pipeline.submit(14, credits=1)
    (done,) = pipeline.wait([job], timeout=20)
    assert (done["status"], done["credits"]) == ("failed", "refunded")
    assert "took too long" in done["error"]
    (msg,) = pipeline.messages(14)
    assert "took too long" in msg["text"]


def test_blocked_user_does_not_fail_the_job(pipeline: Pipeline) -> None:
    pipeline.sim.configure({"telegram": {"blocked_chats": [15]}})
    pipeline.start_worker()
    (job,) = pipeline.submit(15, credits=1)
    (done,) = pipeline.wait([job])
    assert (done["status"], done["credits"]) == ("succeeded", "captured")
    assert "blocked" in done["events"][-1]["detail"] or any(
        "blocked" in e["detail"] for e in done["events"]
    )
    assert len([c for c in pipeline.sim.calls("telegram") if c["chat_id"] == 15]) == 1


def test_one_progress_message_for_a_slow_video(pipeline: Pipeline) -> None:
    pipeline.sim.configure({"kie": {"render_seconds": 6}})
    pipeline.reconfigure(progress_after_seconds=1.0)
    pipeline.start_worker()
    (job,) = pipeline.submit(16, credits=1)
    (done,) = pipeline.wait([job], timeout=40)
    assert done["status"] == "succeeded"
    assert [m["method"] for m in pipeline.messages(16)] == ["sendMessage", "sendVideo"]
    assert "Still working" in pipeline.messages(16)[0]["text"]


def test_clone_and_retry_make_new_charged_jobs(pipeline: Pipeline) -> None:
    pipeline.start_worker()
    (job,) = pipeline.submit(17, credits=2)
    pipeline.wait([job])
    clone = pipeline.client.clone(job).job_ids
    (done,) = pipeline.wait(clone)
    assert done["status"] == "succeeded" and done["cloned_from"] == job
    assert pipeline.client.balance(17).spent == 2


def test_two_worker_processes_share_the_work(pipeline: Pipeline) -> None:
    pipeline.start_process(threads=4, instance=1)
    pipeline.start_process(threads=4, instance=2)
    jobs = pipeline.wait(
        pipeline.submit(18, count=5, credits=5) + pipeline.submit(19, count=5, credits=5),
        timeout=90,
    )
    assert [j["status"] for j in jobs] == ["succeeded"] * 10
    assert pipeline.paid_creates() == 10
    assert pipeline.ledger_ok()
