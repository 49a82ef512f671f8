"""Seedance (ByteDance) on KIE's Market API: ``bytedance/seedance-2`` and ``-2-mini``.

The photo is the first frame (``first_frame_url``); ``duration`` is an integer; ``aspect_ratio``
takes ``adaptive`` (follow the photo). ``generate_audio`` defaults to true at KIE: we always send
it, so a silent clip is silent.
"""

from __future__ import annotations

from jobs.video.catalog import Audio, Family, ModelSpec, per_second

_RATIOS = {"auto": "adaptive", "portrait": "9:16", "landscape": "16:9", "square": "1:1"}

#: Seedance 2.0: 19 / 41 / 102 credits a second at 480p / 720p / 1080p (KIE's Aug-Sep 2026 list).
SEEDANCE_2 = ModelSpec(
    id="bytedance/seedance-2",
    vendor="ByteDance",
    family=Family.MARKET,
    prompt_cap=20000,
    image_field="first_frame_url",
    image_list=False,
    durations=tuple(range(4, 16)),
    duration_field="duration",
    duration_type=int,
    default_duration=5,
    resolutions={"480p": "480p", "720p": "720p", "1080p": "1080p"},
    resolution_field="resolution",
    default_resolution="720p",
    orientations=_RATIOS,
    ratio_field="aspect_ratio",
    audio=Audio.FLAG,
    sound_field="generate_audio",
    price=per_second({"480p": 19, "720p": 41, "1080p": 102}),
    render_seconds=180,
    first_poll_seconds=60,
    good_at="premium realism and physics; sets the frame ratio; up to 1080p",
)

#: Seedance 2.0 Mini: 3.8 / 8.2 credits a second at 480p / 720p since KIE's 2026-08-26 price
#: cut. Its frame fields (``first_frame_url``) are documented by one source only; the other
#: lists no frame field at all. We send the documented one.
SEEDANCE_2_MINI = ModelSpec(
    id="bytedance/seedance-2-mini",
    vendor="ByteDance",
    family=Family.MARKET,
    prompt_cap=20000,
    image_field="first_frame_url",
    image_list=False,
    durations=tuple(range(4, 16)),
    duration_field="duration",
    duration_type=int,
    default_duration=5,
    resolutions={"480p": "480p", "720p": "720p"},
    resolution_field="resolution",
    default_resolution="720p",
    orientations=_RATIOS,
    ratio_field="aspect_ratio",
    audio=Audio.FLAG,
    sound_field="generate_audio",
    price=per_second({"480p": 3.8, "720p": 8.2}),
    render_seconds=180,
    first_poll_seconds=60,
    good_at="cheapest good product motion at 720p; sets the frame ratio",
)
