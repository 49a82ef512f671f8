"""Tiers: what an operator sells. Each has a price in user credits and an ordered chain of
models with their options; a job goes to the first live model of its chain.

Without a tiers file there is one tier, ``standard``, built from ``VIDEO_MODELS`` (comma-separated
model ids in fallback order; ``KIE_MODEL`` is an alias for a chain of one), ``VIDEO_PRICE_CREDITS``
and the options ``VIDEO_DURATION``, ``VIDEO_RESOLUTION``, ``VIDEO_ORIENTATION``, ``VIDEO_SOUND``.
``VIDEO_TIERS_FILE`` (TOML) defines several instead::

    default = "standard"          # the tier of a request that names none (else the first)

    [tiers.standard]
    price = 1                     # user credits per video
    duration = 5                  # options for every model of the chain ...
    chain = ["bytedance/seedance-2-mini", "minimax-h3/image-to-video"]

    [tiers.premium]
    price = 4
    priority = 1                  # passes KIE's create limit before lower tiers (default 0)
    chain = [
      { model = "veo3_fast", resolution = "1080p" },   # ... or per model
      { model = "bytedance/seedance-2", duration = 8 },
    ]

Every option is checked against every model of its chain when the process starts: a value a model
does not take stops it, naming the variable (or the file, tier and model) and the allowed values.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jobs.video.catalog import (
    CatalogError,
    ModelSpec,
    Options,
    parse_duration,
    parse_orientation,
    parse_resolution,
    parse_sound,
)
from jobs.video.models import DEFAULT_CHAIN, get_model
from worker.config import Settings
from worker.errors import ConfigError

__all__ = [
    "ChainEntry",
    "Tier",
    "Tiers",
    "gate_priority",
    "seconds_after_gate",
    "tiers_from_env",
    "tiers_from_file",
]

DEFAULT_TIER = "standard"
_OPTION_KEYS = ("duration", "resolution", "orientation", "sound")


@dataclass(frozen=True)
class ChainEntry:
    """One model of a tier's chain with its resolved options (every value decided)."""

    model: ModelSpec
    options: Options

    @property
    def credits(self) -> float:
        """KIE credits one clip costs (the catalog's price)."""
        return self.model.credits(self.options)

    def as_dict(self) -> dict[str, Any]:
        return {"model": self.model.id, "options": self.options.as_dict()}


@dataclass(frozen=True)
class Tier:
    name: str
    price: int
    chain: tuple[ChainEntry, ...]
    #: Its jobs take KIE's create slots before those of lower tiers (then fair among users).
    priority: int = 0

    @property
    def prompt_cap(self) -> int:
        """The smallest prompt cap of the chain: a prompt written for it fits every model."""
        return min(e.model.prompt_cap for e in self.chain)

    @property
    def models(self) -> tuple[str, ...]:
        return tuple(e.model.id for e in self.chain)

    def describe(self) -> str:
        chain = " → ".join(
            f"{e.model.id} ({e.options.describe()}, {e.credits:g} KIE credits)" for e in self.chain
        )
        return f"{self.name}: {self.price} credit{'s' if self.price != 1 else ''}; {chain}"


@dataclass(frozen=True)
class Tiers:
    """Every tier on sale, by name, and the one a request without a tier gets."""

    by_name: Mapping[str, Tier]
    default: str

    def get(self, name: str | None) -> Tier:
        """The tier ``name`` (``None``: the default), or :class:`KeyError` naming the choices."""
        tier = self.by_name.get(name or self.default)
        if tier is None:
            raise KeyError(f"there is no tier {name!r} (tiers: {', '.join(self.by_name)})")
        return tier

    def __iter__(self) -> Iterator[Tier]:
        return iter(self.by_name.values())

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.by_name)


def _entry(spec: ModelSpec, options: Options, where: str) -> ChainEntry:
    try:
        return ChainEntry(spec, spec.resolve(options))
    except CatalogError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _model(model_id: str, where: str) -> ModelSpec:
    try:
        return get_model(model_id)
    except CatalogError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def tiers_from_env(
    *,
    video_models: str,
    kie_model: str,
    price: int,
    duration: str,
    resolution: str,
    orientation: str,
    sound: str,
) -> Tiers:
    """The one tier ``standard`` from the ``VIDEO_*`` variables (and ``KIE_MODEL``)."""
    models = [m.strip() for m in video_models.split(",") if m.strip()]
    alias = kie_model.strip()
    if models and alias:
        raise ConfigError(
            "set VIDEO_MODELS or its one-model alias KIE_MODEL, not both "
            f"(VIDEO_MODELS={video_models!r}, KIE_MODEL={kie_model!r})"
        )
    variable = "VIDEO_MODELS" if models else "KIE_MODEL"
    if alias:
        models = [alias]
    if not models:
        models = list(DEFAULT_CHAIN)
    if len(set(models)) != len(models):
        raise ConfigError(f"VIDEO_MODELS names a model twice: {video_models!r}")
    try:
        options = Options(
            duration=parse_duration("VIDEO_DURATION", duration),
            resolution=parse_resolution("VIDEO_RESOLUTION", resolution),
            orientation=parse_orientation("VIDEO_ORIENTATION", orientation),
            sound=parse_sound("VIDEO_SOUND", sound),
        )
    except CatalogError as exc:
        raise ConfigError(str(exc)) from None
    chain = []
    for model_id in models:
        spec = _model(model_id, variable)
        try:
            chain.append(ChainEntry(spec, spec.resolve(options)))
        except CatalogError as exc:
            culprit = f"VIDEO_{exc.option.upper()}" if exc.option else variable
            raise ConfigError(f"{culprit}: {exc}") from None
    tier = Tier(DEFAULT_TIER, price, tuple(chain))
    return Tiers({DEFAULT_TIER: tier}, DEFAULT_TIER)


