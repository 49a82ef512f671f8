"""The video models KIE sells, one :class:`ModelSpec` each, and the one option vocabulary.

An operator speaks one vocabulary for every model (:class:`Options`): duration in seconds,
resolution (``480p``, ``720p``, ``768p``, ``1080p``, ``2k``, ``4k``), orientation (``auto``: follow
the photo, ``portrait``, ``landscape``, ``square``) and sound (on or off). Each model maps those to
its own fields, types and spellings (Kling wants ``duration: "5"``, a string; Seedance
``duration: 5``, a number; Hailuo ``"768P"``). A value a model does not take is refused when the
process starts (:meth:`ModelSpec.check`), so it is never sent to KIE.

An option left unset (``None``) means the catalog's choice for product shots: the model's
720p-class resolution, the photo's own orientation, and no sound where the model can be silent.
The choice is sent explicitly, so the price of a clip is known before it is made.

The entries themselves live in :mod:`jobs.video.models`, one module per vendor. This module is
data and pure functions only: no settings, no HTTP.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "ORIENTATIONS",
    "RESOLUTIONS",
    "Audio",
    "CatalogError",
    "Family",
    "ModelSpec",
    "Options",
]

#: The resolution words of the vocabulary, lowest first.
RESOLUTIONS = ("480p", "720p", "768p", "1080p", "2k", "4k")
#: The orientation words of the vocabulary; ``auto`` keeps the photo's own.
ORIENTATIONS = ("auto", "portrait", "landscape", "square")


class CatalogError(ValueError):
    """An option or model the catalog refuses. The text is one sentence without the variable
    name; the settings add which variable held the value. ``option`` names the option at fault
    (``duration``, ``resolution``, ``orientation``, ``sound``), if one is."""

    def __init__(self, message: str, option: str | None = None) -> None:
        super().__init__(message)
        self.option = option


class Family(enum.StrEnum):
    """Which KIE endpoints a model is reached through."""

    #: ``POST /api/v1/jobs/createTask`` + ``GET /api/v1/jobs/recordInfo`` (``state``).
    MARKET = "market"
    #: ``POST /api/v1/veo/generate`` + ``GET /api/v1/veo/record-info`` (``successFlag``).
    VEO = "veo"


class Audio(enum.StrEnum):
    """What a model can do about sound."""

    FLAG = "flag"  # a boolean field turns it on or off
    NONE = "none"  # always silent
    ALWAYS = "always"  # native audio, no switch


@dataclass(frozen=True)
class Options:
    """One clip's options in the shared vocabulary; ``None`` is the catalog's choice."""

    duration: int | None = None
    resolution: str | None = None
    orientation: str | None = None
    sound: bool | None = None

    def describe(self) -> str:
        parts = []
        if self.duration is not None:
            parts.append(f"{self.duration} s")
        if self.resolution is not None:
            parts.append(self.resolution)
        if self.orientation not in (None, "auto"):
            parts.append(str(self.orientation))
        if self.sound is not None:
            parts.append("sound" if self.sound else "silent")
        return ", ".join(parts) or "defaults"

    def as_dict(self) -> dict[str, Any]:
        return {
            k: v
            for k, v in (
                ("duration", self.duration),
                ("resolution", self.resolution),
                ("orientation", self.orientation),
                ("sound", self.sound),
            )
            if v is not None
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Options:
        """Options stored in a job's payload (already checked when the job was submitted)."""
        duration = raw.get("duration")
        sound = raw.get("sound")
        return cls(
            duration=int(duration) if duration is not None else None,
            resolution=str(raw["resolution"]) if raw.get("resolution") is not None else None,
            orientation=str(raw["orientation"]) if raw.get("orientation") is not None else None,
            sound=bool(sound) if sound is not None else None,
        )


#: Prices: resolution → credits per second, or (resolution, sound) → credits per second.
PriceFn = Callable[["ModelSpec", Options], float]


