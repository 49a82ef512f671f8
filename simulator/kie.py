"""The fake KIE API: Market createTask/recordInfo, Veo 3.1 generate/record-info, credit, files.

Each model is served as KIE serves it today (``simulator.kie_models``: its schema, price and
state; ``sora-2*`` answers ``500 "This interface is temporarily paused"``). A model's state decides
the createTask answer before its body is looked at, as at KIE, where ``{"model": X, "input": {}}``
tells live, paused or unknown at no cost. Every accepted task charges its key's account the
model's price for the options sent; a task that fails is given back.

It behaves like KIE's documentation, including the parts a client gets wrong:
error codes that arrive either inside an HTTP 200 body or as the real status, ``msg`` or
``message``, HTML bodies on 5xx, ``""`` or ``null`` for empty fields, a task that fails after it
was accepted, and a timed-out create that still created (and charged) a task. A task created with a
``callBackUrl`` is called back when it ends (see ``simulator.callbacks``). A task whose image is
a Telegram file URL (``/file/bot<token>/...``) fails with "image fetch failed": a guard, since
such a URL hands the bot token to KIE. Product photos reach KIE through its File Upload API
(``simulator.kie_upload``, whose URLs point back at this simulator). ``GET /_sim/kie/creates``
shows the body of every task created (its image URL among them).

Order of checks for each request: authentication, rate limit, injected fault, then the request
itself. Injected faults are decided before any side effect, except the timeout fault, which answers
late after doing the work (a real gateway timeout says nothing about what happened behind it).
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import json
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from simulator.callbacks import get_callbacks
from simulator.config import KieConfig
from simulator.kie_models import MODELS, VEO_DEFAULT_MODEL
from simulator.kie_records import record_data, veo_record_data
from simulator.kie_schema import (
    LIVE,
    MARKET,
    PAUSED,
    PAUSED_MSG,
    UNKNOWN,
    UNKNOWN_MSG,
    VEO,
    WITHDRAWN,
    WITHDRAWN_MSG,
    ModelSpec,
    Problem,
    is_url,
)
from simulator.state import SimState, Task, attached, bearer_token, current_call, get_state

#: Veo 3.1's models, in the ``model`` field of its generate body.
VEO_MODELS = tuple(name for name, spec in MODELS.items() if spec.family == VEO)
GENERATION_FAIL = ("500", "internal error, please try again later")
CONTENT_POLICY_FAIL = ("422", "Invalid prompt: prompt contains prohibited content")
VEO_CONTENT_POLICY_FAIL = (
    "400",
    "Your prompt was flagged by Website as violating content policies",
)
#: What a task whose image KIE cannot fetch ends with.
IMAGE_FETCH_FAIL = ("422", "image fetch failed: the image URL could not be downloaded")
#: Credit balance reported for a key without a budget.
UNLIMITED_CREDIT = 1000

#: Reason phrases for the non-standard codes KIE uses as HTTP statuses.
_REASONS = {455: "Service Unavailable (Maintenance)", 505: "Feature Disabled"}

_HTML_ERROR = """<!DOCTYPE html>
<html><head><title>{status} {reason}</title></head>
<body><center><h1>{status} {reason}</h1></center><hr><center>nginx</center></body></html>
"""

Handler = Callable[[], Awaitable[web.StreamResponse]]


# --- answers -------------------------------------------------------------------------------------


def kie_error(
    request: web.Request, code: int, message: str, *, real_status: bool = False
) -> web.Response:
    """An error answer shaped as configured: code in the body or as the HTTP status, msg/message."""
    state = get_state(request)
    cfg = state.config.kie
    mode = cfg.code_in_body
    if mode == "mixed":
        mode = state.style.choice(("body", "status"))
    key = cfg.message_key
    if key == "mixed":
        key = state.style.choice(("msg", "message"))
    current_call(request).code = code
    status = code if real_status or mode == "status" else 200
    return web.json_response(
        {"code": code, key: message, "data": None}, status=status, reason=_REASONS.get(status)
    )


def kie_ok(request: web.Request, data: Any) -> web.Response:
    current_call(request).code = 200
    return web.json_response({"code": 200, "msg": "success", "data": data})


def _html_error(status: int, reason: str) -> web.Response:
    return web.Response(
        status=status,
        reason=reason,
        text=_HTML_ERROR.format(status=status, reason=reason),
        content_type="text/html",
    )


# --- request-level faults ------------------------------------------------------------------------


def _draw_fault(state: SimState, endpoint: str) -> str | None:
    cfg = state.config.kie
    if endpoint not in cfg.fault_endpoints:
        return None
    for name, rate in (
        ("timeout", cfg.rate_timeout),
        ("5xx", cfg.rate_5xx),
        ("429", cfg.rate_429),
        ("maintenance", cfg.rate_maintenance),
        ("malformed", cfg.rate_malformed),
    ):
        if state.roll(rate):
            return name
    return None


def _malformed(request: web.Request, endpoint: str) -> web.Response:
    """A 200 the client cannot trust: not JSON, no ``data``, missing fields or wrong types."""
    state = get_state(request)
    variant = state.rng.choice(("text", "no_data", "missing_fields", "wrong_types"))
    call = current_call(request)
    call.fault = f"malformed:{variant}"
    if variant == "text":
        return web.Response(text="upstream connect error or disconnect/reset before headers")
    if variant == "no_data":
        return web.json_response({"code": 200, "msg": "success"})
    task_id = request.query.get("taskId", "")
    data: Any
    if endpoint == "createTask":
        data = {} if variant == "missing_fields" else {"taskId": 12345}
    elif endpoint == "recordInfo" and request.path.startswith("/api/v1/veo/"):
        if variant == "missing_fields":
            data = {"taskId": task_id}
        else:
            data = {"taskId": task_id, "successFlag": "1", "response": {"resultUrls": 5}}
    elif endpoint == "recordInfo":
        if variant == "missing_fields":
            data = {"taskId": task_id}
        else:
            data = {"taskId": task_id, "state": 3, "resultJson": {"resultUrls": 5}}
    else:
        data = None if variant == "missing_fields" else "plenty"
    body: dict[str, Any] = {"code": 200, "msg": "success", "data": data}
    if variant == "wrong_types":
        body["code"] = "200"
    return web.json_response(body)


async def _with_faults(request: web.Request, endpoint: str, handler: Handler) -> web.StreamResponse:
    """Run ``handler`` unless a fault is drawn; the timeout fault runs it and answers late."""
    state = get_state(request)
    cfg = state.config.kie
    fault = _draw_fault(state, endpoint)
    call = current_call(request)
    if fault is None:
        return await handler()
    call.fault = call.fault or fault
    if fault == "timeout":
        delay = cfg.timeout_seconds
        if endpoint == "createTask" and not cfg.timeout_creates_task:
            await asyncio.sleep(delay)
            return kie_error(request, 500, "Server error: request timed out")
        response = await handler()
        await asyncio.sleep(delay)
        return response
    if fault == "5xx":
        if state.roll(cfg.html_error_share):
            call.fault = "5xx:html"
            status, reason = state.rng.choice(((502, "Bad Gateway"), (503, "Service Unavailable")))
            return _html_error(status, reason)
        return kie_error(request, 500, "internal error, please try again later")
    if fault == "429":
        return kie_error(
            request, 429, "The request rate is too high, please try again later", real_status=True
        )
    if fault == "maintenance":
        return kie_error(request, 455, "Service unavailable: the system is under maintenance")
    return _malformed(request, endpoint)


# --- authentication and limits -------------------------------------------------------------------


def authenticate(request: web.Request) -> str | web.Response:
    """The caller's key, or the 401 answer for a missing, unknown or revoked one."""
    state = get_state(request)
    cfg = state.config.kie
    token = bearer_token(request)
    current_call(request).key = token
    if token is None:
        return kie_error(request, 401, "You do not have access permissions: missing API key")
    if cfg.keys:
        account = cfg.keys.get(token)
        if account is None:
            return kie_error(request, 401, "You do not have access permissions")
        if account.revoked:
            return kie_error(request, 401, "Unauthorized: this API key has been revoked")
    return token


