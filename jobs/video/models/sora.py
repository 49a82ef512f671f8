"""Sora 2 (OpenAI): withdrawn. Kept so that naming it is refused with a replacement.

KIE has answered every ``sora-2*`` model with ``500 "This interface is temporarily paused"`` since
June 2026, and OpenAI closed Sora's API on 2026-09-24.
"""

from __future__ import annotations

from jobs.video.catalog import Audio, Family, ModelSpec, per_clip

WITHDRAWN = "KIE paused every Sora 2 model in June 2026 and OpenAI closed Sora's API"
REPLACEMENT = "bytedance/seedance-2-mini"


def _sora(model: str) -> ModelSpec:
    return ModelSpec(
        id=model,
        vendor="OpenAI",
        family=Family.MARKET,
        prompt_cap=10000,
        image_field="image_urls",
        image_list=True,
        durations=(10, 15),
        duration_field="n_frames",
        duration_type=str,
        default_duration=10,
        resolutions={},
        resolution_field=None,
        default_resolution=None,
        orientations={"portrait": "portrait", "landscape": "landscape"},
        ratio_field="aspect_ratio",
        audio=Audio.ALWAYS,
        sound_field=None,
        price=per_clip({}),
        render_seconds=0,
        first_poll_seconds=0,
        good_at="withdrawn",
        withdrawn=WITHDRAWN,
        replacement=REPLACEMENT,
    )


SORA_2 = (
    _sora("sora-2-image-to-video"),
    _sora("sora-2-pro-image-to-video"),
    _sora("sora-2-text-to-video"),
    _sora("sora-2-pro-text-to-video"),
)
