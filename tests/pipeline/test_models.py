"""Live video models end to end: every catalog model from submit to delivery through the
simulator with that model's schema enforced; fallback on a paused model without paying twice;
a tier with every model paused waits, then fails UNAVAILABLE with a refund; tiers and prices."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobs.video.models import DEFAULT_CHAIN, live_models
from tests.pipeline.conftest import Pipeline, wait_for
from worker import stats
from worker.config import load_settings
from worker.errors import ConfigError, InvalidRequest

LIVE = sorted(m.id for m in live_models())


def _creates(pipeline: Pipeline, model: str) -> list[dict[str, object]]:
    """The create calls (Market createTask or Veo generate) that named ``model``."""
    calls = pipeline.sim.calls_for_model(model)
    return [c for c in calls if c["endpoint"] in ("createTask", "veoGenerate")]


@pytest.mark.parametrize("model", LIVE)
def test_every_catalog_model_makes_a_video(pipeline: Pipeline, model: str) -> None:
    pipeline.reconfigure(kie_model=model, video_price_credits=2)
    pipeline.start_worker()
    (job,) = pipeline.submit(1, credits=2)
    (done,) = pipeline.wait([job], timeout=45)
    # A body the model's schema refuses is answered 422 by the simulator: the job would fail.
    assert done["status"] == "succeeded", (done["error_class"], done["error"])
    assert done["credits"] == "captured" and pipeline.client.balance(1).spent == 2
    (call,) = _creates(pipeline, model)
    assert call["status"] == 200
    (task,) = pipeline.sim.tasks()
    assert task["model"] == model
    state = pipeline.db.fetchone("SELECT payload, state FROM jobs WHERE id = %s", (job,))
    assert state is not None
    assert state["payload"]["tier"] == "standard" and state["state"]["model"] == model
    spend = state["state"]["spend"]
    assert spend["resource"] == model and spend["amount"] > 0
    assert [m["method"] for m in pipeline.messages(1)] == ["sendVideo"]
    assert pipeline.ledger_ok()


def test_sora_2_is_refused_at_start_in_one_sentence() -> None:
    with pytest.raises(ConfigError) as exc:
        load_settings(_env_file=None, kie_model="sora-2-image-to-video")
    text = str(exc.value)
    assert text.startswith("KIE_MODEL: sora-2-image-to-video is withdrawn")
    assert text.endswith("use bytedance/seedance-2-mini instead") and "\n" not in text


def test_an_option_a_model_does_not_take_is_refused_at_start() -> None:
    with pytest.raises(ConfigError) as exc:
        load_settings(_env_file=None, video_models="veo3_fast", video_duration="5")
    assert str(exc.value) == (
        "VIDEO_DURATION: veo3_fast does not take a duration of 5 s (allowed: 8)"
    )


def test_a_paused_model_falls_through_to_the_next_without_an_attempt(pipeline: Pipeline) -> None:
    first, second = DEFAULT_CHAIN[0], DEFAULT_CHAIN[1]
    pipeline.sim.pause_model(first)
    pipeline.start_worker()
    jobs = pipeline.submit(2, credits=3)
    pipeline.wait(jobs, timeout=45)
    jobs += pipeline.submit(2, count=1) + pipeline.submit(2, count=1)
    done = pipeline.wait(jobs, timeout=45)
    assert [j["status"] for j in done] == ["succeeded"] * 3
    # One createTask spent on the paused model (the worker that found it paused tells all
    # the others through Redis), the later jobs skip it without a call.
    assert len(_creates(pipeline, first)) == 1
    assert len(_creates(pipeline, second)) == 3 and pipeline.paid_creates() == 3
    fell = [j for j in done if "model unavailable" in pipeline.events(j["id"])]
    assert len(fell) == 1
    event = next(e for e in fell[0]["events"] if e["event"] == "model unavailable")
    assert f"trying {second} now (no attempt used)" in event["detail"]
    assert "retry" not in pipeline.events(fell[0]["id"])
    assert pipeline.client.balance(2).spent == 3 and pipeline.ledger_ok()


def test_every_model_paused_waits_then_fails_unavailable_with_refund(pipeline: Pipeline) -> None:
    pipeline.reconfigure(video_deadline_seconds=8.0)
    for model in DEFAULT_CHAIN:
        pipeline.sim.pause_model(model)
    pipeline.start_worker()
    (job,) = pipeline.submit(3, credits=1)
    (done,) = pipeline.wait([job], timeout=40)
    assert (done["status"], done["error_class"], done["credits"]) == (
        "failed",
        "UNAVAILABLE",
        "refunded",
    )
    assert "took too long" in done["error"] and "every model of tier standard" in done["error"]
    assert [len(_creates(pipeline, m)) for m in DEFAULT_CHAIN] == [1, 1, 1]
    assert pipeline.paid_creates() == 0
    assert pipeline.client.balance(3).available == 1
    (msg,) = pipeline.messages(3)
    assert "refunded" in msg["text"] and pipeline.ledger_ok()


def test_a_waiting_job_goes_on_when_a_model_comes_back(pipeline: Pipeline) -> None:
    pipeline.reconfigure(video_model_pause_seconds=2.0)
    for model in DEFAULT_CHAIN:
        pipeline.sim.pause_model(model)
    pipeline.start_worker()
    (job,) = pipeline.submit(4, credits=1)
    wait_for(lambda: len(_creates(pipeline, DEFAULT_CHAIN[-1])) == 1, 20, "the last model tried")
    pipeline.sim.resume_model(DEFAULT_CHAIN[1])
    (done,) = pipeline.wait([job], timeout=40)
    assert done["status"] == "succeeded" and pipeline.paid_creates() == 1
    row = pipeline.db.fetchone("SELECT state FROM jobs WHERE id = %s", (job,))
    assert row is not None and row["state"]["model"] == DEFAULT_CHAIN[1]


TIERS = """
[tiers.standard]
price = 1
chain = ["bytedance/seedance-2-mini"]

