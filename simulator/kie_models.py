"""The KIE models the simulator serves: each one's request schema, price and typical render time.

This is the simulator's own encoding of KIE's model pages, written from KIE's documentation and
not imported from the client (``jobs/video``): a body the client builds wrongly must be refused
here, exactly as KIE would refuse it. When KIE changes a model, this file changes first.

What KIE enforces, and so what ``validate`` answers:

- a required field missing: ``500 "<field> is required"`` (KIE's observed answer, not a 422);
- an unknown field, a wrong JSON type (KIE is type-strict: ``"5"`` is not ``5``), a value outside
  the allowed set or range, a wrong image count or a prompt over the cap: ``422`` with a message
  naming the field (``input.duration must be a string, got 5``);
- rules between fields (Hailuo has no 10 s at 1080P, Seedance's last frame needs a first one...):
  ``422`` naming the fields.

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

Sora 2 (``sora-2-*``) is here too, as KIE answers it since June 2026: paused. Its last documented
schema is kept only for the ``legacy_sora`` transition switch of ``simulator.config``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

#: Model states: how createTask (or Veo's generate) answers a model.
LIVE: Final = "live"
PAUSED: Final = "paused"
UNKNOWN: Final = "unknown"
WITHDRAWN: Final = "withdrawn"
STATES: Final = (LIVE, PAUSED, UNKNOWN, WITHDRAWN)

MARKET: Final = "market"
VEO: Final = "veo"

#: What KIE answers for a paused model (every ``sora-2*`` since June 2026).
PAUSED_MSG: Final = "This interface is temporarily paused"
#: What KIE answers for a model name it does not know (422; 404 in one probe).
UNKNOWN_MSG: Final = "The model name you specified is not supported, please check the model name"
#: What KIE answers for a withdrawn page or disabled feature (505; 404 also seen).
WITHDRAWN_MSG: Final = "the page does not exist or is not published"


@dataclass(frozen=True)
class Problem:
    """Why a request is refused: KIE's code and a message naming the field."""

    code: int
    message: str


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__  # pragma: no cover - json.loads makes nothing else


