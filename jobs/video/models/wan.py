"""Wan (Alibaba) on KIE's Market API: ``wan/2-6-image-to-video`` and ``wan/2-7-image-to-video``.

Two generations, two contracts: 2.6 takes ``image_urls`` and a string duration, 2.7 takes
``first_frame_url`` and an integer one. Neither makes sound or sets a frame ratio.
"""

from __future__ import annotations

from jobs.video.catalog import Audio, Family, ModelSpec, per_second

#: Wan 2.6: 14 / 21 credits a second at 720p / 1080p as one source measured; KIE's own table
#: prices it per clip, at the same figures for 5, 10 and 15 s.
WAN_26 = ModelSpec(
    id="wan/2-6-image-to-video",
    vendor="Alibaba",
    family=Family.MARKET,
    prompt_cap=5000,
    image_field="image_urls",
    image_list=True,
    durations=(5, 10, 15),
    duration_field="duration",
    duration_type=str,
    default_duration=5,
    resolutions={"720p": "720p", "1080p": "1080p"},
    resolution_field="resolution",
    default_resolution="720p",
    orientations={},
    ratio_field=None,
    audio=Audio.NONE,
    sound_field=None,
    price=per_second({"720p": 14, "1080p": 21}),
    render_seconds=150,
    first_poll_seconds=60,
    good_at="steady product turns, 5/10/15 s, silent",
)

#: Wan 2.7 as KIE documents it: ``first_frame_url`` and ``duration`` an integer 2-15 (one
#: wrapper builds it with ``image_url`` and a string; the documentation is followed).
#: 16 / 24 credits a second at 720p / 1080p.
WAN_27 = ModelSpec(
    id="wan/2-7-image-to-video",
    vendor="Alibaba",
    family=Family.MARKET,
    prompt_cap=5000,
    image_field="first_frame_url",
    image_list=False,
    durations=tuple(range(2, 16)),
    duration_field="duration",
    duration_type=int,
    default_duration=5,
    resolutions={"720p": "720p", "1080p": "1080p"},
    resolution_field="resolution",
    default_resolution="720p",
    orientations={},
    ratio_field=None,
    audio=Audio.NONE,
    sound_field=None,
    price=per_second({"720p": 16, "1080p": 24}),
    render_seconds=150,
    first_poll_seconds=60,
    good_at="any length from 2 to 15 s; keeps logos steady; silent",
)
