"""The fake KIE "Market" jobs API: createTask, recordInfo, credit and the result files.

It behaves like the documentation in ``providers.md``, including the parts a client gets wrong:
error codes that arrive either inside an HTTP 200 body or as the real status, ``msg`` or
``message``, HTML bodies on 5xx, ``""`` or ``null`` for empty fields, a task that fails after it
was accepted, and a timed-out create that still created (and charged) a task. A task created with a
``callBackUrl`` is called back when it ends (see ``simulator.callbacks``).

Order of checks for each request: authentication, rate limit, injected fault, then the request
itself. Injected faults are decided before any side effect, except the timeout fault, which answers
late after doing the work (a real gateway timeout says nothing about what happened behind it).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from simulator.callbacks import get_callbacks
from simulator.config import KieConfig
from simulator.state import SimState, Task, bearer_token, current_call, get_state

MAX_PROMPT_CHARS = 10_000
ASPECT_RATIOS = ("portrait", "landscape")
N_FRAMES = ("10", "15")
SIZES = ("standard", "high")
UNAVAILABLE_MSG = "the page does not exist or is not published"
GENERATION_FAIL = ("500", "internal error, please try again later")
CONTENT_POLICY_FAIL = ("422", "Invalid prompt: prompt contains prohibited content")
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


def _vary_empty(state: SimState) -> str | None:
    """Empty fields come as ``""`` or ``null``; clients must read both."""
    return state.style.choice(("", None))


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


def _authenticate(request: web.Request) -> str | web.Response:
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
    if state.windows.admit(f"kie:{bucket}:{key}", limit, window, time.monotonic()) is None:
        return None
    # Always a real HTTP 429, without Retry-After, as documented.
    return kie_error(
        request, 429, "The request rate is too high, please try again later", real_status=True
    )


# --- createTask ----------------------------------------------------------------------------------


def _validate_input(body: dict[str, Any]) -> tuple[str, str | None]:
    """``(prompt, None)`` for a valid request, else ``("", reason)`` for a 422."""
    callback = body.get("callBackUrl")
    if callback is not None and not _is_http_url(callback):
        return "", "callBackUrl must be an http(s) URL"
    params = body.get("input")
    if not isinstance(params, dict):
        return "", "input is required and must be an object"
    prompt = params.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        return "", "input.prompt is required"
    if len(prompt) > MAX_PROMPT_CHARS:
        return "", f"input.prompt must be at most {MAX_PROMPT_CHARS} characters"
    urls = params.get("image_urls")
    if not (isinstance(urls, list) and len(urls) == 1 and _is_http_url(urls[0])):
        return "", "input.image_urls must contain exactly one http(s) image URL"
    checks: tuple[tuple[str, tuple[str, ...]], ...] = (
        ("aspect_ratio", ASPECT_RATIOS),
        ("n_frames", N_FRAMES),
        ("size", SIZES),
    )
    for name, allowed in checks:
        if name in params and params[name] not in allowed:
            return "", f"input.{name} must be one of {', '.join(allowed)}"
    if "remove_watermark" in params and not isinstance(params["remove_watermark"], bool):
        return "", "input.remove_watermark must be a boolean"
    return prompt, None


def _is_http_url(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(("http://", "https://")) and len(value) > 8


def _model_unavailable(cfg: KieConfig, model: str) -> bool:
    return model in cfg.withdrawn_models or model not in cfg.available_models


async def create_task(request: web.Request) -> web.StreamResponse:
    """``POST /api/v1/jobs/createTask``."""
    key = _authenticate(request)
    if isinstance(key, web.Response):
        return key
    limited = _rate_limited(request, "create", key)
    if limited is not None:
        return limited
    return await _with_faults(request, "createTask", lambda: _create(request, key))


async def _create(request: web.Request, key: str) -> web.StreamResponse:
    state = get_state(request)
    cfg = state.config.kie
    call = current_call(request)
    try:
        body = json.loads(await request.text())
    except ValueError:
        return kie_error(request, 422, "request body must be JSON")
    if not isinstance(body, dict):
        return kie_error(request, 422, "request body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        return kie_error(request, 422, "model is required")
    call.model = model
    if _model_unavailable(cfg, model):
        return kie_error(request, cfg.unavailable_model_code, UNAVAILABLE_MSG)
    prompt, problem = _validate_input(body)
    if problem is not None:
        return kie_error(request, 422, problem)
    account = cfg.keys.get(key)
    if account is not None and account.credits is not None:
        if account.credits < cfg.credits_per_create:
            return kie_error(request, 402, "Credits insufficient")
        account.credits -= cfg.credits_per_create

    render = cfg.render_seconds
    if cfg.render_jitter and render > 0:
        render *= 1 + cfg.render_jitter * state.rng.uniform(-1.0, 1.0)
    task = Task(
        task_id=f"task_{secrets.token_hex(16)}",
        model=model,
        key=key,
        param=json.dumps(body, ensure_ascii=False),
        prompt=prompt,
        callback_url=body.get("callBackUrl"),
        created=time.time(),
        render_seconds=render,
        public_base=_public_base(request),
    )
    marker = cfg.content_policy_marker
    if marker and marker.lower() in prompt.lower():
        # Moderation answers early: the failure shows once the task leaves ``waiting``.
        task.fail_code, task.fail_msg = CONTENT_POLICY_FAIL
        task.fail_after = render * 0.1
    elif state.roll(cfg.rate_generation_fail):
        task.fail_code, task.fail_msg = GENERATION_FAIL
        task.fail_after = render
    state.tasks[task.task_id] = task
    get_callbacks(request).schedule(task)
    state.record_paid_create(key)
    call.task_id = task.task_id
    return kie_ok(request, {"taskId": task.task_id})


# --- recordInfo ----------------------------------------------------------------------------------


async def record_info(request: web.Request) -> web.StreamResponse:
    """``GET /api/v1/jobs/recordInfo?taskId=...``: the task's state, computed from the clock."""
    key = _authenticate(request)
    if isinstance(key, web.Response):
        return key
    limited = _rate_limited(request, "query", key)
    if limited is not None:
        return limited
    return await _with_faults(request, "recordInfo", lambda: _record_info(request, key))


