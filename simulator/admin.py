"""The ``/_sim`` control API: what tests, benchmarks and ``worker demo`` use to steer and inspect.

Everything a test needs is plain HTTP + JSON, so a simulator in another process is driven exactly
like one in a thread (see ``simulator.testing.RunningSimulator``). Admin requests are never
recorded as provider calls and never hit by faults.

Endpoints (details in each handler's docstring):

- ``GET /_sim/health``; ``GET|POST /_sim/config`` (read, deep-merge a patch); ``POST /_sim/reset``.
- ``GET /_sim/calls?service=&endpoint=&model=&since=``, ``GET /_sim/stats``,
  ``GET /_sim/callbacks``, ``GET /_sim/messages``, ``GET /_sim/tasks[/<id>]``,
  ``POST /_sim/tasks/<id>/finish|fail``.
- KIE models: ``GET /_sim/models`` lists every model with its schema, price, state and counters;
  ``POST /_sim/models/<model>`` with ``{"state": "paused"}`` pauses a model while the simulator
  runs (``"live"`` resumes it, ``"unknown"`` / ``"withdrawn"`` make it answer as an unknown or
  withdrawn model, ``null`` returns to the catalog's state). From Python:
  ``RunningSimulator.set_model_state(model, "paused")`` / ``pause_model`` / ``resume_model``.

How a model's state answers a create call (createTask or Veo's generate), before its body is read:
``paused`` → 500 "This interface is temporarily paused"; ``unknown`` → 422 (or
``kie.unknown_model_code`` 404) "The model name you specified is not supported..."; ``withdrawn``
→ 505 (or ``kie.unavailable_model_code``) "the page does not exist or is not published".

Counting createTask calls spent on a model: ``GET /_sim/models`` → ``create_calls`` of its entry
(every create call naming it since the last reset, whatever the answer; also in ``GET /_sim/stats``
as ``create_calls_by_model``), or ``GET /_sim/calls?endpoint=createTask&model=<model>`` for the
calls themselves (Veo: ``endpoint=veoGenerate``). ``RunningSimulator.create_calls(model)`` does
the former.
"""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from simulator.callbacks import get_callbacks
from simulator.kie import model_state
from simulator.kie_models import MODELS
from simulator.kie_schema import STATES
from simulator.state import SimState, get_state

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
    """``GET /_sim/calls?service=&endpoint=&model=&since=`` → recorded calls, oldest first.

    ``since`` is a ``seq``: only later calls are returned (cheap polling from a benchmark).
    ``model`` keeps the calls naming that model (create calls record it even when answered 429
    or by a fault; polls record the model of the task they ask about).
    """
    state = get_state(request)
    service = request.query.get("service") or None
    endpoint = request.query.get("endpoint") or None
    model = request.query.get("model") or None
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
            and (model is None or c.model == model)
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
    state.bill(found)
    get_callbacks(request).schedule(found)
    return web.json_response(found.to_dict(now))


def _model_entry(state: SimState, model: str) -> dict[str, Any]:
    spec = MODELS.get(model)
    described: dict[str, Any] = spec.describe() if spec is not None else {"model": model}
    return {
        **described,
        "state": model_state(state.config.kie, model),
        "overridden": model in state.config.kie.model_states,
        "create_calls": state.create_calls_by_model[model],
        "tasks": state.tasks_by_model[model],
        "credits_charged": state.credits_by_model.get(model, 0.0),
    }


async def models(request: web.Request) -> web.Response:
    """``GET /_sim/models`` → every model: schema, price, state and counters.

    One entry per catalog model, plus any other name that has an override or was named by a
    create call. ``state`` is how createTask (or Veo's generate) answers it now, ``overridden``
    whether ``kie.model_states`` set it; ``create_calls`` counts every create call that named
    it since the last reset (paused, refused, rate-limited and faulted ones too), ``tasks`` the
    tasks created and ``credits_charged`` what they cost (failed tasks are given back).
    """
    state = get_state(request)
    names = list(MODELS)
    extra = set(state.config.kie.model_states) | set(state.create_calls_by_model)
    names += sorted(extra - set(names))
    return web.json_response([_model_entry(state, name) for name in names])


async def set_model_state(request: web.Request) -> web.Response:
    """``POST /_sim/models/<model>`` ``{"state": "live"|"paused"|"unknown"|"withdrawn"|null}``.

    Sets how KIE answers that model from the next request on (``null`` drops the override and
    the catalog's state applies again); → the model's entry as ``GET /_sim/models`` shows it.
    The same as patching ``{"kie": {"model_states": {model: state}}}``; ``reset`` undoes it. A
    bad state, or ``live`` for a model the simulator has no schema for, answers 400.
    """
    state = get_state(request)
    model = request.match_info["model"]
    try:
        body = await request.json()
    except ValueError:
        return _bad_request('body must be {"state": ...}')
    if not isinstance(body, dict) or set(body) != {"state"}:
        return _bad_request('body must be {"state": ...}')
    wanted = body["state"]
    if wanted is not None and wanted not in STATES:
        return _bad_request(f"state must be one of {', '.join(STATES)} or null")
    try:
        state.apply_patch({"kie": {"model_states": {model: wanted}}})
    except ValueError as exc:
        return _bad_request(str(exc))
    return web.json_response(_model_entry(state, model))


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
        web.get("/_sim/models", models, name="admin.models"),
        web.post("/_sim/models/{model:.+}", set_model_state, name="admin.set_model_state"),
    ]