@dataclass(frozen=True)
class ModelSpec:
    """One model: where it is sent, what it takes, what it costs and how long it takes.

    ``durations`` are the accepted seconds; ``duration_type`` is how the model types the field
    (``str`` or ``int``; KIE is type-strict). ``resolutions`` maps a vocabulary word to the
    model's own value in ``resolution_field`` (empty: the model has no such control).
    ``orientations`` likewise for ``ratio_field`` (``auto`` is always accepted: it sends the
    model's follow-the-image value, or nothing). ``image_field`` takes the photo's URL, as a
    one-element list when ``image_list``. ``fixed`` are fields always sent as they are.
    """

    id: str
    vendor: str
    family: Family
    prompt_cap: int
    image_field: str
    image_list: bool
    durations: tuple[int, ...]
    duration_field: str | None
    duration_type: type
    default_duration: int
    resolutions: Mapping[str, str]
    resolution_field: str | None
    default_resolution: str | None
    orientations: Mapping[str, str]
    ratio_field: str | None
    audio: Audio
    sound_field: str | None
    price: PriceFn
    #: Typical seconds from createTask to a finished video, and when to poll first.
    render_seconds: int
    first_poll_seconds: int
    #: What it is good at for product videos (README, `worker models ls`).
    good_at: str
    fixed: Mapping[str, Any] = field(default_factory=dict)
    #: Whether ``callBackUrl`` may be sent (a schema that forbids extra fields: no).
    accepts_callback: bool = True
    #: The createTask ``model`` value when it differs from ``id`` (Veo's ``veo3_fast``, ...).
    wire_model: str | None = None
    #: Refuses an option combination the model does not take: the reason, or None.
    combination: Callable[[Options], str | None] | None = None
    #: Withdrawn models are refused at start; ``replacement`` is suggested instead.
    withdrawn: str | None = None
    replacement: str | None = None

    # -- options ---------------------------------------------------------------------------

    def resolve(self, options: Options) -> Options:
        """``options`` with every unset value replaced by this model's choice, or
        :class:`CatalogError` naming the value it does not take and the allowed ones."""
        if self.withdrawn:
            raise CatalogError(
                f"{self.id} is withdrawn ({self.withdrawn}); use {self.replacement} instead"
            )
        duration = self.default_duration if options.duration is None else options.duration
        if duration not in self.durations:
            raise CatalogError(
                f"{self.id} does not take a duration of {duration} s "
                f"(allowed: {_span(self.durations)})",
                "duration",
            )
        resolution = options.resolution
        if resolution is None:
            resolution = self.default_resolution
        elif resolution not in self.resolutions:
            allowed = ", ".join(self.resolutions) or "none: it has no resolution setting"
            raise CatalogError(
                f"{self.id} does not take resolution {resolution} (allowed: {allowed})",
                "resolution",
            )
        orientation = options.orientation or "auto"
        if orientation != "auto" and orientation not in self.orientations:
            allowed = ", ".join(dict.fromkeys(["auto", *self.orientations]))
            follows = "" if self.orientations else ": it follows the photo's"
            raise CatalogError(
                f"{self.id} does not take orientation {orientation}{follows} (allowed: {allowed})",
                "orientation",
            )
        sound = options.sound
        if sound is None:
            sound = self.audio is Audio.ALWAYS
        elif sound and self.audio is Audio.NONE:
            raise CatalogError(f"{self.id} makes silent videos only (allowed sound: off)", "sound")
        elif not sound and self.audio is Audio.ALWAYS:
            raise CatalogError(f"{self.id} always makes sound (allowed sound: on)", "sound")
        resolved = Options(duration, resolution, orientation, sound)
        if self.combination is not None and (why := self.combination(resolved)):
            raise CatalogError(f"{self.id} {why}", "duration")
        return resolved

    def credits(self, options: Options) -> float:
        """KIE credits one clip with these options costs (the catalog's price)."""
        return round(self.price(self, self.resolve(options)), 2)

    # -- the request -----------------------------------------------------------------------

    def build(self, options: Options, *, prompt: str, image_url: str) -> dict[str, Any]:
        """The model's input fields (Market: ``input``; Veo: the flat body without
        ``callBackUrl``) for one clip. ``options`` must be ones :meth:`resolve` accepts."""
        o = self.resolve(options)
        body: dict[str, Any] = {"prompt": prompt[: self.prompt_cap]}
        body[self.image_field] = [image_url] if self.image_list else image_url
        if self.duration_field is not None and o.duration is not None:
            body[self.duration_field] = self.duration_type(o.duration)
        if self.resolution_field is not None and o.resolution is not None:
            body[self.resolution_field] = self.resolutions[o.resolution]
        if self.ratio_field is not None and o.orientation in self.orientations:
            body[self.ratio_field] = self.orientations[str(o.orientation)]
        if self.sound_field is not None and self.audio is Audio.FLAG:
            body[self.sound_field] = bool(o.sound)
        body.update(self.fixed)
        return body

    @property
    def model_value(self) -> str:
        """What the request's ``model`` field says."""
        return self.wire_model or self.id

    @property
    def live(self) -> bool:
        return self.withdrawn is None