def _rate_limited(request: web.Request, bucket: str, key: str) -> web.Response | None:
    state = get_state(request)
    cfg = state.config.kie
    limit, window = (
        (cfg.create_limit, cfg.create_window_seconds)
        if bucket == "create"
        else (cfg.query_limit, cfg.query_window_seconds)
    )
    unit = key
    account = cfg.keys.get(key)
    if bucket == "create" and account is not None and account.account is not None:
        unit = f"account:{account.account}"  # KIE limits an account's creates, not a key's
    if state.windows.admit(f"kie:{bucket}:{unit}", limit, window, time.monotonic()) is None:
        return None
    # Always a real HTTP 429, without Retry-After, as documented.
    return kie_error(
        request, 429, "The request rate is too high, please try again later", real_status=True
    )


# --- the model gate ------------------------------------------------------------------------------


def model_state(cfg: KieConfig, model: str) -> str:
    """How KIE answers ``model`` now: ``model_states``, then ``withdrawn_models``, then the catalog.

    A name outside the catalog is unknown, except any other ``sora-2*`` slug, paused as every
    Sora 2 slug is at KIE.
    """
    if model in cfg.model_states:
        return cfg.model_states[model]
    if model in cfg.withdrawn_models:
        return WITHDRAWN
    spec = MODELS.get(model)
    if spec is None:
        if model.startswith("sora-2"):
            return PAUSED
        return UNKNOWN
    return spec.default_state


