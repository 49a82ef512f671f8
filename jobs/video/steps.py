"""The video job's four steps: prompt → submit → poll → deliver. Each does one exchange.

* prompt: OpenAI turns the product into a video prompt (key from the pool).
* submit: KIE createTask for the first usable model of the job's tier chain (its request built
  by the catalog, :mod:`jobs.video.catalog`). The task id and key name are committed the moment
  KIE accepts, so a redelivered submit finds them and polls instead of creating (and paying for)
  a second video. A create whose outcome is unknown (a read timeout) is never retried, on this
  model or another, for the same reason. An answer that proves no task was made (a paused or
  unknown model: UNAVAILABLE) pauses the model for every worker and moves to the next model in
  the same step, using no attempt; with every model paused the job waits, to its deadline.
* poll: KIE recordInfo with the key that created the task, rescheduled on the documented
  schedule; no thread waits while the video renders. With callbacks on (``KIE_CALLBACK_URL``),
  KIE's callback makes the poll run when the task ends (``worker.webhooks``), and the schedule
  is only a safety net, every ``KIE_SAFETY_POLL_SECONDS``. A generation that failed for a
  retryable reason is resubmitted as a new attempt, at most ``MAX_ATTEMPTS`` generations per job.
* deliver: download the mp4 into storage, send it to the user once, then succeed (capture).
"""

from __future__ import annotations

import logging
import random
import time
from typing import Any

from jobs.video import availability
from jobs.video.availability import ProbeGate, probe_gate
from jobs.video.callbacks import callback_url
from jobs.video.catalog import Family, Options
from jobs.video.kie import KieClient, KieTask, TaskState
from jobs.video.models import get_model
from jobs.video.prompt import PromptGenerator
from jobs.video.settings import video_settings
from jobs.video.tiers import ChainEntry, chain_from_payload
from worker.config import ApiKey, Settings
from worker.context import StepContext
from worker.errors import ErrorClass, ProviderError
from worker.metrics import CALLBACKS_MISSED
from worker.models import ResourceState, ResourceStatus, ResourceSwitches
from worker.outcomes import Again, Fail, Next, Outcome, Succeed
from worker.telegram import Media

log = logging.getLogger(__name__)

VIDEO_TYPES = ("video/mp4", "application/octet-stream", "binary/octet-stream")
#: How Telegram takes the result: a playable video.
VIDEO = Media("sendVideo", "video", "video/mp4")
PROGRESS_TEXT = "Still working on your video of “{title}”. Longer videos can take a few minutes."


def _kie(ctx: StepContext) -> KieClient:
    return ctx.services.extension("video.kie", KieClient.from_settings)


def _openai(ctx: StepContext) -> PromptGenerator:
    return ctx.services.extension("video.openai", PromptGenerator.from_settings)


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


def _prompt_cap(ctx: StepContext) -> int:
    """The smallest prompt cap of the job's chain: a prompt that fits every model."""
    return min(e.model.prompt_cap for e in job_chain(ctx))


def poll_delay(elapsed: float, rng: random.Random | None = None) -> float:
    """KIE's documented schedule: 2–3 s for the first 30 s, 5–10 s until 2 minutes, then 15–30 s."""
    r = rng or random
    if elapsed < 30:
        return r.uniform(2, 3)
    if elapsed < 120:
        return r.uniform(5, 10)
    return r.uniform(15, 30)


#: After a callback, a task that ``recordInfo`` still shows rendering is polled on KIE's early
#: schedule (2–3 s) for this long, in case the callback ran ahead of ``recordInfo``.
CALLBACK_GRACE_SECONDS = 30.0


def expects_callback(settings: Settings, state: dict[str, Any]) -> bool:
    """Whether KIE will call back for this generation's task: it was created with a callback
    URL, and callbacks are still on (turned off, the receiver may be gone: poll as before)."""
    return bool(video_settings(settings).kie_callback_url) and bool(state.get("callback_given"))


