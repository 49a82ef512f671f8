"""Every video model the catalog knows, by id: live ones first, then the withdrawn.

Adding a model is adding one :class:`~jobs.video.catalog.ModelSpec` to a vendor module here and
to :data:`MODELS`, and its request schema to the simulator (``simulator``), which checks what we
send against KIE's documentation independently of this code.
"""

from __future__ import annotations

from jobs.video.catalog import CatalogError, ModelSpec
from jobs.video.models.grok import GROK_IMAGINE
from jobs.video.models.hailuo import HAILUO_23_PRO, MINIMAX_H3
from jobs.video.models.happyhorse import HAPPYHORSE_11
from jobs.video.models.kling import KLING_26, KLING_30
from jobs.video.models.seedance import SEEDANCE_2, SEEDANCE_2_MINI
from jobs.video.models.sora import REPLACEMENT, SORA_2, WITHDRAWN
from jobs.video.models.veo import VEO3, VEO3_FAST, VEO3_LITE
from jobs.video.models.wan import WAN_26, WAN_27

__all__ = ["DEFAULT_CHAIN", "MODELS", "get_model", "live_models"]

MODELS: dict[str, ModelSpec] = {
    m.id: m
    for m in (
        SEEDANCE_2_MINI,
        MINIMAX_H3,
        KLING_26,
        KLING_30,
        SEEDANCE_2,
        WAN_26,
        WAN_27,
        HAILUO_23_PRO,
        HAPPYHORSE_11,
        GROK_IMAGINE,
        VEO3,
        VEO3_FAST,
        VEO3_LITE,
        *SORA_2,
    )
}

#: The default fallback chain: live models suited to product shots at about 60 KIE credits or
#: less for a 5 s clip, from three vendors so one vendor's outage leaves two: Seedance 2 Mini
#: 720p (41 credits), MiniMax H3 768P (40, native sound) and Kling 2.6 (55 silent).
DEFAULT_CHAIN = (SEEDANCE_2_MINI.id, MINIMAX_H3.id, KLING_26.id)


def get_model(model_id: str) -> ModelSpec:
    """The catalog entry of ``model_id``, or :class:`CatalogError` in one sentence that says
    what to use instead (every ``sora-2*`` is withdrawn, whether listed or not)."""
    model_id = model_id.strip()
    spec = MODELS.get(model_id)
    if spec is None and model_id.startswith("sora-2"):
        raise CatalogError(f"{model_id} is withdrawn ({WITHDRAWN}); use {REPLACEMENT} instead")
    if spec is None:
        raise CatalogError(
            f"{model_id!r} is not a video model of the catalog "
            f"(known: {', '.join(m.id for m in live_models())})"
        )
    if spec.withdrawn:
        raise CatalogError(
            f"{spec.id} is withdrawn ({spec.withdrawn}); use {spec.replacement} instead"
        )
    return spec


def live_models() -> list[ModelSpec]:
    return [m for m in MODELS.values() if m.live]