def _gate(request: web.Request, model: str, family: str) -> ModelSpec | web.Response:
    """The spec of a live model of ``family``, or KIE's answer for any other state."""
    cfg = get_state(request).config.kie
    state = model_state(cfg, model)
    spec = MODELS.get(model)
    if state == LIVE and spec is not None and spec.family != family:
        state = UNKNOWN  # Veo is not on the Market API, and the Market models are not Veo's
    if state == PAUSED:
        return kie_error(request, 500, PAUSED_MSG)
    if state == WITHDRAWN:
        return kie_error(request, cfg.unavailable_model_code, WITHDRAWN_MSG)
    if state == UNKNOWN or spec is None:
        return kie_error(request, cfg.unknown_model_code, UNKNOWN_MSG)
    return spec


async def _read_body(request: web.Request) -> dict[str, Any] | web.Response:
    try:
        body = json.loads(await request.text())
    except ValueError:
        return kie_error(request, 422, "request body must be JSON")
    if not isinstance(body, dict):
        return kie_error(request, 422, "request body must be a JSON object")
    return body


async def _note_model(request: web.Request, family: str) -> None:
    """Record the model a create call names, before any limit or fault answers it.

    ``/_sim/calls?model=`` and ``GET /_sim/models`` count every create call per model, those
    answered 429 or by a fault included (the body is read once; aiohttp keeps it).
    """
    try:
        body = json.loads(await request.text())
    except ValueError:
        return
    if not isinstance(body, dict):
        return
    model = body.get("model", VEO_DEFAULT_MODEL if family == VEO else None)
    if isinstance(model, str) and model:
        current_call(request).model = model


def _problem(request: web.Request, problem: Problem) -> web.Response:
    return kie_error(request, problem.code, problem.message)


# --- createTask (Market) -------------------------------------------------------------------------

#: Fields of the createTask envelope.
_MARKET_ENVELOPE = ("model", "callBackUrl", "input")


async def create_task(request: web.Request) -> web.StreamResponse:
    """``POST /api/v1/jobs/createTask``."""
    return await _create(request, MARKET, _create_market)


async def _create(
    request: web.Request,
    family: str,
    create: Callable[[web.Request, str], Awaitable[web.StreamResponse]],
) -> web.StreamResponse:
    """What every create endpoint does before its own body: the key, the count of create calls
    by model, the account's create limit, then the request-level faults around ``create``."""
    key = authenticate(request)
    if isinstance(key, web.Response):
        return key
    await _note_model(request, family)
    limited = _rate_limited(request, "create", key)
    if limited is not None:
        return limited
    return await _with_faults(request, "createTask", lambda: create(request, key))


async def _create_market(request: web.Request, key: str) -> web.StreamResponse:
    body = await _read_body(request)
    if isinstance(body, web.Response):
        return body
    model = body.get("model")
    if model is None:
        return kie_error(request, 500, "model is required")
    if not isinstance(model, str) or not model:
        return kie_error(request, 422, "model must be a model name")
    spec = _gate(request, model, MARKET)
    if isinstance(spec, web.Response):
        return spec
    for name in body:
        if name not in _MARKET_ENVELOPE:
            return kie_error(request, 422, f"{name} is not a parameter of createTask")
    callback = body.get("callBackUrl")
    if callback is not None and not is_url(callback):
        return kie_error(request, 422, "callBackUrl must be an http(s) URL")
    params = body.get("input")
    if params is None:
        return kie_error(request, 500, "input is required")
    if not isinstance(params, dict):
        return kie_error(request, 422, "input must be an object")
    problem = spec.validate(params, "input.")
    if problem is not None:
        return _problem(request, problem)
    return _accept(request, key, spec, params, body, callback)


# --- generate (Veo 3.1) --------------------------------------------------------------------------


async def veo_generate(request: web.Request) -> web.StreamResponse:
    """``POST /api/v1/veo/generate``: Veo 3.1's own create, a flat body (no ``input``); the
    request-level faults treat it as the create it is."""
    return await _create(request, VEO, _create_veo)