def next_poll_delay(
    settings: Settings, state: dict[str, Any], elapsed: float, rng: random.Random | None = None
) -> float:
    """When to poll a task still rendering after ``elapsed`` seconds: KIE's schedule, or, for a
    task that KIE calls back for, the safety net (``KIE_SAFETY_POLL_SECONDS`` ± 10%: the
    callback is what makes the poll run when the task ends; this only catches a lost one)."""
    if expects_callback(settings, state):
        safety = video_settings(settings).kie_safety_poll_seconds
        return safety * (rng or random).uniform(0.9, 1.1)
    return poll_delay(elapsed, rng)


def called_back(state: dict[str, Any]) -> bool:
    """Whether a callback woke this generation's task (``worker.webhooks`` marks the job)."""
    at, created = state.get("callback_at"), state.get("task_created_at")
    return at is not None and (created is None or float(at) >= float(created))


def looks_like_mp4(head: bytes) -> bool:
    """ISO base media files start with a box whose type is ``ftyp`` (bytes 4–8)."""
    return len(head) >= 12 and head[4:8] == b"ftyp"


# --- steps ------------------------------------------------------------------------------------


def prompt(ctx: StepContext) -> Outcome:
    key = ctx.acquire_key("openai")
    text = _openai(ctx).generate(
        key,
        title=ctx.payload["title"],
        description=ctx.payload.get("description"),
        max_chars=_prompt_cap(ctx),
    )
    ctx.services.keys.report_success(key)
    return Next(
        "submit",
        event="prompt written",
        detail=f"{len(text)} characters with OpenAI key {key.name}",
        state={"prompt": text, "prompt_key": key.name},
    )


def submit(ctx: StepContext) -> Outcome:
    task_id = ctx.provider_task_id
    if task_id:  # a redelivered or rescued submit: the task exists, never create another
        return Next(
            "poll",
            event="task already created",
            detail=f"task {task_id} (key {ctx.key_name}) found; polling it",
        )
    if ctx.after_rescue:
        # The last run of this step died or stalled with no task recorded. It may have died
        # after KIE accepted (and charged) a createTask: its outcome is unknown, exactly as
        # after a read timeout. A retry could pay twice, so the job fails and is refunded.
        return Fail(
            ProviderError(
                ErrorClass.TEMPORARY,
                "createTask outcome unknown (the worker creating the task died or stalled "
                "before recording it); not retried, so the video is never paid twice",
                provider="kie",
            )
        )
    if "prompt" not in ctx.state:
        raise ProviderError(
            ErrorClass.INTERNAL, "submit step reached without a prompt", provider="worker"
        )
    generation = int(ctx.state.get("generation", 0)) + 1
    callback = callback_url(ctx.settings, ctx.job_id)
    created = _create_on_chain(ctx, callback)
    if not isinstance(created, tuple):
        return created
    task_id, key, entry = created
    # The task id and its key are committed with the move to poll, in one fenced statement
    # right after KIE accepted: a later run of this step finds them and never creates another.
    # If the job was taken over meanwhile, the runtime records the task as orphaned. Nothing
    # else happens in between: the key's success stamp (Redis) waits for the commit.
    ctx.after_commit(lambda: ctx.services.keys.report_success(key))
    # KIE's schedule polls every 2-3 s at first; where renders are known to take longer,
    # KIE_FIRST_POLL_SECONDS skips the polls that could only find it still rendering. With
    # callbacks on, the callback makes the poll due when the task ends; this is the safety net.
    learned = {
        "generation": generation,
        "task_created_at": ctx.now().timestamp(),
        "callback_given": callback is not None and entry.model.accepts_callback,
        "model": entry.model.id,
        "options": entry.options.as_dict(),
        "waiting_for_model": None,
    }
    first_poll = video_settings(ctx.settings).kie_first_poll_seconds
    delay = max(next_poll_delay(ctx.settings, learned, 0), first_poll)
    when = (
        f"KIE calls back when it ends (safety-net poll in {delay:.1f} s)"
        if learned["callback_given"]
        else f"first poll in {delay:.1f} s"
    )
    return Next(
        "poll",
        event="task created",
        detail=f"KIE task {task_id} on {entry.model.id} ({entry.options.describe()}) with key "
        f"{key.name} (generation {generation}); {when}",
        delay=delay,
        provider_task_id=task_id,
        key_name=key.name,
        state=learned,
    )