def tiers_from_file(path: Path) -> Tiers:
    """Tiers from a TOML file (see the module's docstring), or :class:`ConfigError` naming the
    file, the tier and the model at fault."""
    where = f"VIDEO_TIERS_FILE ({path})"
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{where} cannot be read: {exc.strerror or exc}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{where} is not valid TOML: {exc}") from None
    return tiers_from_mapping(raw, where)


def tiers_from_mapping(raw: Mapping[str, Any], where: str) -> Tiers:
    unknown = set(raw) - {"default", "tiers"}
    if unknown:
        raise ConfigError(f"{where}: unknown top-level key {sorted(unknown)[0]!r}")
    tiers_raw = raw.get("tiers")
    if not isinstance(tiers_raw, dict) or not tiers_raw:
        raise ConfigError(f"{where} defines no [tiers.<name>] table")
    tiers: dict[str, Tier] = {}
    for name, body in tiers_raw.items():
        tiers[name] = _tier(name, body, f"{where}, tier {name}")
    default = raw.get("default", next(iter(tiers)))
    if default not in tiers:
        raise ConfigError(f"{where}: default = {default!r} is not one of its tiers")
    return Tiers(tiers, str(default))


def _tier(name: str, body: Any, where: str) -> Tier:
    if not name.replace("-", "").replace("_", "").isalnum() or len(name) > 32:
        raise ConfigError(f"{where}: a tier name is letters, digits, - and _ (at most 32)")
    if not isinstance(body, dict):
        raise ConfigError(f"{where} is not a table")
    unknown = set(body) - {"price", "priority", "chain", *_OPTION_KEYS}
    if unknown:
        raise ConfigError(f"{where}: unknown key {sorted(unknown)[0]!r}")
    price = body.get("price")
    if not isinstance(price, int) or isinstance(price, bool) or price < 0:
        raise ConfigError(f"{where}: price must be a whole number of credits, 0 or more")
    priority = body.get("priority", 0)
    if not isinstance(priority, int) or isinstance(priority, bool) or abs(priority) > 1000:
        raise ConfigError(f"{where}: priority must be a whole number from -1000 to 1000")
    chain_raw = body.get("chain")
    if not isinstance(chain_raw, list) or not chain_raw:
        raise ConfigError(f"{where}: chain must be a list of one model or more")
    shared = _options(body, where)
    chain: list[ChainEntry] = []
    for i, item in enumerate(chain_raw, 1):
        at = f"{where}, model {i}"
        if isinstance(item, str):
            model_id, own = item, Options()
        elif isinstance(item, dict):
            extra = set(item) - {"model", *_OPTION_KEYS}
            if extra:
                raise ConfigError(f"{at}: unknown key {sorted(extra)[0]!r}")
            model_id = item.get("model")  # type: ignore[assignment]
            if not isinstance(model_id, str):
                raise ConfigError(f"{at}: model must be a model id")
            own = _options(item, at)
        else:
            raise ConfigError(f"{at}: a chain item is a model id or a table with model = ...")
        spec = _model(model_id, at)
        if spec.id in (e.model.id for e in chain):
            raise ConfigError(f"{at}: {spec.id} is already in the chain")
        merged = Options(
            duration=own.duration if own.duration is not None else shared.duration,
            resolution=own.resolution or shared.resolution,
            orientation=own.orientation or shared.orientation,
            sound=own.sound if own.sound is not None else shared.sound,
        )
        chain.append(_entry(spec, merged, f"{at} ({spec.id})"))
    return Tier(name, price, tuple(chain), priority)


def _options(body: Mapping[str, Any], where: str) -> Options:
    try:
        duration = body.get("duration")
        if duration is not None and not isinstance(duration, int):
            raise CatalogError(f"duration must be whole seconds, got {duration!r}")
        return Options(
            duration=parse_duration("duration", duration),
            resolution=parse_resolution("resolution", _text(body, "resolution")),
            orientation=parse_orientation("orientation", _text(body, "orientation")),
            sound=parse_sound("sound", body.get("sound")),
        )
    except CatalogError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _text(body: Mapping[str, Any], key: str) -> str:
    value = body.get(key, "")
    if not isinstance(value, str):
        raise CatalogError(f"{key} must be a string, got {value!r}")
    return value


def chain_from_payload(items: Sequence[Mapping[str, Any]]) -> tuple[ChainEntry, ...]:
    """The chain a job was sold (stored in its payload at submit), rebuilt from the catalog."""
    return tuple(
        ChainEntry(get_model(str(i["model"])), Options.from_dict(i.get("options") or {}))
        for i in items
    )


#: Typical seconds from KIE's create to the user's chat beyond the render: the poll that finds
#: it done, the download and the upload to Telegram.
DELIVERY_SECONDS = 15.0


def _tier_of(settings: Settings, payload: Mapping[str, Any]) -> Tier:
    from jobs.video.settings import video_settings  # the settings module imports this one

    tiers = video_settings(settings).tiers
    name = payload.get("tier")
    return tiers.get(name if isinstance(name, str) and name in tiers.names else None)


def gate_priority(settings: Settings, payload: Mapping[str, Any]) -> int:
    """The priority of a job's tier at KIE's create limit (``worker.fair_gate``)."""
    return _tier_of(settings, payload).priority


def seconds_after_gate(settings: Settings, payload: Mapping[str, Any]) -> float:
    """Typical seconds from the create slot to the delivered video, from the catalog: the first
    model of the job's chain renders, then it is delivered (``worker.admission``)."""
    stored = payload.get("chain")
    chain = chain_from_payload(stored) if stored else _tier_of(settings, payload).chain
    return float(chain[0].model.render_seconds) + DELIVERY_SECONDS