def _show(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 60 else text[:57] + "..."


def is_url(value: Any, *, asset: bool = False) -> bool:
    """An http(s) URL (or, where KIE takes uploaded assets, ``asset://<id>``)."""
    if not isinstance(value, str):
        return False
    if asset and value.startswith("asset://") and len(value) > len("asset://"):
        return True
    return value.startswith(("http://", "https://")) and len(value) > len("https://")


@dataclass(frozen=True)
class Field:
    """One request field: its JSON type(s) and what KIE allows.

    ``types`` has more than one entry only where sources disagree (⚠). ``items`` is the type of
    an array's elements (``"url"``: an http(s) URL string, ``"object"``). ``minimum``/``maximum``
    bound numbers; ``min_length``/``max_length`` bound a string's characters; ``min_items`` /
    ``max_items`` an array's length.
    """

    name: str
    types: tuple[str, ...]
    required: bool = False
    choices: tuple[Any, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    min_length: int | None = None
    max_length: int | None = None
    url: bool = False
    asset: bool = False
    items: str | None = None
    min_items: int | None = None
    max_items: int | None = None
    default: Any = None

    def check(self, value: Any, path: str) -> Problem | None:
        """``None`` if ``value`` is acceptable, else the 422 naming ``path``."""
        kind = _json_type(value)
        accepted = set(self.types)
        if "number" in accepted:
            accepted.add("integer")
        if kind not in accepted:
            wanted = " or ".join(_ARTICLE.get(t, t) for t in self.types)
            return Problem(422, f"{path} must be {wanted}, got {_show(value)}")
        if self.choices is not None and value not in self.choices:
            allowed = ", ".join(_show(c) for c in self.choices)
            return Problem(422, f"{path} must be one of {allowed}; got {_show(value)}")
        if kind in ("integer", "number"):
            if self.minimum is not None and value < self.minimum:
                return Problem(422, f"{path} must be at least {self.minimum:g}, got {value}")
            if self.maximum is not None and value > self.maximum:
                return Problem(422, f"{path} must be at most {self.maximum:g}, got {value}")
        if kind == "string":
            if self.min_length is not None and len(value) < self.min_length:
                return Problem(422, f"{path} must have at least {self.min_length} characters")
            if self.max_length is not None and len(value) > self.max_length:
                return Problem(422, f"{path} must have at most {self.max_length} characters")
            if self.url and not is_url(value, asset=self.asset):
                return Problem(422, f"{path} must be an http(s) URL")
        if kind == "array":
            if self.min_items is not None and len(value) < self.min_items:
                return Problem(422, f"{path} must have at least {self.min_items} item(s)")
            if self.max_items is not None and len(value) > self.max_items:
                return Problem(422, f"{path} must have at most {self.max_items} item(s)")
            for i, item in enumerate(value):
                problem = self._check_item(item, f"{path}[{i}]")
                if problem is not None:
                    return problem
        return None

    def _check_item(self, item: Any, path: str) -> Problem | None:
        if self.items == "url":
            if not is_url(item, asset=self.asset):
                return Problem(422, f"{path} must be an http(s) URL, got {_show(item)}")
        elif self.items == "string":
            if not isinstance(item, str):
                return Problem(422, f"{path} must be a string, got {_show(item)}")
        elif self.items == "object" and not isinstance(item, dict):
            return Problem(422, f"{path} must be an object, got {_show(item)}")
        return None


_ARTICLE = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "a boolean",
    "array": "an array",
    "object": "an object",
}

Params = Mapping[str, Any]
Rule = Callable[[Params, str], Problem | None]


@dataclass(frozen=True)
class ModelSpec:
    """One model as KIE serves it."""

    name: str
    family: str
    fields: tuple[Field, ...]
    #: KIE credits for a request with these (already validated) parameters.
    price: Callable[[Params], float]
    typical_render_seconds: float
    #: Where the product image goes (informative: shown by ``GET /_sim/models``).
    image_fields: tuple[str, ...]
    #: Checks between fields, run after every field passed.
    rules: tuple[Rule, ...] = ()
    #: Alternative spellings KIE may accept for a field (⚠ conflicts), alias → field name.
    aliases: Mapping[str, str] = field(default_factory=dict)
    #: The state KIE serves it in today.
    default_state: str = LIVE
    #: Only the ``legacy_sora`` transition switch makes it live.
    legacy: bool = False
    note: str = ""

    def field(self, name: str) -> Field | None:
        for f in self.fields:
            if f.name == name:
                return f
        return None

    @property
    def prompt_max(self) -> int | None:
        prompt = self.field("prompt")
        return prompt.max_length if prompt is not None else None

    def validate(self, params: Params, prefix: str) -> Problem | None:
        """Check ``params`` (Market: the ``input`` object; Veo: the whole body).

        ``prefix`` is put before field names in messages (``"input."`` for Market). Missing
        required fields come first (500), then unknown fields, then each field, then the rules.
        """
        known = {f.name: f for f in self.fields}
        given = {self.aliases.get(k, k): v for k, v in params.items()}
        for f in self.fields:
            if f.required and f.name not in given:
                return Problem(500, f"{f.name} is required")
        for name in params:
            if self.aliases.get(name, name) not in known:
                return Problem(422, f"{prefix}{name} is not a parameter of {self.name}")
        for name, value in params.items():
            problem = known[self.aliases.get(name, name)].check(value, f"{prefix}{name}")
            if problem is not None:
                return problem
        for rule in self.rules:
            problem = rule(given, prefix)
            if problem is not None:
                return problem
        return None

    def value(self, params: Params, name: str) -> Any:
        """A parameter as KIE reads it: the given value, else the field's default."""
        for key, value in params.items():
            if self.aliases.get(key, key) == name:
                return value
        f = self.field(name)
        return f.default if f is not None else None

    def credits(self, params: Params) -> float:
        return round(float(self.price(_Defaults(self, params))), 4)

    def example_params(self) -> dict[str, Any]:
        """The parameters of this model's documented example (``{}`` when it has none)."""
        example = EXAMPLES.get(self.name)
        if example is None:
            return {}
        params = example if self.family == VEO else example["input"]
        return dict(params)

    def example_credits(self) -> float:
        """What the documented example costs: the price of the model's usual options."""
        return self.credits(self.example_params())

    def describe(self) -> dict[str, Any]:
        """What ``GET /_sim/models`` shows of the model (besides its state and counters)."""
        return {
            "model": self.name,
            "family": self.family,
            "endpoint": "/api/v1/veo/generate" if self.family == VEO else "/api/v1/jobs/createTask",
            "default_state": self.default_state,
            "legacy": self.legacy,
            "typical_render_seconds": self.typical_render_seconds,
            "prompt_max": self.prompt_max,
            "image_fields": list(self.image_fields),
            "example_credits": self.example_credits(),
            "fields": {
                f.name: {
                    "types": list(f.types),
                    "required": f.required,
                    **({"choices": list(f.choices)} if f.choices is not None else {}),
                    **({"minimum": f.minimum} if f.minimum is not None else {}),
                    **({"maximum": f.maximum} if f.maximum is not None else {}),
                    **({"max_length": f.max_length} if f.max_length is not None else {}),
                    **({"max_items": f.max_items} if f.max_items is not None else {}),
                    **({"default": f.default} if f.default is not None else {}),
                }
                for f in self.fields
            },
            "note": self.note,
        }


class _Defaults(Mapping[str, Any]):
    """Parameters as a price function reads them: each field's default fills what is missing."""

    def __init__(self, spec: ModelSpec, params: Params) -> None:
        self._spec = spec
        self._params = params

    def __getitem__(self, name: str) -> Any:
        return self._spec.value(self._params, name)

    def __iter__(self) -> Any:
        return iter(f.name for f in self._spec.fields)

    def __len__(self) -> int:
        return len(self._spec.fields)


# --- field shorthands ----------------------------------------------------------------------------


def _s(name: str, **kw: Any) -> Field:
    return Field(name, ("string",), **kw)


def _i(name: str, **kw: Any) -> Field:
    return Field(name, ("integer",), **kw)


def _b(name: str, **kw: Any) -> Field:
    return Field(name, ("boolean",), **kw)


def _urls(name: str, **kw: Any) -> Field:
    return Field(name, ("array",), items="url", **kw)


def _url(name: str, **kw: Any) -> Field:
    return Field(name, ("string",), url=True, **kw)


def _strings(*values: int) -> tuple[str, ...]:
    return tuple(str(v) for v in values)


def _seconds(params: Params, name: str = "duration") -> int:
    """A duration as a number of seconds, whether KIE wants it as a string or an integer."""
    return int(params[name])


# --- rules between fields ------------------------------------------------------------------------


def _needs_one_of(*names: str) -> Rule:
    def rule(params: Params, prefix: str) -> Problem | None:
        if any(params.get(n) not in (None, "", []) for n in names):
            return None
        return Problem(500, f"{names[0]} is required")

    return rule


def _needs(field_name: str, needed: str) -> Rule:
    def rule(params: Params, prefix: str) -> Problem | None:
        if field_name in params and needed not in params:
            return Problem(422, f"{prefix}{field_name} needs {prefix}{needed}")
        return None

    return rule


def _exclusive(group_a: tuple[str, ...], group_b: tuple[str, ...]) -> Rule:
    def rule(params: Params, prefix: str) -> Problem | None:
        a = [n for n in group_a if params.get(n)]
        b = [n for n in group_b if params.get(n)]
        if a and b:
            return Problem(422, f"{prefix}{a[0]} cannot be used together with {prefix}{b[0]}")
        return None

    return rule


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
                _s("prompt", required=True, min_length=1, max_length=500),
                _i("duration", required=True, minimum=1, maximum=12),
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

_NSFW = _b("nsfw_checker", default=False)


def _kling26_price(p: Params) -> float:
    # Per clip by sound x duration: 55 credits per 5 s silent, about twice that with sound.
    per_5s = 110 if p["sound"] else 55
    return per_5s * _seconds(p) / 5


_KLING26 = ModelSpec(
    "kling-2.6/image-to-video",
    MARKET,
    (
        _s("prompt", required=True, min_length=1, max_length=1000),
        _urls("image_urls", required=True, min_items=1, max_items=1),
        _b("sound", required=True),
        # The page marks duration required but gives a default: accepted when absent.
        _s("duration", choices=("5", "10"), default="5"),
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
        _s("prompt", min_length=1),
        _urls("image_urls", min_items=1, max_items=2),
        _b("sound", required=True),
        _s("duration", required=True, choices=_strings(*range(3, 16))),
        _s("aspect_ratio", choices=("16:9", "9:16", "1:1"), default="1:1"),
        # ⚠ Default pro (KIE) or std (wrappers); 4K added later. The schema requires it.
        _s("mode", required=True, choices=("std", "pro", "4K")),
        _b("multi_shots", required=True),
        # ⚠ Listed as required, yet omitted successfully with multi_shots false: a rule checks it.
        Field("multi_prompt", ("array",), items="object", min_items=1, max_items=6),
        Field("kling_elements", ("array",), items="object"),
    ),
    lambda p: _KLING30_RATES[p["mode"]][1 if p["sound"] else 0] * _seconds(p),
    typical_render_seconds=180,
    image_fields=("image_urls",),
    rules=(_kling3_shots,),
    note="aspect_ratio is ignored when a first frame is given",
)

_SEEDANCE_FRAMES = ("first_frame_url", "last_frame_url")
_SEEDANCE_REFS = ("reference_image_urls", "reference_video_urls", "reference_audio_urls")


def _seedance_fields(*, prompt_min: int, resolutions: tuple[str, ...]) -> tuple[Field, ...]:
    return (
        _s("prompt", required=True, min_length=prompt_min, max_length=20_000),
        _url("first_frame_url", asset=True),
        _url("last_frame_url", asset=True),
        Field("reference_image_urls", ("array",), items="url", asset=True, max_items=9),
        Field("reference_video_urls", ("array",), items="url", asset=True, max_items=3),
        Field("reference_audio_urls", ("array",), items="url", asset=True, max_items=3),
        _b("return_last_frame", default=False),
        _b("generate_audio", default=True),
        _s("resolution", choices=resolutions, default="720p"),
        _s(
            "aspect_ratio",
            choices=("1:1", "4:3", "3:4", "16:9", "9:16", "21:9", "adaptive"),
            default="16:9",
        ),
        _i("duration", minimum=4, maximum=15, default=5),
        _b("web_search", default=False),
        _NSFW,
    )


_SEEDANCE_RULES: tuple[Rule, ...] = (
    _needs("last_frame_url", "first_frame_url"),
    _exclusive(_SEEDANCE_FRAMES, _SEEDANCE_REFS),
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
        _s("prompt", required=True, min_length=2, max_length=5000),
        _urls("image_urls", required=True, min_items=1, max_items=1),
        _s("duration", choices=("5", "10", "15"), default="5"),
        _s("resolution", choices=("720p", "1080p"), default="1080p"),
        _NSFW,
    ),
    # ⚠ Per second as measured; KIE's table prices it per clip.
    lambda p: _WAN26_RATES[p["resolution"]] * _seconds(p),
    typical_render_seconds=120,
    image_fields=("image_urls",),
)

