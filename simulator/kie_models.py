"""The KIE models the simulator serves: each one's request schema, price and typical render time.

This is the simulator's own encoding of KIE's model pages, written from KIE's documentation and
not imported from the client (``jobs/video``): a body the client builds wrongly must be refused
here, exactly as KIE would refuse it. When KIE changes a model, this file changes first.

What each entry says is enforced by ``simulator.kie_schema``: a missing required field is
``500 "<field> is required"``, an unknown field, a wrong JSON type or a bad value a 422 naming the
field, and the rules between fields (Hailuo has no 10 s at 1080P, Seedance's last frame needs a
first one...) a 422 too.

Where KIE's sources disagree (marked ⚠ in the comments), the schema accepts what either source
says: the simulator must never refuse a body that KIE may accept, or a client bug would hide
behind a simulator bug.

Families. ``market`` models go through ``POST /api/v1/jobs/createTask`` with ``{"model", "input",
"callBackUrl"}`` and ``recordInfo``; ``veo`` models (Veo 3.1: ``veo3``, ``veo3_fast``,
``veo3_lite``) through ``POST /api/v1/veo/generate`` with a flat body and
``GET /api/v1/veo/record-info``.

Prices are KIE credits (1 credit = US$0.005) for the options of one request, as KIE's rate table
and the measured charges give them; ``typical_render_seconds`` is how long a render takes at KIE
(most pages say nothing, so it is an estimate from measured runs). The simulator renders in
``kie.render_seconds`` unless configured otherwise (see ``simulator.config.KieConfig``).

Adding a model: its ``ModelSpec`` here (fields, rules, price, render time), its documented
example in ``EXAMPLES``, and its expected price in ``tests/simulator/test_simulator_models.py``;
``tests/simulator/test_catalog_against_simulator.py`` then checks the client's catalog entry
against it.

Sora 2 (``sora-2-*``) is here too, as KIE answers it since June 2026: paused. Its last documented
schema is kept, so a test can make it live again (``POST /_sim/models/<model>``).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Final

from simulator.kie_schema import (
    LIVE,
    MARKET,
    PAUSED,
    PAUSED_MSG,
    STATES,
    UNKNOWN,
    UNKNOWN_MSG,
    VEO,
    WITHDRAWN,
    WITHDRAWN_MSG,
    Field,
    ModelSpec,
    Params,
    Problem,
    Rule,
    boolean,
    exclusive,
    integer,
    is_url,
    needs,
    needs_one_of,
    seconds,
    string,
    strings,
    url,
    urls,
)

__all__ = [
    "EXAMPLES",
    "LIVE",
    "MARKET",
    "MODELS",
    "PAUSED",
    "PAUSED_MSG",
    "STATES",
    "UNKNOWN",
    "UNKNOWN_MSG",
    "VEO",
    "VEO_DEFAULT_MODEL",
    "WITHDRAWN",
    "WITHDRAWN_MSG",
    "ModelSpec",
    "Problem",
    "is_url",
    "spec",
]


# --- rules between fields of one model -----------------------------------------------------------


def _kling3_shots(params: Params, prefix: str) -> Problem | None:
    if params.get("multi_shots") is True:
        if params.get("sound") is not True:
            return Problem(422, f"{prefix}sound must be true when {prefix}multi_shots is true")
        if "multi_prompt" not in params:
            return Problem(500, "multi_prompt is required")
        for i, shot in enumerate(params["multi_prompt"]):
            where = f"{prefix}multi_prompt[{i}]"
            if set(shot) - {"prompt", "duration"}:
                return Problem(422, f"{where} takes only prompt and duration")
            for f in (
                string("prompt", required=True, min_length=1, max_length=500),
                integer("duration", required=True, minimum=1, maximum=12),
            ):
                if f.name not in shot:
                    return Problem(500, f"{f.name} is required")
                problem = f.check(shot[f.name], f"{where}.{f.name}")
                if problem is not None:
                    return problem
        return None
    if not params.get("prompt"):
        return Problem(500, "prompt is required")
    return None


def _hailuo_no_10s_1080p(params: Params, prefix: str) -> Problem | None:
    if params.get("duration") == "10" and params.get("resolution") == "1080P":
        return Problem(422, f"{prefix}duration 10 is not available at {prefix}resolution 1080P")
    return None


def _grok_source(params: Params, prefix: str) -> Problem | None:
    images = params.get("image_urls")
    if images and "task_id" in params:
        return Problem(422, f"{prefix}image_urls cannot be used together with {prefix}task_id")
    if not images and "task_id" not in params:
        return Problem(500, "image_urls is required")
    if "index" in params and "task_id" not in params:
        return Problem(422, f"{prefix}index needs {prefix}task_id")
    if images and params.get("mode") == "spicy":
        return Problem(422, f"{prefix}mode spicy is not available with external images")
    if images and len(images) > 1 and params.get("resolution") == "1080p":
        return Problem(422, f"{prefix}resolution 1080p takes a single image in {prefix}image_urls")
    return None


def _veo_images(params: Params, prefix: str) -> Problem | None:
    kind = params.get("generationType")
    images = params.get("imageUrls") or []
    model = params.get("model", "veo3_fast")
    if kind == "REFERENCE_2_VIDEO":
        if model != "veo3_fast":
            return Problem(422, "generationType REFERENCE_2_VIDEO is only available with veo3_fast")
        if not 1 <= len(images) <= 3:
            return Problem(422, "imageUrls must have 1 to 3 images for REFERENCE_2_VIDEO")
    elif len(images) > 2:
        return Problem(422, "imageUrls must have at most 2 images (first and last frame)")
    if kind == "FIRST_AND_LAST_FRAMES_2_VIDEO" and not images:
        return Problem(422, "imageUrls is required for FIRST_AND_LAST_FRAMES_2_VIDEO")
    return None


# --- the models ----------------------------------------------------------------------------------

_NSFW = boolean("nsfw_checker", default=False)


def _kling26_price(p: Params) -> float:
    # Per clip by sound x duration: 55 credits per 5 s silent, about twice that with sound.
    per_5s = 110 if p["sound"] else 55
    return per_5s * seconds(p) / 5


_KLING26 = ModelSpec(
    "kling-2.6/image-to-video",
    MARKET,
    (
        string("prompt", required=True, min_length=1, max_length=1000),
        urls("image_urls", required=True, min_items=1, max_items=1),
        boolean("sound", required=True),
        # The page marks duration required but gives a default: accepted when absent.
        string("duration", choices=("5", "10"), default="5"),
    ),
    _kling26_price,
    typical_render_seconds=120,
    image_fields=("image_urls",),
    note="no aspect ratio: the video follows the image",
)

_KLING30_RATES = {"std": (14, 20), "pro": (18, 27), "4K": (67, 67)}

_KLING30 = ModelSpec(
    "kling-3.0/video",
    MARKET,
    (
        # ⚠ No cap in KIE's schema, 5000 in a wrapper's docs: the simulator caps nothing.
        string("prompt", min_length=1),
        urls("image_urls", min_items=1, max_items=2),
        boolean("sound", required=True),
        string("duration", required=True, choices=strings(*range(3, 16))),
        string("aspect_ratio", choices=("16:9", "9:16", "1:1"), default="1:1"),
        # ⚠ Default pro (KIE) or std (wrappers); 4K added later. The schema requires it.
        string("mode", required=True, choices=("std", "pro", "4K")),
        boolean("multi_shots", required=True),
        # ⚠ Listed as required, yet omitted successfully with multi_shots false: a rule checks it.
        Field("multi_prompt", ("array",), items="object", min_items=1, max_items=6),
        Field("kling_elements", ("array",), items="object"),
    ),
    lambda p: _KLING30_RATES[p["mode"]][1 if p["sound"] else 0] * seconds(p),
    typical_render_seconds=180,
    image_fields=("image_urls",),
    rules=(_kling3_shots,),
    note="aspect_ratio is ignored when a first frame is given",
)

_SEEDANCE_FRAMES = ("first_frame_url", "last_frame_url")
_SEEDANCE_REFS = ("reference_image_urls", "reference_video_urls", "reference_audio_urls")


def _seedance_fields(*, prompt_min: int, resolutions: tuple[str, ...]) -> tuple[Field, ...]:
    return (
        string("prompt", required=True, min_length=prompt_min, max_length=20_000),
        url("first_frame_url", asset=True),
        url("last_frame_url", asset=True),
        Field("reference_image_urls", ("array",), items="url", asset=True, max_items=9),
        Field("reference_video_urls", ("array",), items="url", asset=True, max_items=3),
        Field("reference_audio_urls", ("array",), items="url", asset=True, max_items=3),
        boolean("return_last_frame", default=False),
        boolean("generate_audio", default=True),
        string("resolution", choices=resolutions, default="720p"),
        string(
            "aspect_ratio",
            choices=("1:1", "4:3", "3:4", "16:9", "9:16", "21:9", "adaptive"),
            default="16:9",
        ),
        integer("duration", minimum=4, maximum=15, default=5),
        boolean("web_search", default=False),
        _NSFW,
    )


_SEEDANCE_RULES: tuple[Rule, ...] = (
    needs("last_frame_url", "first_frame_url"),
    exclusive(_SEEDANCE_FRAMES, _SEEDANCE_REFS),
)
#: ⚠ KIE's page once spelt the key with a trailing space; both spellings are accepted.
_SEEDANCE_ALIASES = {"reference_video_urls ": "reference_video_urls"}

_SEEDANCE2_RATES = {"480p": 19.0, "720p": 41.0, "1080p": 102.0}
_SEEDANCE2 = ModelSpec(
    "bytedance/seedance-2",
    MARKET,
    _seedance_fields(prompt_min=3, resolutions=("480p", "720p", "1080p")),
    lambda p: _SEEDANCE2_RATES[p["resolution"]] * p["duration"],
    typical_render_seconds=180,
    image_fields=("first_frame_url", "last_frame_url"),
    rules=_SEEDANCE_RULES,
    aliases=_SEEDANCE_ALIASES,
)

_SEEDANCE2_MINI_RATES = {"480p": 3.8, "720p": 8.2}  # since the 2026-08-26 price cut
_SEEDANCE2_MINI = ModelSpec(
    "bytedance/seedance-2-mini",
    MARKET,
    # ⚠ Frame fields: in one source's schema only; accepted.
    _seedance_fields(prompt_min=1, resolutions=("480p", "720p")),
    lambda p: _SEEDANCE2_MINI_RATES[p["resolution"]] * p["duration"],
    typical_render_seconds=180,
    image_fields=("first_frame_url", "last_frame_url"),
    rules=_SEEDANCE_RULES,
    aliases=_SEEDANCE_ALIASES,
)

_WAN26_RATES = {"720p": 14.0, "1080p": 21.0}
_WAN26 = ModelSpec(
    "wan/2-6-image-to-video",
    MARKET,
    (
        string("prompt", required=True, min_length=2, max_length=5000),
        urls("image_urls", required=True, min_items=1, max_items=1),
        string("duration", choices=("5", "10", "15"), default="5"),
        string("resolution", choices=("720p", "1080p"), default="1080p"),
        _NSFW,
    ),
    # ⚠ Per second as measured; KIE's table prices it per clip.
    lambda p: _WAN26_RATES[p["resolution"]] * seconds(p),
    typical_render_seconds=120,
    image_fields=("image_urls",),
)

_WAN27_RATES = {"720p": 16.0, "1080p": 24.0}
_WAN27 = ModelSpec(
    "wan/2-7-image-to-video",
    MARKET,
    (
        string("prompt", required=True, min_length=1, max_length=5000),
        url("first_frame_url"),
        url("last_frame_url"),
        url("first_clip_url"),
        # ⚠ One wrapper sends image_url and a string duration, against the docs: accepted.
        url("image_url"),
        string("negative_prompt", max_length=500),
        url("driving_audio_url"),
        string("resolution", choices=("720p", "1080p"), default="1080p"),
        Field(
            "duration",
            ("integer", "string"),
            choices=(*range(2, 16), *strings(*range(2, 16))),
            default=5,
        ),
        boolean("prompt_extend", default=True),
        boolean("watermark", default=False),
        integer("seed", minimum=0, maximum=2_147_483_647),
        _NSFW,
    ),
    lambda p: _WAN27_RATES[p["resolution"]] * seconds(p),
    typical_render_seconds=150,
    image_fields=("first_frame_url",),
    rules=(
        needs_one_of("first_frame_url", "image_url", "first_clip_url"),
        needs("last_frame_url", "first_frame_url"),
    ),
    note="⚠ whether KIE still sells Wan 2.7 video is not documented",
)

_HAILUO23 = ModelSpec(
    "hailuo/2-3-image-to-video-pro",
    MARKET,
    (
        string("prompt", required=True, min_length=1, max_length=5000),
        url("image_url", required=True),
        string("duration", choices=("6", "10"), default="6"),
        string("resolution", choices=("768P", "1080P"), default="768P"),
        _NSFW,
    ),
    # KIE's table prices it per clip (figures not recorded); 8 credits a second as measured.
    lambda p: 8.0 * seconds(p),
    typical_render_seconds=120,
    image_fields=("image_url",),
    rules=(_hailuo_no_10s_1080p,),
)

_MINIMAX_H3_RATES = {"768P": 8.0, "2K": 13.0}  # halved on 2026-09-22
_MINIMAX_H3 = ModelSpec(
    "minimax-h3/image-to-video",
    MARKET,
    (
        string("prompt", required=True, min_length=1, max_length=7000),
        url("first_frame_url"),
        url("last_frame_url"),
        integer("duration", required=True, minimum=4, maximum=15),
        string("resolution", choices=("768P", "2K"), default="2K"),
    ),
    lambda p: _MINIMAX_H3_RATES[p["resolution"]] * p["duration"],
    typical_render_seconds=150,
    image_fields=("first_frame_url", "last_frame_url"),
    rules=(needs_one_of("first_frame_url", "last_frame_url"),),
    note="no aspect ratio",
)

_HAPPYHORSE_RATES = {"720p": 22.5, "1080p": 29.0}
_HAPPYHORSE = ModelSpec(
    "happyhorse-1-1/image-to-video",
    MARKET,
    (
        # Optional; a longer prompt is truncated by KIE, not refused.
        string("prompt"),
        urls("image_urls", required=True, min_items=1, max_items=1),
        string("resolution", choices=("720p", "1080p"), default="1080p"),
        integer("duration", minimum=3, maximum=15, default=5),
    ),
    lambda p: _HAPPYHORSE_RATES[p["resolution"]] * p["duration"],
    typical_render_seconds=120,
    image_fields=("image_urls",),
    note="⚠ the schema does not list callBackUrl; the simulator accepts it and calls back",
)

_GROK_RATES = {"480p": 2.4, "720p": 4.5, "1080p": 8.0}
_GROK = ModelSpec(
    "grok-imagine/image-to-video",
    MARKET,
    (
        urls("image_urls", min_items=1, max_items=7),
        string("task_id", min_length=1),
        integer("index", minimum=0, maximum=5),
        # ⚠ 5000 in KIE's docs, 4096 in a wrapper: the larger cap.
        string("prompt", max_length=5000),
        string("mode", choices=("fun", "normal", "spicy"), default="normal"),
        # ⚠ A string in KIE's docs; a wrapper's schema takes an integer too: both accepted.
        Field(
            "duration",
            ("string", "integer"),
            choices=(*strings(*range(6, 31)), *range(6, 31)),
            default="6",
        ),
        # ⚠ 1080p was added after the April docs: accepted.
        string("resolution", choices=("480p", "720p", "1080p"), default="480p"),
        string("aspect_ratio", choices=("2:3", "3:2", "1:1", "16:9", "9:16"), default="16:9"),
        _NSFW,
    ),
    lambda p: _GROK_RATES[p["resolution"]] * seconds(p),
    typical_render_seconds=60,
    image_fields=("image_urls",),
    rules=(_grok_source,),
    note="aspect_ratio only applies to several images; one image keeps its ratio",
)

_VEO_BASE = {
    "veo3": 250.0,
    # ⚠ 60 on KIE's rate card, 168 measured once (June 2026): the rate card.
    "veo3_fast": 60.0,
    "veo3_lite": 30.0,
}
#: The 1080p and 4K upgrades cost extra (5 and 120 credits).
_VEO_RESOLUTION_EXTRA = {"720p": 0.0, "1080p": 5.0, "4k": 120.0}


def _veo(name: str) -> ModelSpec:
    return ModelSpec(
        name,
        VEO,
        (
            string("prompt", required=True, min_length=1),
            urls("imageUrls", min_items=1, max_items=3),
            string("model", choices=tuple(_VEO_BASE), default="veo3_fast"),
            string(
                "generationType",
                choices=("TEXT_2_VIDEO", "FIRST_AND_LAST_FRAMES_2_VIDEO", "REFERENCE_2_VIDEO"),
            ),
            # ``1:1`` is refused ("Ratio error").
            string("aspect_ratio", choices=("16:9", "9:16", "Auto"), default="16:9"),
            string("resolution", choices=("720p", "1080p", "4k"), default="720p"),
            integer("seeds", minimum=10_000, maximum=99_999),
            boolean("enableTranslation", default=True),
            string("watermark"),
            url("callBackUrl"),
            boolean("enableFallback", default=False),  # deprecated
        ),
        lambda p: _VEO_BASE[name] + _VEO_RESOLUTION_EXTRA[p["resolution"]],
        typical_render_seconds=180,
        image_fields=("imageUrls",),
        rules=(_veo_images,),
        # ⚠ A wrapper sends aspectRatio (camelCase); KIE documents aspect_ratio. Both accepted.
        aliases={"aspectRatio": "aspect_ratio"},
        note="8 s clips with sound; no duration parameter",
    )


def _sora(name: str) -> ModelSpec:
    """Sora 2's last documented schema (April 2026); paused at KIE since June 2026."""
    return ModelSpec(
        name,
        MARKET,
        (
            string("prompt", required=True, min_length=1, max_length=10_000),
            urls("image_urls", required=True, min_items=1, max_items=1),
            string("aspect_ratio", choices=("portrait", "landscape")),
            string("n_frames", choices=("10", "15")),
            boolean("remove_watermark"),
            string("size", choices=("standard", "high")),
            Field("character_id_list", ("array",), items="string", max_items=5),
            string("upload_method", choices=("s3", "oss")),
        ),
        # The old simulator's flat charge; Sora 2 has no current price.
        lambda p: 1.0,
        typical_render_seconds=180,
        image_fields=("image_urls",),
        default_state=PAUSED,
        note="paused at KIE since 2026-06; OpenAI closed Sora's API on 2026-09-24",
    )