async def _record_info(request: web.Request, key: str) -> web.StreamResponse:
    state = get_state(request)
    task_id = request.query.get("taskId", "")
    call = current_call(request)
    call.task_id = task_id or None
    if not task_id:
        return kie_error(request, 422, "taskId is required")
    task = state.tasks.get(task_id)
    if task is None:
        return kie_error(request, 404, "task not found")
    call.model = task.model
    task.polls += 1
    if key not in task.polled_by:
        task.polled_by.append(key)
    return kie_ok(request, record_data(state, task, _public_base(request), time.time()))


def record_data(state: SimState, task: Task, base: str, now: float) -> dict[str, Any]:
    """The ``data`` object of recordInfo (and of a callback): ``task`` at ``now``.

    ``base`` is where the result URL points: the poller's view of the simulator for recordInfo,
    the one stored at creation for a callback.
    """
    task_state, complete, update = task.view(now)
    result_json: str | None
    if task_state == "success":
        result_json = json.dumps({"resultUrls": [f"{base}/files/{task.task_id}.mp4"]})
    else:
        result_json = _vary_empty(state)
    failed = task_state == "fail"
    return {
        "taskId": task.task_id,
        "model": task.model,
        "state": task_state,
        "param": task.param,
        "resultJson": result_json,
        "failCode": task.fail_code if failed else _vary_empty(state),
        "failMsg": task.fail_msg if failed else _vary_empty(state),
        "costTime": _ms(complete) - _ms(task.created) if complete is not None else None,
        "createTime": _ms(task.created),
        "completeTime": _ms(complete) if complete is not None else None,
        "updateTime": _ms(update),
    }


def callback_body(state: SimState, task: Task, now: float) -> dict[str, Any]:
    """What a callback POSTs: recordInfo's whole answer for ``task`` at ``now``."""
    return {"code": 200, "msg": "success", "data": record_data(state, task, task.public_base, now)}


def _ms(seconds: float) -> int:
    return int(seconds * 1000)


def _public_base(request: web.Request) -> str:
    configured = get_state(request).config.kie.public_url
    if configured:
        return configured.rstrip("/")
    return str(request.url.origin())


# --- credit --------------------------------------------------------------------------------------


async def credit(request: web.Request) -> web.StreamResponse:
    """``GET /api/v1/chat/credit``: the key's remaining budget (1000 when unlimited)."""
    key = _authenticate(request)
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
        web.get("/api/v1/chat/credit", credit, name="kie.credit"),
        web.get("/files/{name}", result_file, name="kie.files"),
    ]
