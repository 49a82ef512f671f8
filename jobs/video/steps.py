"""The video job's four steps: prompt → submit → poll → deliver. Each does one exchange.

* prompt: OpenAI turns the product into a video prompt (key from the pool).
* submit: KIE createTask for the first usable model of the job's tier chain (its request built
  by the catalog, :mod:`jobs.video.catalog`). The task id and key name are committed the moment
  KIE accepts, so a redelivered submit finds them and polls instead of creating (and paying for)
  a second video. A create whose outcome is unknown (a read timeout) is never retried, on this
  model or another, for the same reason. An answer that proves no task was made (a paused or
  unknown model: UNAVAILABLE) pauses the model for every worker and moves to the next model in
  the same step, using no attempt; with every model paused the job waits, to its deadline
  (:mod:`jobs.video.fallback`).
* poll: KIE recordInfo with the key that created the task, rescheduled on the documented
  schedule; no thread waits while the video renders. With callbacks on (``KIE_CALLBACK_URL``),
  KIE's callback makes the poll run when the task ends (``worker.webhooks``), and the schedule
  is only a safety net, every ``KIE_SAFETY_POLL_SECONDS``. A generation that failed for a
  retryable reason is resubmitted as a new attempt, at most ``MAX_ATTEMPTS`` generations per job.
* deliver: download the mp4 into storage, send it to the user once, then succeed (capture).
"""

from __future__ import annotations

import functools
import random
from typing import Any

from jobs.video import texts
from jobs.video.callbacks import callback_url
from jobs.video.catalog import Family, Options
from jobs.video.fallback import create_on_chain, job_chain
from jobs.video.intake import job_image_url, photo
from jobs.video.kie import KieClient, KieTask, TaskState
from jobs.video.models import get_model
from jobs.video.prompt import IMAGE_UNREADABLE, PromptGenerator
from jobs.video.settings import video_settings
from worker.config import Settings
from worker.context import StepContext
from worker.errors import ErrorClass, ProviderError
from worker.metrics import CALLBACKS_MISSED
from worker.outcomes import Again, Fail, Next, Outcome, Succeed
from worker.telegram import Media, Sent, TelegramNotifier, inline_keyboard

VIDEO_TYPES = ("video/mp4", "application/octet-stream", "binary/octet-stream")
#: How Telegram takes the result: a playable video.
VIDEO = Media("sendVideo", "video", "video/mp4")
#: The ``callback_data`` of a delivered video's buttons (at most 64 bytes: Telegram's limit).
AGAIN_DATA = "again:{job_id}"
MENU_DATA = "menu"


def _kie(ctx: StepContext) -> KieClient:
    return ctx.services.extension("video.kie", KieClient.from_settings)


def _openai(ctx: StepContext) -> PromptGenerator:
    return ctx.services.extension("video.openai", PromptGenerator.from_settings)


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
    """The video prompt from the title, the description and (``OPENAI_VISION``) the photo; a
    photo OpenAI cannot fetch or read is left out rather than failing the job."""
    key = ctx.acquire_key("openai")
    vision = video_settings(ctx.settings).openai_vision
    image = job_image_url(ctx.state, ctx.payload) if vision else None
    write = functools.partial(
        _openai(ctx).generate,
        key,
        title=ctx.payload["title"],
        description=ctx.payload.get("description"),
        max_chars=_prompt_cap(ctx),
    )
    seen = " and the photo" if image else ""
    try:
        text = write(image_url=image)
    except ProviderError as err:
        if err.code != IMAGE_UNREADABLE:
            raise
        text, seen = write(), f" (not the photo: {err.message[:200]})"
    ctx.services.keys.report_success(key)
    return Next(
        "submit",
        event="prompt written",
        detail=f"{len(text)} characters with OpenAI key {key.name}, from the text{seen}",
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
    created = create_on_chain(ctx, _kie(ctx), callback)
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

    # Still rendering. One "still working" message once it takes long, per request: the first
    # of its videos to get here queues it, the others find it queued.
    running_for = ctx.seconds_since(ctx.created_at)
    progress_after = video_settings(ctx.settings).progress_after_seconds
    if running_for > progress_after and not ctx.state.get("progress_sent"):
        ctx.notify("progress", texts.text(ctx.settings, ctx.payload, "progress"), per_request=True)
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


def buttons(ctx: StepContext) -> dict[str, Any]:
    """The delivered video's inline keyboard: "Make another with this product"
    (``again:<job id>``), and "Back to menu" (``menu``) with ``VIDEO_MENU_BUTTON``."""
    rows = [[(texts.text(ctx.settings, ctx.payload, "button_again"), again_data(ctx.job_id))]]
    if video_settings(ctx.settings).video_menu_button:
        rows.append([(texts.text(ctx.settings, ctx.payload, "button_menu"), MENU_DATA)])
    return inline_keyboard(rows)


def again_data(job_id: int) -> str:
    """``again:<job id>``: at most 64 bytes for any job id (a bigint has at most 19 digits)."""
    data = AGAIN_DATA.format(job_id=job_id)
    assert len(data.encode()) <= 64, data
    return data


def deliver(ctx: StepContext) -> Outcome:
    """Send the video once, with its buttons, and keep the ``file_id`` Telegram returns.

    A job that already holds a ``telegram_file_id`` (a send that reached Telegram, run again)
    is sent by that id: no download, no upload, no local file needed."""
    services = ctx.services
    caption = texts.text(ctx.settings, ctx.payload, "caption")
    markup = buttons(ctx)
    chat_id = ctx.chat_id
    sent: list[Sent] = []
    kept = ctx.state.get("telegram_file_id")
    if kept:

        def by_id(tg: TelegramNotifier) -> int:
            sent.append(
                tg.deliver_file(
                    chat_id, VIDEO, file_id=str(kept), caption=caption, reply_markup=markup
                )
            )
            return sent[-1].message_id

        detail = ctx.send_once("result", caption, by_id)
        # The job's result (where the file was stored) stays as it was, present or not.
        return Succeed(None, detail=f"{detail}; by Telegram's file_id, no upload")

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

    link = services.storage.safe_link(urls[0], provider="kie")
    path = stored.path

    def upload(tg: TelegramNotifier) -> int:
        # over 50 MB the user gets KIE's link instead: checked like the download (worker.storage)
        sent.append(
            tg.deliver_file(
                chat_id, VIDEO, path=path, caption=caption, link=link, reply_markup=markup
            )
        )
        return sent[-1].message_id

    detail = ctx.send_once(
        "result",
        caption,
        upload,
        state=learned,
        event="stored" if learned else None,
        detail=note,
    )
    file_id = sent[-1].file_id if sent else None
    if file_id:
        detail += f"; Telegram keeps it as file_id {file_id}"
    return Succeed(
        str(stored.path), detail=detail, state={"telegram_file_id": file_id} if file_id else {}
    )


HANDLERS = {"photo": photo, "prompt": prompt, "submit": submit, "poll": poll, "deliver": deliver}
