"""The ``/_sim`` control API: what tests, benchmarks and ``worker demo`` use to steer and inspect.

Everything a test needs is plain HTTP + JSON, so a simulator in another process is driven exactly
like one in a thread (see ``simulator.testing.RunningSimulator``). Admin requests are never
recorded as provider calls and never hit by faults.
"""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from simulator.callbacks import get_callbacks
from simulator.state import get_state

_SERVICES = ("kie", "openai", "telegram")


def _bad_request(message: str) -> web.Response:
    return web.json_response({"error": message}, status=400)


def _since(request: web.Request) -> int | web.Response:
    """The ``since`` query parameter (0 when absent), or the 400 answer for a bad one."""
    try:
        return int(request.query.get("since", "0"))
    except ValueError:
        return _bad_request("since must be an integer")


async def health(request: web.Request) -> web.Response:
    """``GET /_sim/health`` → ``{"ok": true}``."""
    return web.json_response({"ok": True})


async def get_config(request: web.Request) -> web.Response:
    """``GET /_sim/config`` → the live configuration (KIE credit balances included)."""
    return web.json_response(get_state(request).config.to_dict())


async def patch_config(request: web.Request) -> web.Response:
    """``POST /_sim/config`` with a JSON object: deep-merge it; → the new configuration.

    An invalid patch changes nothing and answers 400 ``{"error": "..."}``.
    """
    state = get_state(request)
    try:
        patch = await request.json()
        if not isinstance(patch, dict):
            raise ValueError("the configuration patch must be a JSON object")
        state.apply_patch(patch)
    except ValueError as exc:
        return _bad_request(str(exc))
    return web.json_response(state.config.to_dict())


async def reset(request: web.Request) -> web.Response:
    """``POST /_sim/reset``: start-up configuration, no tasks, calls, callbacks or messages.

    Callbacks not yet sent (retries included) are cancelled. → ``{"ok": true}``.
    """
    get_state(request).reset()
    return web.json_response({"ok": True})


async def calls(request: web.Request) -> web.Response:
    """``GET /_sim/calls?service=&endpoint=&since=`` → recorded calls, oldest first.

    ``since`` is a ``seq``: only later calls are returned (cheap polling from a benchmark).
    """
    state = get_state(request)
    service = request.query.get("service") or None
    endpoint = request.query.get("endpoint") or None
    if service is not None and service not in _SERVICES:
        return _bad_request(f"service must be one of {', '.join(_SERVICES)}")
    since = _since(request)
    if isinstance(since, web.Response):
        return since
    return web.json_response(
        [
            c.to_dict()
            for c in state.calls
            if c.seq > since
            and (service is None or c.service == service)
            and (endpoint is None or c.endpoint == endpoint)
        ]
    )


async def callbacks(request: web.Request) -> web.Response:
    """``GET /_sim/callbacks?task_id=&since=`` → callback POSTs (and lost callbacks), oldest first.

    ``since`` is a callback ``seq`` (its own sequence, not that of calls).
    """
    state = get_state(request)
    task_id = request.query.get("task_id") or None
    since = _since(request)
    if isinstance(since, web.Response):
        return since
    return web.json_response(
        [
            c.to_dict()
            for c in state.callbacks
            if c.seq > since and (task_id is None or c.task_id == task_id)
        ]
    )


async def stats(request: web.Request) -> web.Response:
    """``GET /_sim/stats`` → counts per service/endpoint/status, faults, ``paid_creates``.

    ``callbacks`` counts POSTs (``attempts``), their outcomes (``delivered``: answered 2xx,
    ``failed``: any other answer, an error or a timeout), ``lost`` callbacks and ``pending`` ones:
    not finished yet (waiting for their task to end, in flight, or waiting to retry or repeat).
    """
    return web.json_response(get_state(request).stats())


async def tasks(request: web.Request) -> web.Response:
    """``GET /_sim/tasks`` → every KIE task with its current state and creating key."""
    state = get_state(request)
    now = time.time()
    return web.json_response([t.to_dict(now) for t in state.tasks.values()])


async def task(request: web.Request) -> web.Response:
    """``GET /_sim/tasks/{task_id}`` → one task, 404 if unknown."""
    state = get_state(request)
    found = state.tasks.get(request.match_info["task_id"])
    if found is None:
        return web.json_response({"error": "task not found"}, status=404)
    return web.json_response(found.to_dict(time.time()))


async def finish_task(request: web.Request) -> web.Response:
    """``POST /_sim/tasks/{task_id}/finish``: the task succeeds now; → the task.

    A task with a ``callBackUrl`` calls back now instead of when it was planned to end.
    """
    return await _force(request, "success", {})


async def fail_task(request: web.Request) -> web.Response:
    """``POST /_sim/tasks/{task_id}/fail`` with optional ``{"fail_code", "fail_msg"}``; → the task.

    Defaults to the retryable generation failure (failCode "500").
    """
    body: dict[str, Any] = {}
    if request.body_exists:
        try:
            parsed = await request.json()
        except ValueError:
            return _bad_request("body must be a JSON object")
        if not isinstance(parsed, dict):
            return _bad_request("body must be a JSON object")
        body = parsed
    return await _force(request, "fail", body)


async def _force(request: web.Request, outcome: str, body: dict[str, Any]) -> web.Response:
    state = get_state(request)
    found = state.tasks.get(request.match_info["task_id"])
    if found is None:
        return web.json_response({"error": "task not found"}, status=404)
    now = time.time()
    found.forced_state, found.forced_at = outcome, now
    if outcome == "fail":
        found.fail_code = str(body.get("fail_code", "500"))
        found.fail_msg = str(body.get("fail_msg", "internal error, please try again later"))
        found.fail_after = now - found.created
    else:
        found.fail_code = found.fail_msg = None
    get_callbacks(request).schedule(found)
    return web.json_response(found.to_dict(now))


async def messages(request: web.Request) -> web.Response:
    """``GET /_sim/messages?chat_id=N`` → delivered Telegram messages, in order."""
    state = get_state(request)
    chat_id = request.query.get("chat_id")
    return web.json_response(
        [m for m in state.messages if chat_id is None or str(m["chat_id"]) == chat_id]
    )


def routes() -> list[web.RouteDef]:
    return [
        web.get("/_sim/health", health, name="admin.health"),
        web.get("/_sim/config", get_config, name="admin.config"),
        web.post("/_sim/config", patch_config, name="admin.patch_config"),
        web.post("/_sim/reset", reset, name="admin.reset"),
        web.get("/_sim/calls", calls, name="admin.calls"),
        web.get("/_sim/callbacks", callbacks, name="admin.callbacks"),
        web.get("/_sim/stats", stats, name="admin.stats"),
        web.get("/_sim/tasks", tasks, name="admin.tasks"),
        web.get("/_sim/tasks/{task_id}", task, name="admin.task"),
        web.post("/_sim/tasks/{task_id}/finish", finish_task, name="admin.finish_task"),
        web.post("/_sim/tasks/{task_id}/fail", fail_task, name="admin.fail_task"),
        web.get("/_sim/messages", messages, name="admin.messages"),
    ]
