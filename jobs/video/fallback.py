"""The submit step's choice of model: the first usable model of the job's tier chain.

A create answer that proves KIE made no task (UNAVAILABLE: a paused, disabled or unknown model)
pauses the model for every worker (:mod:`jobs.video.availability`) and the job goes on to the
next model in the same step, using no attempt. A create whose outcome is unknown is never tried
again, on this model or another (it could pay twice). With every model paused the job waits,
to its deadline (UNAVAILABLE with ``retry_after``: the policy's wait, one alert per job).
"""

from __future__ import annotations

import logging
import time

from jobs.video import availability
from jobs.video.availability import ProbeGate, probe_gate
from jobs.video.intake import job_image_url
from jobs.video.kie import KieClient
from jobs.video.settings import video_settings
from jobs.video.tiers import ChainEntry, chain_from_payload
from worker.config import ApiKey
from worker.context import StepContext
from worker.errors import ErrorClass, ProviderError
from worker.models import ResourceState, ResourceStatus, ResourceSwitches
from worker.outcomes import Again, Fail, Outcome

log = logging.getLogger(__name__)

Created = tuple[str, ApiKey, ChainEntry]


def _switches(ctx: StepContext) -> ResourceSwitches:
    return ctx.services.extension("video.models", availability.switches)


#: With every model of its chain paused, a job looks again this often (or when a pause ends).
MODELS_RECHECK_SECONDS = 60.0
#: What the user reads when no model of the tier could make the video before the deadline.
_USER_NO_MODEL = "The video service is temporarily unavailable."


def job_chain(ctx: StepContext) -> tuple[ChainEntry, ...]:
    """The models the job was sold, in fallback order (stored in its payload at submit; a job
    submitted before tiers existed gets the default tier's chain)."""
    stored = ctx.payload.get("chain")
    if stored:
        return chain_from_payload(stored)
    return video_settings(ctx.settings).tiers.get(None).chain


def create_on_chain(ctx: StepContext, kie: KieClient, callback: str | None) -> Created | Outcome:
    """createTask on the first usable model of the job's chain: the task, its key and model;
    or the outcome when none took it (every model paused: wait; outcome unknown: fail)."""
    chain = job_chain(ctx)
    switches = _switches(ctx)
    blocked = switches.blocked(e.model.id for e in chain)
    gate = _gate(ctx)
    for i, entry in enumerate(chain):
        model = entry.model
        if model.id in blocked:
            continue
        with gate.turn(model.id) as waited:
            if waited and (found := switches.blocked([model.id])):
                blocked.update(found)  # the probe ahead of us found it paused
                continue
            try:
                created = _create(ctx, kie, entry, callback)
            except ProviderError as err:
                if err.error_class is ErrorClass.UNAVAILABLE and not err.outcome_unknown:
                    gate.doubt(model.id)
                    # KIE proved no task was made: pause the model for every worker.
                    blocked[model.id] = _pause(ctx, switches, model.id, err)
                else:
                    raise
            else:
                if isinstance(created, tuple):  # KIE took it: the model works
                    gate.prove(model.id)
                return created
        after = next((e.model.id for e in chain[i + 1 :] if e.model.id not in blocked), None)
        ctx.event(
            "model unavailable",
            f"{model.id}: {blocked[model.id].reason or 'paused'}; "
            + (f"trying {after} now (no attempt used)" if after else "no model left to try"),
            data={"model": model.id},
        )
    return _no_model(ctx, chain, blocked)


def _create(
    ctx: StepContext, kie: KieClient, entry: ChainEntry, callback: str | None
) -> Created | Outcome:
    """createTask of one model: the task and its key, or Fail when the outcome is unknown (KIE
    may have created and charged it: never retried, on this model or another). An UNAVAILABLE
    error (no task was made) is raised for the caller to fall through."""
    model = entry.model
    key = ctx.acquire_key("kie", "create")
    image_url = job_image_url(ctx.state, ctx.payload)  # the photo step's upload, else the link
    inputs = model.build(entry.options, prompt=ctx.state["prompt"], image_url=image_url)
    try:
        return kie.create_task(key, model, inputs, callback_url=callback), key, entry
    except ProviderError as err:
        if not err.outcome_unknown:
            raise
        return Fail(
            ProviderError(
                ErrorClass.TEMPORARY,
                f"createTask outcome unknown on {model.id} ({err.message}); not retried, so "
                "the video is never paid twice",
                provider=err.provider,
                key_name=err.key_name,
            )
        )


def _gate(ctx: StepContext) -> ProbeGate:
    return ctx.services.extension("video.probes", probe_gate)


def _pause(
    ctx: StepContext, switches: ResourceSwitches, model: str, err: ProviderError
) -> ResourceStatus:
    """Pause ``model`` for every worker; the worker that paused it logs a warning. Operators
    are alerted by the metric (``worker_resource_state``) and, when a job has no model left, by
    that job's UNAVAILABLE wait (one alert per job)."""
    seconds = video_settings(ctx.settings).video_model_pause_seconds
    if switches.pause(model, err.message, seconds):
        log.warning(
            "video model %s paused for every worker for %.0f s (job %s): %s",
            model,
            seconds,
            ctx.job_id,
            err.message,
        )
    return switches.status(model)


def _no_model(
    ctx: StepContext, chain: tuple[ChainEntry, ...], blocked: dict[str, ResourceStatus]
) -> Outcome:
    """Every model of the chain is paused or disabled: wait (to the deadline) until one is live.

    The first time, the wait is an UNAVAILABLE failure (recorded on the job, one operator
    alert; the policy waits as long as ``retry_after`` says); after that the job looks again
    quietly, keeping that error, so a deadline failure is UNAVAILABLE with a refund."""
    now = time.time()
    ends = [s.until for s in blocked.values() if s.state is ResourceState.PAUSED and s.until]
    wait = min([MODELS_RECHECK_SECONDS, *(max(1.0, u - now) for u in ends)])
    names = ", ".join(
        f"{m} ({blocked[e.model.id].state})" for e in chain if (m := e.model.id) in blocked
    )
    tier = ctx.payload.get("tier", "standard")
    reason = f"every model of tier {tier} is unavailable: {names}"
    if ctx.state.get("waiting_for_model") == reason:
        return Again(delay=wait, detail=f"{reason}; looking again in {wait:.0f} s")
    ctx.record(state={"waiting_for_model": reason})
    raise ProviderError(
        ErrorClass.UNAVAILABLE,
        f"{reason}; waiting for one (to the job's deadline)",
        provider="kie",
        user_message=_USER_NO_MODEL,
        retry_after=wait,
    )
