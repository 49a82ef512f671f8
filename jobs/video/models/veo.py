"""Veo 3.1 (Google) on KIE's own Veo endpoints, not the Market API.

``POST /api/v1/veo/generate`` takes a flat body (``imageUrls`` in camelCase, ``model`` one of
``veo3``, ``veo3_fast``, ``veo3_lite``); ``GET /api/v1/veo/record-info`` answers with
``successFlag``. There is no duration parameter: a clip is 8 s, priced per clip. Audio is always
on. ``aspect_ratio`` takes ``16:9``, ``9:16`` or ``Auto``; ``1:1`` is refused by KIE.
"""

from __future__ import annotations

from jobs.video.catalog import Audio, Family, ModelSpec, Options, PriceFn

_RATIOS = {"auto": "Auto", "portrait": "9:16", "landscape": "16:9"}
_RESOLUTIONS = {"720p": "720p", "1080p": "1080p", "4k": "4k"}
#: Extra credits for the 1080p and 4K versions of a clip.
_UPGRADE = {"720p": 0, "1080p": 5, "4k": 120}


def _veo_price(base: float) -> PriceFn:
    def price(spec: ModelSpec, o: Options) -> float:
        return base + _UPGRADE[str(o.resolution)]

    return price


def _veo(model: str, label: str, base: float, render: int, good_at: str) -> ModelSpec:
    return ModelSpec(
        id=model,
        vendor="Google",
        family=Family.VEO,
        # KIE documents no maximum; Google's own limit is far above any prompt we write.
        prompt_cap=5000,
        image_field="imageUrls",
        image_list=True,
        durations=(8,),
        duration_field=None,
        duration_type=int,
        default_duration=8,
        resolutions=_RESOLUTIONS,
        resolution_field="resolution",
        default_resolution="720p",
        orientations=_RATIOS,
        ratio_field="aspect_ratio",
        audio=Audio.ALWAYS,
        sound_field=None,
        price=_veo_price(base),
        render_seconds=render,
        first_poll_seconds=60,
        good_at=f"{label}: {good_at}",
        wire_model=model,
        # KIE's example sends the one photo as FIRST_AND_LAST_FRAMES_2_VIDEO.
        fixed={"generationType": "FIRST_AND_LAST_FRAMES_2_VIDEO"},
    )


#: 250 credits a clip (measured and on the rate card).
VEO3 = _veo("veo3", "Veo 3.1 Quality", 250, 240, "the best realism and sound; 8 s")
#: 60 credits on KIE's rate card; one client measured 168 on 2026-06-01. The rate card is used.
VEO3_FAST = _veo(
    "veo3_fast", "Veo 3.1 Fast", 60, 150, "strong realism with sound at mid price; 8 s"
)
#: 30 credits a clip.
VEO3_LITE = _veo("veo3_lite", "Veo 3.1 Lite", 30, 120, "cheap 8 s clips with sound")