async def _create_veo(request: web.Request, key: str) -> web.StreamResponse:
    body = await _read_body(request)
    if isinstance(body, web.Response):
        return body
    model = body.get("model", VEO_DEFAULT_MODEL)
    if not isinstance(model, str) or model not in VEO_MODELS:
        return kie_error(request, 422, f"model must be one of {', '.join(VEO_MODELS)}")
    spec = _gate(request, model, VEO)
    if isinstance(spec, web.Response):
        return spec
    problem = spec.validate(body, "")
    if problem is not None:
        return _problem(request, problem)
    return _accept(request, key, spec, body, body, body.get("callBackUrl"))


# --- a task is created ---------------------------------------------------------------------------


def _accept(
    request: web.Request,
    key: str,
    spec: ModelSpec,
    params: dict[str, Any],
    body: dict[str, Any],
    callback: str | None,
) -> web.Response:
    """Charge the account, create the task and answer its id (both families)."""
    state = get_state(request)
    cfg = state.config.kie
    call = current_call(request)
    price = cfg.credits_per_create if cfg.credits_per_create is not None else spec.credits(params)
    account = cfg.keys.get(key)
    if account is not None and account.credits is not None and account.credits < price:
        return kie_error(request, 402, "Credits insufficient")
    render = cfg.model_render_seconds.get(spec.name, cfg.render_seconds)
    if cfg.render_jitter and render > 0:
        render *= 1 + cfg.render_jitter * state.rng.uniform(-1.0, 1.0)
    veo = spec.family == VEO
    prompt = params.get("prompt")
    task = Task(
        task_id=f"{'veo_task' if veo else 'task'}_{secrets.token_hex(16)}",
        model=spec.name,
        key=key,
        param=json.dumps(body, ensure_ascii=False),
        prompt=prompt if isinstance(prompt, str) else "",
        callback_url=callback,
        created=time.time(),
        render_seconds=render,
        public_base=public_base(request),
        family=spec.family,
        credits=price,
        resolution=str(spec.value(params, "resolution") or ""),
        aspect_ratio=str(spec.value(params, "aspect_ratio") or ""),
    )
    marker = cfg.content_policy_marker
    if _names_telegram_file(params):
        # A guard: KIE is never to be given a Telegram file URL (it carries the bot token).
        task.fail_code, task.fail_msg = IMAGE_FETCH_FAIL
        task.fail_after = render * 0.1
    elif marker and marker.lower() in task.prompt.lower():
        # Moderation answers early: the failure shows once the task leaves ``waiting``.
        task.fail_code, task.fail_msg = VEO_CONTENT_POLICY_FAIL if veo else CONTENT_POLICY_FAIL
        task.fail_after = render * 0.1
    elif state.roll(cfg.rate_generation_fail):
        task.fail_code, task.fail_msg = GENERATION_FAIL
        task.fail_after = render
    creates_log(state).append(
        {"task_id": task.task_id, "key": key, "model": spec.name, "body": body, "at": task.created}
    )
    state.tasks[task.task_id] = task
    state.bill(task)
    get_callbacks(request).schedule(task)
    state.record_paid_create(key, spec.name)
    call.task_id = task.task_id
    return kie_ok(request, {"taskId": task.task_id})


def creates_log(state: SimState) -> collections.deque[dict[str, Any]]:
    """The body of every accepted create (task id, key, model), since the last reset."""
    return attached(state, "kie.creates", lambda: collections.deque(maxlen=10_000))


async def admin_creates(request: web.Request) -> web.Response:
    """``GET /_sim/kie/creates``: the body of every task created since the last reset."""
    return web.json_response({"creates": list(creates_log(get_state(request)))})


def _names_telegram_file(params: dict[str, Any]) -> bool:
    """Whether an image field of the request is a Telegram file URL (``/file/bot<token>/``)."""
    values: list[Any] = list(params.values())
    while values:
        value = values.pop()
        if isinstance(value, list):
            values.extend(value)
        elif isinstance(value, str) and "/file/bot" in value and is_url(value):
            return True
    return False


# --- recordInfo (Market) -------------------------------------------------------------------------


async def record_info(request: web.Request) -> web.StreamResponse:
    """``GET /api/v1/jobs/recordInfo?taskId=...``: the task's state, computed from the clock."""
    key = authenticate(request)
    if isinstance(key, web.Response):
        return key
    limited = _rate_limited(request, "query", key)
    if limited is not None:
        return limited
    return await _with_faults(request, "recordInfo", lambda: _record(request, key, MARKET))


