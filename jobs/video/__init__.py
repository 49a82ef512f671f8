"""The video job: product info → prompt (OpenAI) → KIE task → poll → deliver the mp4.

This module is what the framework and the bot need to *submit* a video job (validation, price,
deadline). The steps live in :mod:`jobs.video.steps` and are only imported by workers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jobs.video.settings import VideoSettings, video_settings
from jobs.video.texts import TEXTS
from worker import validation as v
from worker.config import Settings
from worker.kinds import DoctorOption, JobKind, Provider

PRODUCT_FIELDS = ("title", "description", "image_url")


def validate_product(product: Mapping[str, Any], settings: Settings) -> dict[str, Any]:
    """The stored payload of a video job, or :class:`InvalidRequest` naming the bad field."""
    product = v.mapping("product", product, known=PRODUCT_FIELDS)
    payload: dict[str, Any] = {
        "title": v.text("product.title", product.get("title"), max_len=200),
        "image_url": v.http_url("product.image_url", product.get("image_url")),
    }
    description = v.text(
        "product.description", product.get("description"), max_len=2000, required=False
    )
    if description is not None:
        payload["description"] = description
    payload["model"] = video_settings(settings).kie_model
    return payload


KIE = Provider(
    name="kie",
    label="KIE",
    keys_variable="KIE_API_KEYS",
    keys=lambda s: video_settings(s).kie_keys,
    # KIE's published per-account limits: createTask and recordInfo are paced separately.
    limits=lambda s: {
        "create": video_settings(s).kie_create_rate,
        "query": video_settings(s).kie_query_rate,
    },
)
OPENAI = Provider(
    name="openai",
    label="OpenAI",
    keys_variable="OPENAI_API_KEYS",
    keys=lambda s: video_settings(s).openai_keys,
    loggers=("openai",),
)


KIND = JobKind(
    name="video",
    steps=("prompt", "submit", "poll", "deliver"),
    validate=validate_product,
    price=lambda s: video_settings(s).video_price_credits,
    deadline=lambda s, payload: video_settings(s).video_deadline_for(payload.get("model")),
    handlers_module="jobs.video.steps",
    settings_model=VideoSettings,
    providers=(KIE, OPENAI),
    counts=lambda s: video_settings(s).allowed_counts,
    doctor_options=(
        DoctorOption(
            name="low_credits",
            flag="--low-kie-credits",
            default=100.0,
            help="Warn when a KIE account has fewer credits than this.",
        ),
    ),
    largest_file=lambda s: (video_settings(s).max_video_bytes, "one video"),
    # The model is configuration at submit time, not part of what the user asked for.
    request_of=lambda payload: {k: val for k, val in payload.items() if k != "model"},
    key_checks_module="jobs.video.health",
    webhooks_module="jobs.video.callbacks",
    demo_module="jobs.video.demo",
    cli_module="jobs.video.cli",
    texts=TEXTS,
    step_events={
        "prompt written": "prompt",
        "task created": "submit",
        "task already created": "submit",
        "polling": "submit",
        "provider state": "poll",
        "generation failed": "poll",
        "video ready": "poll",
        "stored": "deliver",
    },
)
