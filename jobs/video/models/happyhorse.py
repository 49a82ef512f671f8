"""HappyHorse 1.1 (Alibaba) on KIE's Market API: ``happyhorse-1-1/image-to-video``."""

from __future__ import annotations

from jobs.video.catalog import Audio, Family, ModelSpec, per_second

#: 22.5 / 29 credits a second at 720p / 1080p. Native audio with lip-sync, no switch. Its
#: request schema forbids fields it does not list and does not list ``callBackUrl``: we send
#: none and poll (KIE's documentation does not say whether it calls back).
HAPPYHORSE_11 = ModelSpec(
    id="happyhorse-1-1/image-to-video",
    vendor="Alibaba",
    family=Family.MARKET,
    prompt_cap=2500,  # 5000 for Latin text, 2500 for CJK: the smaller, whatever the language
    image_field="image_urls",
    image_list=True,
    durations=tuple(range(3, 16)),
    duration_field="duration",
    duration_type=int,
    default_duration=5,
    resolutions={"720p": "720p", "1080p": "1080p"},
    resolution_field="resolution",
    default_resolution="720p",
    orientations={},
    ratio_field=None,
    audio=Audio.ALWAYS,
    sound_field=None,
    price=per_second({"720p": 22.5, "1080p": 29}),
    render_seconds=180,
    first_poll_seconds=60,
    good_at="people with products: native audio and lip-sync",
    accepts_callback=False,
)