_WAN27_RATES = {"720p": 16.0, "1080p": 24.0}
_WAN27 = ModelSpec(
    "wan/2-7-image-to-video",
    MARKET,
    (
        _s("prompt", required=True, min_length=1, max_length=5000),
        _url("first_frame_url"),
        _url("last_frame_url"),
        _url("first_clip_url"),
        # ⚠ One wrapper sends image_url and a string duration, against the docs: accepted.
        _url("image_url"),
        _s("negative_prompt", max_length=500),
        _url("driving_audio_url"),
        _s("resolution", choices=("720p", "1080p"), default="1080p"),
        Field(
            "duration",
            ("integer", "string"),
            choices=(*range(2, 16), *_strings(*range(2, 16))),
            default=5,
        ),
        _b("prompt_extend", default=True),
        _b("watermark", default=False),
        _i("seed", minimum=0, maximum=2_147_483_647),
        _NSFW,
    ),
    lambda p: _WAN27_RATES[p["resolution"]] * _seconds(p),
    typical_render_seconds=150,
    image_fields=("first_frame_url",),
    rules=(
        _needs_one_of("first_frame_url", "image_url", "first_clip_url"),
        _needs("last_frame_url", "first_frame_url"),
    ),
    note="⚠ whether KIE still sells Wan 2.7 video is not documented",
)