def _create_on_chain(
    ctx: StepContext, callback: str | None
) -> tuple[str, ApiKey, ChainEntry] | Outcome:
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
                created = _create(ctx, entry, callback)
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
    ctx: StepContext, entry: ChainEntry, callback: str | None
) -> tuple[str, ApiKey, ChainEntry] | Outcome:
    """createTask of one model: the task and its key, or Fail when the outcome is unknown (KIE
    may have created and charged it: never retried, on this model or another). An UNAVAILABLE
    error (no task was made) is raised for the caller to fall through."""
    model = entry.model
    key = ctx.acquire_key("kie", "create")
    inputs = model.build(
        entry.options, prompt=ctx.state["prompt"], image_url=ctx.payload["image_url"]
    )
    try:
        return _kie(ctx).create_task(key, model, inputs, callback_url=callback), key, entry
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


def poll(ctx: StepContext) -> Outcome:
    task_id, key_name = ctx.provider_task_id, ctx.key_name
    if not task_id or not key_name:
        raise ProviderError(
            ErrorClass.INTERNAL, "poll step reached without a task", provider="worker"
        )
    key = ctx.acquire_named_key("kie", key_name, "query")
    try:
        task = _kie(ctx).get_task(
            key,
            task_id,
            family=_family(ctx),
            not_found_before=bool(ctx.state.get("not_found")),
        )
    except ProviderError as err:
        if err.status == 404 or err.code == "404":
            ctx.record(state={"not_found": True})
        raise
    elapsed = ctx.seconds_since(ctx.state.get("task_created_at"))
    seen = ctx.state.get("kie_state")
    how = _how_found(ctx, task.state)

    if task.state is TaskState.SUCCESS:
        spend = _spend(ctx, task.credits)
        cost = f"{spend['spend']['amount']:g} KIE credits ({spend['spend']['source']})"
        return Next(
            "deliver",
            event="video ready",
            detail=f"task {task_id} finished after {elapsed:.0f} s{how}; {cost}",
            state={
                "kie_state": str(task.state),
                "result_urls": list(task.result_urls),
                **spend,
            },
        )

    if task.state is TaskState.FAIL:
        return _failed(ctx, task, how)

    # Still rendering. One "still working" message once it takes long.
    running_for = ctx.seconds_since(ctx.created_at)
    progress_after = video_settings(ctx.settings).progress_after_seconds
    if running_for > progress_after and not ctx.state.get("progress_sent"):
        ctx.notify("progress", PROGRESS_TEXT.format(title=ctx.payload["title"]))
        state_extra = {"progress_sent": True}
    else:
        state_extra = {}
    changed = seen != str(task.state)
    detail = f"task {task_id} is {task.state} after {elapsed:.0f} s"
    if called_back(ctx.state) and (
        ctx.seconds_since(float(ctx.state["callback_at"])) < CALLBACK_GRACE_SECONDS
    ):
        # KIE said it ended, recordInfo does not say so yet: look again soon rather than at
        # the safety net, two minutes away. A forged callback costs a few polls, no more.
        delay = poll_delay(0)
        changed = True
        detail += f", though KIE called back; looking again in {delay:.1f} s"
    else:
        delay = next_poll_delay(ctx.settings, ctx.state, elapsed)
    return Again(
        delay=delay,
        event="provider state" if changed else None,
        detail=detail,
        state={"kie_state": str(task.state), **state_extra},
    )


