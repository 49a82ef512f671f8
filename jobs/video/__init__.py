"""The video job: product info → prompt (OpenAI) → KIE task → poll → deliver the mp4.

This module is what the framework and the bot need to *submit* a video job (validation, price,
deadline). The steps live in :mod:`jobs.video.steps` and are only imported by workers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from worker import validation as v
from worker.config import Settings
from worker.kinds import JobKind

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
    payload["model"] = settings.kie_model
    return payload


KIND = JobKind(
    name="video",
    steps=("prompt", "submit", "poll", "deliver"),
    validate=validate_product,
    price=lambda s: s.video_price_credits,
    deadline=lambda s, payload: s.video_deadline_for(payload.get("model")),
    handlers_module="jobs.video.steps",
    key_checks_module="jobs.video.health",
    webhooks_module="jobs.video.callbacks",
    subject=lambda payload: f"your video of “{payload.get('title', 'your product')}”",
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
