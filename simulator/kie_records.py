"""What KIE says about a task: recordInfo's ``data``, Veo's record-info ``data``, callback bodies.

Both the poll endpoints (``simulator.kie``) and the callbacks (``simulator.callbacks``) build
their bodies here, so a callback carries exactly what a poll at the same moment would.
"""

from __future__ import annotations

import json
from typing import Any

from simulator.kie_schema import VEO
from simulator.state import SimState, Task

#: Veo error codes of a refused request (``successFlag`` 2); others failed upstream (3).
VEO_REFUSED_CODES = ("400", "422", "451")


def vary_empty(state: SimState) -> str | None:
    """Empty fields come as ``""`` or ``null``; clients must read both."""
    return state.style.choice(("", None))


def _result_url(task: Task, base: str) -> str:
    return f"{base}/files/{task.task_id}.mp4"


def record_data(state: SimState, task: Task, base: str, now: float) -> dict[str, Any]:
    """The ``data`` object of recordInfo (and of a callback): ``task`` at ``now``.

    ``base`` is where the result URL points: the poller's view of the simulator for recordInfo,
    the one stored at creation for a callback. ``creditsConsumed`` is what the task cost once it
    succeeded (0 before, and for a failed task, which is not charged).
    """
    task_state, complete, update = task.view(now)
    result_json: str | None
    if task_state == "success":
        result_json = json.dumps({"resultUrls": [_result_url(task, base)]})
    else:
        result_json = vary_empty(state)
    failed = task_state == "fail"
    return {
        "taskId": task.task_id,
        "model": task.model,
        "state": task_state,
        "param": task.param,
        "resultJson": result_json,
        "failCode": task.fail_code if failed else vary_empty(state),
        "failMsg": task.fail_msg if failed else vary_empty(state),
        "creditsConsumed": task.credits if task_state == "success" else 0,
        "costTime": _ms(complete) - _ms(task.created) if complete is not None else None,
        "createTime": _ms(task.created),
        "completeTime": _ms(complete) if complete is not None else None,
        "updateTime": _ms(update),
    }


def veo_success_flag(task_state: str, fail_code: str | None) -> int:
    """Veo's ``successFlag``: 0 generating, 1 success, 2 failed (refused), 3 failed upstream."""
    if task_state == "success":
        return 1
    if task_state == "fail":
        return 2 if fail_code in VEO_REFUSED_CODES else 3
    return 0


def _veo_info(task: Task, base: str) -> dict[str, Any]:
    url = _result_url(task, base)
    return {
        "resultUrls": [url],
        # Only a video that is not 16:9 also has its uncropped original.
        "originUrls": None if task.aspect_ratio in ("", "16:9") else [url],
        "resolution": task.resolution or "720p",
    }


def veo_record_data(state: SimState, task: Task, base: str, now: float) -> dict[str, Any]:
    """The ``data`` object of Veo's record-info: ``task`` at ``now``."""
    task_state, complete, _ = task.view(now)
    failed = task_state == "fail"
    response: dict[str, Any] | None = None
    if task_state == "success":
        response = {"taskId": task.task_id, **_veo_info(task, base)}
    return {
        "taskId": task.task_id,
        "paramJson": task.param,
        "createTime": _ms(task.created),
        "completeTime": _ms(complete) if complete is not None else None,
        "successFlag": veo_success_flag(task_state, task.fail_code),
        "response": response,
        "errorCode": int(task.fail_code) if failed and task.fail_code else None,
        "errorMessage": task.fail_msg if failed else vary_empty(state),
        "fallbackFlag": False,
    }


def callback_body(state: SimState, task: Task, now: float) -> dict[str, Any]:
    """What a callback POSTs when ``task`` has ended.

    Market: recordInfo's whole answer, top-level ``code`` 200, or 501 for a failed task. Veo:
    ``{"code": 200, "msg", "data": {"taskId", "info": {"resultUrls", "originUrls",
    "resolution"}, "promptJson", "fallbackFlag"}}``, or on failure ``{"code": 400|422|500|501,
    "msg", "data": {"taskId"}}``.
    """
    task_state = task.view(now)[0]
    if task.family == VEO:
        if task_state == "fail":
            return {
                "code": int(task.fail_code or 500),
                "msg": task.fail_msg or "",
                "data": {"taskId": task.task_id},
            }
        return {
            "code": 200,
            "msg": "Veo3.1 video generated successfully.",
            "data": {
                "taskId": task.task_id,
                "info": _veo_info(task, task.public_base),
                "promptJson": json.loads(task.param),
                "fallbackFlag": False,
            },
        }
    data = record_data(state, task, task.public_base, now)
    if task_state == "fail":
        return {"code": 501, "msg": task.fail_msg or "generation failed", "data": data}
    return {"code": 200, "msg": "success", "data": data}


def _ms(seconds: float) -> int:
    return int(seconds * 1000)