def _failed(ctx: StepContext, task: KieTask, how: str) -> Outcome:
    """A task that ended in failure: resubmitted as a new generation when the failure is
    worth another (TEMPORARY, generations left), else the job fails."""
    task_id = ctx.provider_task_id or task.task_id
    failure = task.failure()
    generation = int(ctx.state.get("generation", 1))
    if failure.error_class is ErrorClass.TEMPORARY and generation < ctx.settings.max_attempts:
        return Next(
            "submit",
            event="generation failed",
            detail=f"{failure.message}{how}; resubmitting as generation {generation + 1} "
            f"of {ctx.settings.max_attempts}",
            clear_task=True,
            state={
                "kie_state": str(task.state),
                "failed_tasks": [*ctx.state.get("failed_tasks", []), task_id],
            },
        )
    if failure.error_class is ErrorClass.TEMPORARY:
        failure = ProviderError(
            failure.error_class,
            f"gave up after {generation} generations: {failure.message}",
            provider=failure.provider,
            code=failure.code,
            key_name=failure.key_name,
        )
    return Fail(failure, state={"kie_state": str(task.state)})


def _family(ctx: StepContext) -> Family:
    """The endpoints of the model the job's task was created on (Market for older jobs)."""
    model = ctx.state.get("model")
    return get_model(model).family if model else Family.MARKET


def _spend(ctx: StepContext, consumed: float | None) -> dict[str, Any]:
    return spend_record(ctx.state.get("model"), ctx.state.get("options") or {}, consumed)


def spend_record(
    model: str | None, options: dict[str, Any], consumed: float | None
) -> dict[str, Any]:
    """What the task cost at KIE: ``creditsConsumed`` where KIE sent it, else the catalog's
    price for the options used. Filed under the generic ``spend`` key (`worker jobs stats`)."""
    if consumed is not None:
        amount, source = consumed, "creditsConsumed"
    elif model:
        amount, source = get_model(model).credits(Options.from_dict(options)), "catalog price"
    else:
        amount, source = 0.0, "unknown"
    return {
        "spend": {
            "provider": "kie",
            "resource": model,
            "amount": amount,
            "unit": "KIE credits",
            "source": source,
        }
    }


def _how_found(ctx: StepContext, state: TaskState) -> str:
    """With callbacks on, how the poll came to find the task ended, for the timeline; a task
    found by the safety net with no callback before it is counted (lost or misrouted)."""
    if not expects_callback(ctx.settings, ctx.state) or not state.finished:
        return ""
    if called_back(ctx.state):
        return " (KIE called back)"
    CALLBACKS_MISSED.labels(kind=ctx.kind.name, provider="kie").inc()
    return " (found by the safety-net poll: no callback came)"


def deliver(ctx: StepContext) -> Outcome:
    services = ctx.services
    urls = ctx.state.get("result_urls") or []
    if not urls:
        raise ProviderError(
            ErrorClass.INTERNAL, "deliver step reached without a result URL", provider="worker"
        )
    dest = services.storage.path_for("video", ctx.job_id, ".mp4")
    stored = services.storage.existing(dest, size=ctx.state.get("stored_size"))
    # What this run learned, committed with the claim of the message below in one statement.
    learned: dict[str, Any] | None = None
    note = ""
    if stored is None or "stored_size" not in ctx.state:
        stored = services.storage.download(
            urls[0],
            dest,
            provider="kie",
            max_bytes=video_settings(ctx.settings).max_video_bytes,
            content_types=VIDEO_TYPES,
            looks_right=looks_like_mp4,
        )
        learned = {"stored_size": stored.size, "sha256": stored.sha256}
        note = f"{stored.size:,} bytes at {stored.path}"

    caption = f"Your video of “{ctx.payload['title']}” is ready."
    link = services.storage.safe_link(urls[0], provider="kie")
    chat_id = ctx.chat_id
    detail = ctx.send_once(
        "result",
        caption,
        # over 50 MB the user gets KIE's link instead: checked like the download (worker.storage)
        lambda tg: tg.send_file(chat_id, stored.path, VIDEO, caption=caption, link=link),
        state=learned,
        event="stored" if learned else None,
        detail=note,
    )
    return Succeed(str(stored.path), detail=detail)


HANDLERS = {"prompt": prompt, "submit": submit, "poll": poll, "deliver": deliver}