async def veo_record_info(request: web.Request) -> web.StreamResponse:
    """``GET /api/v1/veo/record-info?taskId=...``: a Veo task, with ``successFlag``."""
    key = authenticate(request)
    if isinstance(key, web.Response):
        return key
    limited = _rate_limited(request, "query", key)
    if limited is not None:
        return limited
    return await _with_faults(request, "recordInfo", lambda: _record(request, key, VEO))


async def _record(request: web.Request, key: str, family: str) -> web.StreamResponse:
    state = get_state(request)
    task_id = request.query.get("taskId", "")
    call = current_call(request)
    call.task_id = task_id or None
    if not task_id:
        return kie_error(request, 422, "taskId is required")
    task = state.tasks.get(task_id)
    if task is None or task.family != family:
        if state.config.kie.unknown_task_code == 422:
            return kie_error(
                request, 422, "record is null" if family == VEO else "recordInfo is null"
            )
        return kie_error(request, 404, "task not found")
    call.model = task.model
    task.polls += 1
    if key not in task.polled_by:
        task.polled_by.append(key)
    base = public_base(request)
    now = time.time()
    data = (
        veo_record_data(state, task, base, now)
        if family == VEO
        else record_data(state, task, base, now)
    )
    return kie_ok(request, data)


def public_base(request: web.Request) -> str:
    configured = get_state(request).config.kie.public_url
    if configured:
        return configured.rstrip("/")
    return str(request.url.origin())


# --- credit --------------------------------------------------------------------------------------


async def credit(request: web.Request) -> web.StreamResponse:
    """``GET /api/v1/chat/credit``: the key's remaining budget (1000 when unlimited)."""
    key = authenticate(request)
    if isinstance(key, web.Response):
        return key

    async def answer() -> web.StreamResponse:
        account = get_state(request).config.kie.keys.get(key)
        balance = account.credits if account is not None else None
        return kie_ok(request, UNLIMITED_CREDIT if balance is None else balance)

    return await _with_faults(request, "credit", answer)


# --- result files --------------------------------------------------------------------------------

FILE_CHUNK = 64 * 1024


def mp4_header(total_size: int) -> bytes:
    """An ``ftyp`` box (isom/mp42) followed by the header of an ``mdat`` box filling the rest."""
    ftyp = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom"
    mdat = (max(total_size - len(ftyp), 8)).to_bytes(4, "big") + b"mdat"
    return (ftyp + mdat)[:total_size]


async def result_file(request: web.Request) -> web.StreamResponse:
    """``GET /files/<taskId>.mp4``: the video, streamed so that 60 MB costs 64 KiB of memory."""
    state = get_state(request)
    cfg = state.config.kie
    name = request.match_info["name"]
    task_id = name.removesuffix(".mp4")
    call = current_call(request)
    call.task_id = task_id
    task = state.tasks.get(task_id) if name.endswith(".mp4") else None
    if task is None or task.view(time.time())[0] != "success":
        return web.Response(status=404, text="404 Not Found")
    call.model = task.model
    task.downloads += 1
    if state.roll(cfg.rate_malformed_result):
        call.fault = "malformed_result"
        return web.Response(
            text=_HTML_ERROR.format(status=403, reason="Forbidden: the link has expired"),
            content_type="text/html",
        )
    size = cfg.result_size_bytes
    response = web.StreamResponse(headers={"Content-Type": "video/mp4"})
    response.content_length = size
    await response.prepare(request)
    head = mp4_header(size)
    await response.write(head)
    filler = (hashlib.sha256(task_id.encode()).digest() * (FILE_CHUNK // 32 + 1))[:FILE_CHUNK]
    remaining = size - len(head)
    while remaining > 0:
        chunk = filler[: min(remaining, FILE_CHUNK)]
        await response.write(chunk)
        remaining -= len(chunk)
    await response.write_eof()
    return response


def routes() -> list[web.RouteDef]:
    return [
        web.post("/api/v1/jobs/createTask", create_task, name="kie.createTask"),
        web.get("/api/v1/jobs/recordInfo", record_info, name="kie.recordInfo"),
        web.post("/api/v1/veo/generate", veo_generate, name="kie.veoGenerate"),
        web.get("/api/v1/veo/record-info", veo_record_info, name="kie.veoRecordInfo"),
        web.get("/api/v1/chat/credit", credit, name="kie.credit"),
        web.get("/files/{name}", result_file, name="kie.files"),
        web.get("/_sim/kie/creates", admin_creates, name="admin.kie_creates"),
    ]
