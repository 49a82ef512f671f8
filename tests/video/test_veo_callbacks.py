"""KIE's callbacks for Veo 3.1 tasks: no ``state`` field, the outcome is the body's code and the
videos are in ``data.info.resultUrls``; a failure carries only ``data.taskId``."""

from __future__ import annotations

import json

import pytest

from jobs.video.callbacks import read
from worker.config import load_settings
from worker.webhooks import WebhookRejected, WebhookRequest

pytestmark = pytest.mark.unit

SETTINGS = load_settings(_env_file=None)


def _request(body: object) -> WebhookRequest:
    return WebhookRequest(headers={}, query={"job": "42"}, body=json.dumps(body).encode())


def test_a_veo_success_wakes_the_job() -> None:
    wake = read(
        _request(
            {
                "code": 200,
                "msg": "Veo3.1 video generated successfully.",
                "data": {
                    "taskId": "veo_task_1",
                    "info": {"resultUrls": ["https://tempfile.aiquickdraw.com/v.mp4"]},
                    "fallbackFlag": False,
                },
            }
        ),
        SETTINGS,
    )
    assert (wake.job_id, wake.provider_task_id, wake.step) == (42, "veo_task_1", "poll")
    assert wake.data["state"] == "success" and "is success" in wake.detail


@pytest.mark.parametrize("code", [400, 422, 500, 501])
def test_a_veo_failure_wakes_the_job_too(code: int) -> None:
    body = {"code": code, "msg": "Your prompt was flagged", "data": {"taskId": "veo_task_2"}}
    wake = read(_request(body), SETTINGS)
    assert wake.provider_task_id == "veo_task_2" and wake.data["state"] == "fail"


def test_a_market_callback_keeps_its_state() -> None:
    body = {"code": 200, "msg": "ok", "data": {"taskId": "t1", "state": "success"}}
    assert read(_request(body), SETTINGS).data["state"] == "success"
    with pytest.raises(WebhookRejected):
        read(_request({"code": 200, "data": {"info": {}}}), SETTINGS)
