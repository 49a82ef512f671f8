"""Kling (Kuaishou) on KIE's Market API: ``kling-2.6/image-to-video`` and ``kling-3.0/video``.

Both type ``duration`` as a string (``"5"``) and take the photo in ``image_urls``; neither sets an
aspect ratio from an image (the video follows the photo).
"""

from __future__ import annotations

from jobs.video.catalog import Audio, Family, ModelSpec, per_clip, per_second_with_sound

#: Kling 2.6 I2V is priced per clip by sound and length: 55 credits for 5 s silent (KIE's price
#: list as third parties copied it); with sound, and 10 s, double.
KLING_26 = ModelSpec(
    id="kling-2.6/image-to-video",
    vendor="Kling",
    family=Family.MARKET,
    prompt_cap=1000,
    image_field="image_urls",
    image_list=True,
    durations=(5, 10),
    duration_field="duration",
    duration_type=str,
    default_duration=5,
    resolutions={},
    resolution_field=None,
    default_resolution=None,
    orientations={},
    ratio_field=None,
    audio=Audio.FLAG,
    # Required by the schema, with no default documented: always sent.
    sound_field="sound",
    price=per_clip(
        {
            (5, None, False): 55,
            (10, None, False): 110,
            (5, None, True): 110,
            (10, None, True): 220,
        }
    ),
    render_seconds=120,
    first_poll_seconds=60,
    good_at="faithful motion of a product photo; crisp detail; silent or with sound",
)


#: Kling 3.0 takes text and image in one slug. KIE's schema marks ``multi_shots`` and
#: ``multi_prompt`` required; the wrappers that work send ``multi_shots: false`` and leave
#: ``multi_prompt`` out, and so do we. ``mode`` is the resolution: std 720p, pro 1080p, 4K.
#: ``aspect_ratio`` is ignored when a first frame is given, so it is never sent. KIE's schema
#: gives the prompt no maximum; a wrapper documents 5000, which we keep to.
KLING_30 = ModelSpec(
    id="kling-3.0/video",
    vendor="Kling",
    family=Family.MARKET,
    prompt_cap=5000,
    image_field="image_urls",
    image_list=True,
    durations=tuple(range(3, 16)),
    duration_field="duration",
    duration_type=str,
    default_duration=5,
    resolutions={"720p": "std", "1080p": "pro", "4k": "4K"},
    resolution_field="mode",
    default_resolution="720p",
    orientations={},
    ratio_field=None,
    audio=Audio.FLAG,
    sound_field="sound",
    price=per_second_with_sound(
        {
            ("720p", False): 14,
            ("720p", True): 20,
            ("1080p", False): 18,
            ("1080p", True): 27,
            ("4k", False): 67,
            ("4k", True): 67,
        }
    ),
    render_seconds=180,
    first_poll_seconds=60,
    good_at="cinematic camera moves, 3-15 s, up to 4K",
    fixed={"multi_shots": False},
)