_HAILUO23 = ModelSpec(
    "hailuo/2-3-image-to-video-pro",
    MARKET,
    (
        _s("prompt", required=True, min_length=1, max_length=5000),
        _url("image_url", required=True),
        _s("duration", choices=("6", "10"), default="6"),
        _s("resolution", choices=("768P", "1080P"), default="768P"),
        _NSFW,
    ),
    # KIE's table prices it per clip (figures not recorded); 8 credits a second as measured.
    lambda p: 8.0 * _seconds(p),
    typical_render_seconds=120,
    image_fields=("image_url",),
    rules=(_hailuo_no_10s_1080p,),
)

_MINIMAX_H3_RATES = {"768P": 8.0, "2K": 13.0}  # halved on 2026-09-22
_MINIMAX_H3 = ModelSpec(
    "minimax-h3/image-to-video",
    MARKET,
    (
        _s("prompt", required=True, min_length=1, max_length=7000),
        _url("first_frame_url"),
        _url("last_frame_url"),
        _i("duration", required=True, minimum=4, maximum=15),
        _s("resolution", choices=("768P", "2K"), default="2K"),
    ),
    lambda p: _MINIMAX_H3_RATES[p["resolution"]] * p["duration"],
    typical_render_seconds=150,
    image_fields=("first_frame_url", "last_frame_url"),
    rules=(_needs_one_of("first_frame_url", "last_frame_url"),),
    note="no aspect ratio",
)