[tiers.premium]
price = 4
chain = [{ model = "veo3_fast", resolution = "1080p", orientation = "portrait" }]
"""


def test_a_tier_sets_the_price_and_the_models(pipeline: Pipeline, tmp_path: Path) -> None:
    path = tmp_path / "tiers.toml"
    path.write_text(TIERS)
    pipeline.reconfigure(video_tiers_file=str(path))
    pipeline.start_worker()
    pipeline.client.grant(5, 10)
    premium = pipeline.client.submit_video(
        user_id=5,
        product={"title": "Gold watch", "image_url": "https://example.test/w.jpg"},
        tier="premium",
    )
    assert premium.credits_held == 4
    standard = pipeline.submit(5)
    done = pipeline.wait([*premium.job_ids, *standard])
    assert [j["status"] for j in done] == ["succeeded", "succeeded"]
    assert pipeline.client.balance(5).spent == 5
    (veo,) = _creates(pipeline, "veo3_fast")
    assert veo["endpoint"] == "veoGenerate"  # Veo's own endpoint
    assert len(_creates(pipeline, "bytedance/seedance-2-mini")) == 1
    # The job names its tier, the model that made it and what KIE charged for it.
    shown = [(j["tier"], j["model"], j["spend"]["amount"]) for j in done]
    assert shown == [
        ("premium", "veo3_fast", 65.0),
        ("standard", "bytedance/seedance-2-mini", 41.0),
    ]
    with pipeline.db.transaction() as conn:
        spend = stats.collect(conn)["spend"]["last_hour"]
    assert [(r["tier"], r["resource"], r["made"], r["spent"], r["sold"]) for r in spend] == [
        ("premium", "veo3_fast", 1, 65.0, 4),
        ("standard", "bytedance/seedance-2-mini", 1, 41.0, 1),
    ]

    with pytest.raises(InvalidRequest, match="tier must be one of standard, premium"):
        pipeline.client.submit_video(
            user_id=5, product={"title": "x", "image_url": "https://e.test/x.jpg"}, tier="gold"
        )
    assert pipeline.client.balance(5).available == 5


def test_the_prompt_fits_the_smallest_cap_of_the_chain(pipeline: Pipeline) -> None:
    pipeline.reconfigure(video_models="bytedance/seedance-2-mini,kling-2.6/image-to-video")
    pipeline.start_worker()
    (job,) = pipeline.submit(6, credits=1, description="word " * 400)
    (done,) = pipeline.wait([job])
    assert done["status"] == "succeeded"
    (call,) = pipeline.sim.calls("openai")
    (task,) = pipeline.sim.tasks()
    assert len(task["prompt"]) <= 1000  # Kling 2.6's cap, the smallest of the chain
    assert call["status"] == 200
