"""The video job: product info → photo (KIE upload) → prompt (OpenAI) → KIE task → poll → deliver.

This module is what the framework and the bot need to *submit* a video job (validation, price,
deadline). The steps live in :mod:`jobs.video.steps` and are only imported by workers.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from jobs.video.availability import GROUP as MODELS_GROUP
from jobs.video.availability import model_names
from jobs.video.settings import VideoSettings, video_settings
from jobs.video.summary import summary
from jobs.video.texts import TEXTS
from jobs.video.tiers import Tier, gate_priority, seconds_after_gate
from worker import validation as v
from worker.config import ApiKey, Settings
from worker.errors import InvalidRequest
from worker.keystate import PaceScope
from worker.kinds import DoctorOption, Gate, JobKind, Provider
from worker.models import ResourceGroup
from worker.texts import language_of

PRODUCT_FIELDS = ("title", "description", "image_url", "photo_file_id", "tier", "language")
#: A Telegram ``file_id``: an opaque token of URL-safe base64 characters.
_FILE_ID = re.compile(r"[A-Za-z0-9_-]{1,256}")
#: Payload fields the kind adds at submit (what was sold): not part of a clone's request.
_SOLD_FIELDS = ("model", "chain")


def tier_of(settings: Settings, name: Any) -> Tier:
    """The tier a request names (``None``: the default), or :class:`InvalidRequest`."""
    tiers = video_settings(settings).tiers
    if name is not None and (not isinstance(name, str) or name not in tiers.names):
        raise InvalidRequest("tier", f"must be one of {', '.join(tiers.names)}")
    return tiers.get(name)


def validate_product(product: Mapping[str, Any], settings: Settings) -> dict[str, Any]:
    """The stored payload of a video job, or :class:`InvalidRequest` naming the bad field."""
    product = v.mapping("product", product, known=PRODUCT_FIELDS)
    payload: dict[str, Any] = {
        "title": v.text("product.title", product.get("title"), max_len=200),
        **_image_of(product),
    }
    description = v.text(
        "product.description", product.get("description"), max_len=2000, required=False
    )
    if description is not None:
        payload["description"] = description
    # The user's language (Telegram's language_code): what every text about the job is written in.
    language = language_of(product.get("language"))
    if language is not None:
        payload["language"] = language
    # What is sold: the tier and its chain of models with their options, fixed at submit so a
    # change of configuration never changes a job already paid for.
    tier = tier_of(settings, product.get("tier"))
    payload["tier"] = tier.name
    payload["chain"] = [e.as_dict() for e in tier.chain]
    return payload


def _image_of(product: Mapping[str, Any]) -> dict[str, str]:
    """The product's photo: ``image_url`` (a public link) or ``photo_file_id`` (a photo the
    user sent the bot, fetched by the worker through the Bot API), exactly one of the two."""
    url, file_id = product.get("image_url"), product.get("photo_file_id")
    if url is not None and file_id is not None:
        raise InvalidRequest("product.photo_file_id", "give either image_url or photo_file_id")
    if file_id is not None:
        if not isinstance(file_id, str) or not _FILE_ID.fullmatch(file_id):
            raise InvalidRequest(
                "product.photo_file_id",
                "must be a Telegram file_id: 1 to 256 letters, digits, '_' or '-'",
            )
        return {"photo_file_id": file_id}
    if url is None:
        raise InvalidRequest("product.image_url", "is required (or give photo_file_id)")
    return {"image_url": v.http_url("product.image_url", url)}


def price(settings: Settings, payload: Mapping[str, Any]) -> int:
    """The tier's price in user credits."""
    return tier_of(settings, payload.get("tier")).price


def deadline(settings: Settings, payload: Mapping[str, Any]) -> float:
    """The longest ``VIDEO_DEADLINES`` of the chain's models (else ``VIDEO_DEADLINE_SECONDS``):
    a job may fall through to any of them."""
    s = video_settings(settings)
    models = [str(e["model"]) for e in payload.get("chain") or []]
    if not models and payload.get("model"):  # a job stored before tiers existed
        models = [str(payload["model"])]
    return max((s.video_deadline_for(m) for m in models), default=s.video_deadline_seconds)


KIE = Provider(
    name="kie",
    label="KIE",
    keys_variable="KIE_API_KEYS",
    keys=lambda s: video_settings(s).kie_keys,
    # KIE's published limits, paced separately: createTask per account (every key of it
    # together), recordInfo per key.
    # A photo's upload (File Upload API) is paced per account too, at the create limit, in a
    # bucket of its own: uploads never take a createTask's turn.
    limits=lambda s: {
        "create": video_settings(s).kie_create_rate,
        "upload": video_settings(s).kie_create_rate,
        "query": video_settings(s).kie_query_rate,
    },
    scopes={"create": PaceScope.ACCOUNT, "upload": PaceScope.ACCOUNT, "query": PaceScope.KEY},
    balance=lambda s, key: _kie_balance(s, key),  # defined below, after the declarations
)


def _kie_balance(settings: Settings, key: ApiKey) -> float:
    """The KIE account's credits left (``GET /api/v1/chat/credit``; free)."""
    from jobs.video.kie import KieClient  # the bot's process never imports provider clients

    client = KieClient.from_settings(settings, timeout=10.0)
    try:
        return client.credit_balance(key)
    finally:
        client.close()


OPENAI = Provider(
    name="openai",
    label="OpenAI",
    keys_variable="OPENAI_API_KEYS",
    keys=lambda s: video_settings(s).openai_keys,
    loggers=("openai",),
)


KIND = JobKind(
    name="video",
    steps=("photo", "prompt", "submit", "poll", "deliver"),
    validate=validate_product,
    price=price,
    deadline=deadline,
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
    # The models are configuration at submit time, not part of what the user asked for; the
    # tier is, and a clone is sold the tier's models and price of the day.
    request_of=lambda payload: {k: val for k, val in payload.items() if k not in _SOLD_FIELDS},
    resources=ResourceGroup(MODELS_GROUP, "model", model_names),
    key_checks_module="jobs.video.health",
    webhooks_module="jobs.video.callbacks",
    demo_module="jobs.video.demo",
    cli_module="jobs.video.cli",
    texts=TEXTS,
    summary=summary,  # one message for a request of several videos, once its last ended
    # The bottleneck: KIE's create slots, taken by the submit step in fair order (worker.fair_gate).
    gate=Gate(
        step="submit",
        provider="kie",
        purpose="create",
        priority=gate_priority,
        after_seconds=seconds_after_gate,
        before_seconds=5.0,
    ),
    step_events={
        "photo uploaded": "photo",
        "photo reused": "photo",
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