_HAPPYHORSE_RATES = {"720p": 22.5, "1080p": 29.0}
_HAPPYHORSE = ModelSpec(
    "happyhorse-1-1/image-to-video",
    MARKET,
    (
        # Optional; a longer prompt is truncated by KIE, not refused.
        _s("prompt"),
        _urls("image_urls", required=True, min_items=1, max_items=1),
        _s("resolution", choices=("720p", "1080p"), default="1080p"),
        _i("duration", minimum=3, maximum=15, default=5),
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
        _urls("image_urls", min_items=1, max_items=7),
        _s("task_id", min_length=1),
        _i("index", minimum=0, maximum=5),
        # ⚠ 5000 in KIE's docs, 4096 in a wrapper: the larger cap.
        _s("prompt", max_length=5000),
        _s("mode", choices=("fun", "normal", "spicy"), default="normal"),
        # ⚠ A string in KIE's docs; a wrapper's schema takes an integer too: both accepted.
        Field(
            "duration",
            ("string", "integer"),
            choices=(*_strings(*range(6, 31)), *range(6, 31)),
            default="6",
        ),
        # ⚠ 1080p was added after the April docs: accepted.
        _s("resolution", choices=("480p", "720p", "1080p"), default="480p"),
        _s("aspect_ratio", choices=("2:3", "3:2", "1:1", "16:9", "9:16"), default="16:9"),
        _NSFW,
    ),
    lambda p: _GROK_RATES[p["resolution"]] * _seconds(p),
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
            _s("prompt", required=True, min_length=1),
            _urls("imageUrls", min_items=1, max_items=3),
            _s("model", choices=tuple(_VEO_BASE), default="veo3_fast"),
            _s(
                "generationType",
                choices=("TEXT_2_VIDEO", "FIRST_AND_LAST_FRAMES_2_VIDEO", "REFERENCE_2_VIDEO"),
            ),
            # ``1:1`` is refused ("Ratio error").
            _s("aspect_ratio", choices=("16:9", "9:16", "Auto"), default="16:9"),
            _s("resolution", choices=("720p", "1080p", "4k"), default="720p"),
            _i("seeds", minimum=10_000, maximum=99_999),
            _b("enableTranslation", default=True),
            _s("watermark"),
            _url("callBackUrl"),
            _b("enableFallback", default=False),  # deprecated
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
            _s("prompt", required=True, min_length=1, max_length=10_000),
            _urls("image_urls", required=True, min_items=1, max_items=1),
            _s("aspect_ratio", choices=("portrait", "landscape")),
            _s("n_frames", choices=("10", "15")),
            _b("remove_watermark"),
            _s("size", choices=("standard", "high")),
            Field("character_id_list", ("array",), items="string", max_items=5),
            _s("upload_method", choices=("s3", "oss")),
        ),
        # The old simulator's flat charge; Sora 2 has no current price.
        lambda p: 1.0,
        typical_render_seconds=180,
        image_fields=("image_urls",),
        default_state=PAUSED,
        legacy=True,
        note="paused at KIE since 2026-06; OpenAI closed Sora's API on 2026-09-24",
    )


MODELS: Final[dict[str, ModelSpec]] = {
    spec.name: spec
    for spec in (
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


def spec(model: str) -> ModelSpec | None:
    """The model's spec, or ``None`` for a name KIE does not know."""
    return MODELS.get(model)
