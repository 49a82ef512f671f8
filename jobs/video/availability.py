"""Which video models may be used now: the catalog's models as shared switches
(:class:`worker.models.ResourceSwitches`, group ``video-models``).

A createTask answer that proves KIE made no task (a paused model, a disabled feature, a model it
does not support: UNAVAILABLE from :meth:`jobs.video.kie.KieClient.create_task`) pauses the model
for ``VIDEO_MODEL_PAUSE_SECONDS`` for every worker, so other jobs skip it without a call; after
that one job tries it again. `worker models disable M` takes one out by hand until enabled.
"""

from __future__ import annotations

from collections.abc import Sequence

from jobs.video.models import MODELS
from worker.broker import redis_client
from worker.config import Settings
from worker.models import ResourceSwitches

#: The group of the video models among the resource switches.
GROUP = "video-models"


def switches(settings: Settings) -> ResourceSwitches:
    """The shared switches of the video models (one Redis client per call: cache it)."""
    return ResourceSwitches(redis_client(settings), settings.redis_namespace, GROUP)


def model_names(settings: Settings) -> Sequence[str]:
    """Every live model of the catalog, for `worker models ls`."""
    return [m.id for m in MODELS.values() if m.live]
