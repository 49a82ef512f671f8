"""Which video models may be used now: the catalog's models as shared switches
(:class:`worker.models.ResourceSwitches`, group ``video-models``).

A createTask answer that proves KIE made no task (a paused model, a disabled feature, a model it
does not support: UNAVAILABLE from :meth:`jobs.video.kie.KieClient.create_task`) pauses the model
for ``VIDEO_MODEL_PAUSE_SECONDS`` for every worker, so other jobs skip it without a call; after
that one job tries it again. `worker models disable M` takes one out by hand until enabled.

Within one worker process, :class:`ProbeGate` sends the first create on a model not yet seen to
work alone: the other threads that want the same model wait for that one exchange, so a model
found paused costs one create call per process, not one per thread in flight.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

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


class ProbeGate:
    """One process's view of which models it has seen work ("proven").

    A create on a proven model goes at once. A create on an unproven one (after the process
    started, or after the model answered "paused") takes the model's lock: one thread probes,
    the others wait for its answer (one exchange), then find the model paused (and skip it) or
    proven (and go on together). A model paused while proven costs at most the creates already
    in flight, which no gate can take back.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}
        self._proven: set[str] = set()

    def proven(self, model: str) -> bool:
        return model in self._proven

    @contextmanager
    def turn(self, model: str) -> Iterator[bool]:
        """Hold ``model``'s turn if it is unproven; yields whether the caller had to wait for
        it (then the shared switches must be read again: the probe may have paused it)."""
        if model in self._proven:
            yield False
            return
        with self._lock:
            lock = self._locks.setdefault(model, threading.Lock())
        waited = not lock.acquire(blocking=False)
        if waited:
            lock.acquire()
        try:
            yield waited
        finally:
            lock.release()

    def prove(self, model: str) -> None:
        self._proven.add(model)

    def doubt(self, model: str) -> None:
        self._proven.discard(model)


def probe_gate(_settings: Settings) -> ProbeGate:
    """A process's gate (built once per process by ``Services.extension``)."""
    return ProbeGate()
