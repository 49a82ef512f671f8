"""Grok Imagine (xAI) on KIE's Market API: ``grok-imagine/image-to-video``."""

from __future__ import annotations

from jobs.video.catalog import Audio, Family, ModelSpec, per_second

#: ``duration`` is typed a string (6-30) by KIE's page; one client finds integers accepted too,
#: so the documented string is sent. The prompt cap is 5000 in KIE's page and 4096 in a
#: client's schema: 4096 satisfies both. ``mode`` stays ``normal`` (``spicy`` is refused with an
#: external image). ``aspect_ratio`` only applies to several images, so it is never sent.
#: 2.4 / 4.5 / 8 credits a second at 480p / 720p / 1080p.
GROK_IMAGINE = ModelSpec(
    id="grok-imagine/image-to-video",
    vendor="xAI",
    family=Family.MARKET,
    prompt_cap=4096,
    image_field="image_urls",
    image_list=True,
    durations=tuple(range(6, 31)),
    duration_field="duration",
    duration_type=str,
    default_duration=6,
    resolutions={"480p": "480p", "720p": "720p", "1080p": "1080p"},
    resolution_field="resolution",
    default_resolution="720p",
    orientations={},
    ratio_field=None,
    audio=Audio.ALWAYS,
    sound_field=None,
    price=per_second({"480p": 2.4, "720p": 4.5, "1080p": 8}),
    render_seconds=90,
    first_poll_seconds=30,
    good_at="very cheap drafts with native sound; 6-30 s",
    fixed={"mode": "normal"},
)