#: Veo's default model when the body names none.
VEO_DEFAULT_MODEL: Final = "veo3_fast"

#: A valid body per model, as KIE's pages give them (Market: the whole createTask body without
#: ``callBackUrl``; Veo: the generate body). Tests send them; the demo and docs can show them.
EXAMPLES: Final[dict[str, dict[str, Any]]] = {
    "kling-2.6/image-to-video": {
        "model": "kling-2.6/image-to-video",
        "input": {
            "prompt": "Slow 180° orbit around the bottle, soft studio light, no text",
            "image_urls": ["https://cdn.example.com/p/sku123.png"],
            "sound": False,
            "duration": "5",
        },
    },
    "kling-3.0/video": {
        "model": "kling-3.0/video",
        "input": {
            "prompt": "Camera dollies in on the sneaker, laces settle, gentle shadow",
            "image_urls": ["https://cdn.example.com/p/shoe.jpg"],
            "sound": False,
            "duration": "5",
            "mode": "std",
            "multi_shots": False,
        },
    },
    "bytedance/seedance-2": {
        "model": "bytedance/seedance-2",
        "input": {
            "prompt": "Perfume bottle, mist drifts past, slow push-in",
            "first_frame_url": "https://cdn.example.com/p/perfume.png",
            "resolution": "720p",
            "aspect_ratio": "adaptive",
            "duration": 5,
            "generate_audio": False,
        },
    },
    "bytedance/seedance-2-mini": {
        "model": "bytedance/seedance-2-mini",
        "input": {
            "prompt": "Ceramic mug on a table, steam curls up, slow push-in",
            "first_frame_url": "https://cdn.example.com/p/mug.png",
            "resolution": "720p",
            "aspect_ratio": "9:16",
            "duration": 5,
            "generate_audio": False,
        },
    },
    "wan/2-6-image-to-video": {
        "model": "wan/2-6-image-to-video",
        "input": {
            "prompt": "The lamp switches on, warm light fills the frame",
            "image_urls": ["https://cdn.example.com/p/lamp.jpg"],
            "duration": "5",
            "resolution": "720p",
        },
    },
    "wan/2-7-image-to-video": {
        "model": "wan/2-7-image-to-video",
        "input": {
            "prompt": "Watch face catches a moving glint, slow parallax",
            "first_frame_url": "https://cdn.example.com/p/watch.jpg",
            "resolution": "1080p",
            "duration": 5,
            "negative_prompt": "text, watermark, warped logo",
        },
    },
    "hailuo/2-3-image-to-video-pro": {
        "model": "hailuo/2-3-image-to-video-pro",
        "input": {
            "prompt": "Sunglasses rotate slowly, reflections slide across the lenses",
            "image_url": "https://cdn.example.com/p/glasses.jpg",
            "duration": "6",
            "resolution": "768P",
        },
    },
    "minimax-h3/image-to-video": {
        "model": "minimax-h3/image-to-video",
        "input": {
            "prompt": "Lipstick cap lifts off, slow turntable",
            "first_frame_url": "https://cdn.example.com/p/lip.png",
            "duration": 6,
            "resolution": "768P",
        },
    },
    "happyhorse-1-1/image-to-video": {
        "model": "happyhorse-1-1/image-to-video",
        "input": {
            "prompt": "Steam rises from the coffee cup, camera slowly pushes in",
            "image_urls": ["https://cdn.example.com/p/cup.jpg"],
            "resolution": "1080p",
            "duration": 5,
        },
    },
    "grok-imagine/image-to-video": {
        "model": "grok-imagine/image-to-video",
        "input": {
            "image_urls": ["https://cdn.example.com/p/bag.png"],
            "prompt": "Handbag sways gently, light sweeps across leather",
            "mode": "normal",
            "duration": "6",
            "resolution": "720p",
        },
    },
    **{
        name: {
            "prompt": "The serum bottle turns slightly as light ripples across the glass",
            "imageUrls": ["https://cdn.example.com/p/serum.jpg"],
            "model": name,
            "generationType": "FIRST_AND_LAST_FRAMES_2_VIDEO",
            "aspect_ratio": "9:16",
        }
        for name in ("veo3", "veo3_fast", "veo3_lite")
    },
}


MODELS: Final[dict[str, ModelSpec]] = {
    entry.name: dataclasses.replace(entry, example=EXAMPLES.get(entry.name))
    for entry in (
        _KLING26,
        _KLING30,
        _SEEDANCE2,
        _SEEDANCE2_MINI,
        _WAN26,
        _WAN27,
        _HAILUO23,
        _MINIMAX_H3,
        _HAPPYHORSE,
        _GROK,
        _veo("veo3"),
        _veo("veo3_fast"),
        _veo("veo3_lite"),
        _sora("sora-2-image-to-video"),
        _sora("sora-2-pro-image-to-video"),
    )
}


def spec(model: str) -> ModelSpec | None:
    """The model's spec, or ``None`` for a name KIE does not know."""
    return MODELS.get(model)