def _span(values: tuple[int, ...]) -> str:
    """``4-15`` for a run of consecutive numbers, else ``5, 10``."""
    if len(values) > 2 and list(values) == list(range(values[0], values[-1] + 1)):
        return f"{values[0]}-{values[-1]}"
    return ", ".join(str(v) for v in values)


# --- price helpers, used by the entries ------------------------------------------------------


def per_second(rates: Mapping[str | None, float]) -> PriceFn:
    """Credits per second by resolution (``None``: the model has no resolution setting)."""

    def price(spec: ModelSpec, o: Options) -> float:
        return rates[o.resolution] * (o.duration or spec.default_duration)

    return price


def per_second_with_sound(rates: Mapping[tuple[str | None, bool], float]) -> PriceFn:
    """Credits per second by (resolution, sound)."""

    def price(spec: ModelSpec, o: Options) -> float:
        return rates[(o.resolution, bool(o.sound))] * (o.duration or spec.default_duration)

    return price


def per_clip(rates: Mapping[tuple[Any, ...], float]) -> PriceFn:
    """Credits per clip by (duration, resolution, sound)."""

    def price(spec: ModelSpec, o: Options) -> float:
        return rates[(o.duration, o.resolution, bool(o.sound))]

    return price


def parse_resolution(variable: str, raw: str) -> str | None:
    """A resolution word from configuration (``""``: the catalog's choice), or CatalogError."""
    value = raw.strip().lower()
    if not value:
        return None
    if value not in RESOLUTIONS:
        raise CatalogError(f"{variable} must be one of {', '.join(RESOLUTIONS)}, got {raw!r}")
    return value


def parse_orientation(variable: str, raw: str) -> str | None:
    value = raw.strip().lower()
    if not value:
        return None
    if value not in ORIENTATIONS:
        raise CatalogError(f"{variable} must be one of {', '.join(ORIENTATIONS)}, got {raw!r}")
    return value


_TRUE = ("on", "true", "yes", "1")
_FALSE = ("off", "false", "no", "0")


def parse_sound(variable: str, raw: str | bool | None) -> bool | None:
    if raw is None or isinstance(raw, bool):
        return raw
    value = raw.strip().lower()
    if not value:
        return None
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise CatalogError(f"{variable} must be on or off, got {raw!r}")


def parse_duration(variable: str, raw: str | int | None) -> int | None:
    if raw is None:
        return None
    if isinstance(raw, bool):
        raise CatalogError(f"{variable} must be whole seconds, got {raw!r}")
    if isinstance(raw, int):
        value = raw
    else:
        text = raw.strip().lower().removesuffix("s").strip()
        if not text:
            return None
        if not text.isdigit():
            raise CatalogError(f"{variable} must be whole seconds, got {raw!r}")
        value = int(text)
    if not 1 <= value <= 60:
        raise CatalogError(f"{variable} must be from 1 to 60 seconds, got {raw!r}")
    return value
