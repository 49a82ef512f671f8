"""Hailuo / MiniMax on KIE's Market API: ``hailuo/2-3-image-to-video-pro`` and
``minimax-h3/image-to-video`` (Hailuo 03).

Their resolutions are upper-case (``768P``, ``1080P``, ``2K``). Hailuo 2.3 takes ``image_url`` and
a string duration of 6 or 10 s; H3 takes ``first_frame_url`` and an integer 4-15.
"""

from __future__ import annotations

from jobs.video.catalog import Audio, Family, ModelSpec, Options, per_second


def _hailuo_combination(o: Options) -> str | None:
    if o.duration == 10 and o.resolution == "1080p":
        return "does not make 10 s videos at 1080p (allowed: 6 s at 1080p, or 768p)"
    return None


#: Hailuo 2.3 Pro: 8 credits a second (a per-clip row in KIE's table; 8/s as measured).
HAILUO_23_PRO = ModelSpec(
    id="hailuo/2-3-image-to-video-pro",
    vendor="MiniMax",
    family=Family.MARKET,
    prompt_cap=5000,
    image_field="image_url",
    image_list=False,
    durations=(6, 10),
    duration_field="duration",
    duration_type=str,
    default_duration=6,
    resolutions={"768p": "768P", "1080p": "1080P"},
    resolution_field="resolution",
    default_resolution="768p",
    orientations={},
    ratio_field=None,
    audio=Audio.NONE,
    sound_field=None,
    price=per_second({"768p": 8, "1080p": 8}),
    render_seconds=150,
    first_poll_seconds=60,
    good_at="lively motion at a low price; 6 or 10 s; silent",
    combination=_hailuo_combination,
)

#: MiniMax H3: 8 / 13 credits a second at 768P / 2K since KIE halved them on 2026-09-22.
#: Native audio, no switch. KIE's default resolution is 2K; the catalog sends 768P.
MINIMAX_H3 = ModelSpec(
    id="minimax-h3/image-to-video",
    vendor="MiniMax",
    family=Family.MARKET,
    prompt_cap=7000,
    image_field="first_frame_url",
    image_list=False,
    durations=tuple(range(4, 16)),
    duration_field="duration",
    duration_type=int,
    default_duration=5,  # KIE's default is 6; the catalog sends 5 like most models
    resolutions={"768p": "768P", "2k": "2K"},
    resolution_field="resolution",
    default_resolution="768p",
    orientations={},
    ratio_field=None,
    audio=Audio.ALWAYS,
    sound_field=None,
    price=per_second({"768p": 8, "2k": 13}),
    render_seconds=150,
    first_poll_seconds=60,
    good_at="natural motion with native sound at a low price; 4-15 s",
)
