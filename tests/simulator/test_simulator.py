"""The provider simulator, exercised over real HTTP (no mocks).

One simulator runs in a thread for the whole module and is reset before every test; each test
patches the configuration it needs. Render times and timeouts are fractions of a second so the
file stays fast.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from hypothesis import given
from hypothesis import strategies as st

from simulator.config import QUOTA_CODES, SimConfig, deep_merge
from simulator.state import Task
from simulator.testing import RunningSimulator, start_in_thread
from tests.simulator.conftest import FORBIDDEN_MSG, IMAGE, KEY, MODEL, MODEL_CREDITS, VALID_INPUT


@pytest.fixture(scope="module")
def sim() -> Iterator[RunningSimulator]:
    # Deterministic error shapes by default; the tests of "body" and "mixed" patch them.
    config = SimConfig.from_dict(
        {
            "seed": 7,
            "kie": {
                "render_seconds": 0.3,
                "code_in_body": "status",
                "message_key": "msg",
            },
        }
    )
    with start_in_thread(config) as running:
        yield running


@pytest.fixture(autouse=True)
def fresh(sim: RunningSimulator) -> None:
    sim.reset()


@pytest.fixture
def http(sim: RunningSimulator) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sim.url, timeout=5) as client:
        yield client


def task_body(
    prompt: str = "A red ceramic mug",
    model: str = MODEL,
    *,
    callback_url: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A valid createTask body; without ``callback_url`` (callbacks are tested in their module)."""
    params: dict[str, Any] = {"prompt": prompt, **VALID_INPUT}
    params.update(extra)
    body: dict[str, Any] = {"model": model, "input": params}
    if callback_url is not None:
        body["callBackUrl"] = callback_url
    return body


def create(client: httpx.Client, **kwargs: Any) -> httpx.Response:
    return client.post("/api/v1/jobs/createTask", json=task_body(**kwargs))


def create_id(client: httpx.Client, **kwargs: Any) -> str:
    response = create(client, **kwargs)
    assert response.status_code == 200, response.text
    task_id: str = response.json()["data"]["taskId"]
    return task_id


def poll(client: httpx.Client, task_id: str) -> dict[str, Any]:
    response = client.get("/api/v1/jobs/recordInfo", params={"taskId": task_id})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["code"] == 200
    data: dict[str, Any] = body["data"]
    return data


def kie_code(response: httpx.Response) -> tuple[int, str]:
    """The KIE code and message wherever they are (body or status, msg or message)."""
    body = response.json()
    return body["code"], body.get("msg", body.get("message"))


def wait_for(
    client: httpx.Client, task_id: str, states: set[str], limit: float = 3.0
) -> dict[str, Any]:
    deadline = time.monotonic() + limit
    while True:
        data = poll(client, task_id)
        if data["state"] in states or time.monotonic() > deadline:
            return data
        time.sleep(0.12)  # under the default 10 queries per second


# --- KIE: happy path ---------------------------------------------------------------------------


def test_create_poll_download(sim: RunningSimulator, kie: httpx.Client, http: httpx.Client) -> None:
    response = create(kie, duration="10", sound=True)
    assert response.status_code == 200
    body = response.json()
    assert body["code"] == 200 and body["msg"] == "success"
    task_id = body["data"]["taskId"]
    assert task_id.startswith("task_")

    first = poll(kie, task_id)
    assert first["state"] == "waiting"
    assert first["resultJson"] in ("", None)
    assert first["failCode"] in ("", None) and first["failMsg"] in ("", None)
    assert first["completeTime"] is None
    assert json.loads(first["param"]) == task_body(duration="10", sound=True)
    assert first["model"] == MODEL and first["taskId"] == task_id
    assert first["creditsConsumed"] == 0

    done = wait_for(kie, task_id, {"success"})
    assert done["state"] == "success"
    assert done["completeTime"] - done["createTime"] == done["costTime"]
    assert done["updateTime"] == done["completeTime"]
    assert done["creditsConsumed"] == 220  # 10 s with sound: twice 110
    urls = json.loads(done["resultJson"])["resultUrls"]
    assert urls == [f"{sim.url}/files/{task_id}.mp4"]

    video = http.get(urls[0])
    assert video.status_code == 200
    assert video.headers["content-type"] == "video/mp4"
    assert video.content[:12] == b"\x00\x00\x00\x18ftypmp42"
    assert len(video.content) == 64 * 1024

    stats = sim.stats()
    assert stats["paid_creates"] == 1
    assert stats["paid_creates_by_key"] == {KEY: 1}
    assert stats["calls"]["kie"]["createTask"] == {"200": 1}
    [task] = sim.tasks()
    assert task["task_id"] == task_id and task["key"] == KEY and task["state"] == "success"
    assert task["polled_by"] == [KEY] and task["downloads"] == 1


def test_states_progress_in_order(sim: RunningSimulator, kie: httpx.Client) -> None:
    sim.configure({"kie": {"render_seconds": 0.4, "query_limit": 0}})
    task_id = create_id(kie)
    order = ["waiting", "queuing", "generating", "success"]
    seen: list[str] = []
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        state = poll(kie, task_id)["state"]
        if not seen or seen[-1] != state:
            seen.append(state)
        if state == "success":
            break
        time.sleep(0.02)
    assert seen[0] == "waiting" and seen[-1] == "success"
    assert [order.index(s) for s in seen] == sorted(order.index(s) for s in seen)


def test_task_phases_follow_the_clock() -> None:
    task = Task("task_x", MODEL, KEY, "{}", "p", None, created=100.0, render_seconds=10.0)
    assert task.view(100.0)[0] == "waiting"
    assert task.view(100.99)[0] == "waiting"
    assert task.view(101.0) == ("queuing", None, 101.0)
    assert task.view(103.0) == ("generating", None, 102.5)
    assert task.view(110.0) == ("success", 110.0, 110.0)
    task.fail_code, task.fail_msg, task.fail_after = "500", "boom", 10.0
    assert task.view(109.0)[0] == "generating"
    assert task.view(111.0) == ("fail", 110.0, 110.0)


def test_zero_render_time_is_immediate_success(sim: RunningSimulator, kie: httpx.Client) -> None:
    sim.configure({"kie": {"render_seconds": 0}})
    data = poll(kie, create_id(kie))
    assert data["state"] == "success"
    assert json.loads(data["resultJson"])["resultUrls"][0].endswith(".mp4")


def test_credit_endpoint(sim: RunningSimulator, kie: httpx.Client) -> None:
    assert kie.get("/api/v1/chat/credit").json() == {"code": 200, "msg": "success", "data": 1000}
    sim.configure({"kie": {"keys": {KEY: {"credits": 100}}}})
    create_id(kie)
    assert kie.get("/api/v1/chat/credit").json()["data"] == 100 - MODEL_CREDITS


def test_a_task_can_be_polled_with_another_key(sim: RunningSimulator, kie: httpx.Client) -> None:
    task_id = create_id(kie)
    other = kie.get(
        "/api/v1/jobs/recordInfo",
        params={"taskId": task_id},
        headers={"Authorization": "Bearer other-key"},
    )
    assert other.json()["data"]["taskId"] == task_id
    assert sim.task(task_id)["polled_by"] == ["other-key"]
    [call] = sim.calls("kie", "recordInfo")
    assert call["key"] == "other-key" and call["task_id"] == task_id


def test_public_url_overrides_result_base(sim: RunningSimulator, kie: httpx.Client) -> None:
    sim.configure({"kie": {"render_seconds": 0, "public_url": "https://cdn.example/"}})
    task_id = create_id(kie)
    urls = json.loads(poll(kie, task_id)["resultJson"])["resultUrls"]
    assert urls == [f"https://cdn.example/files/{task_id}.mp4"]


# --- KIE: validation, models, keys, credits ------------------------------------------------------


@pytest.mark.parametrize(
    "input_patch",
    [
        {"prompt": ""},
        {"prompt": "x" * 1001},
        {"image_urls": []},
        {"image_urls": [IMAGE, IMAGE]},
        {"image_urls": ["ftp://example.com/a.png"]},
        {"image_urls": IMAGE},
        {"aspect_ratio": "9:16"},
        {"duration": 5},
        {"duration": "7"},
        {"sound": "no"},
        {"n_frames": "10"},
    ],
)
def test_invalid_input_is_422(kie: httpx.Client, input_patch: dict[str, Any]) -> None:
    body = task_body()
    body["input"].update(input_patch)
    response = kie.post("/api/v1/jobs/createTask", json=body)
    assert response.status_code == 422
    code, message = kie_code(response)
    assert code == 422 and f"input.{next(iter(input_patch))}" in message


def test_callback_url_is_accepted_and_validated(sim: RunningSimulator, kie: httpx.Client) -> None:
    sim.configure({"kie": {"callbacks": False}})  # accepted, but nothing goes to example.com
    task_id = create_id(kie, callback_url="https://example.com/cb")
    assert sim.task(task_id)["callback_url"] == "https://example.com/cb"
    assert json.loads(poll(kie, task_id)["param"])["callBackUrl"] == "https://example.com/cb"
    for bad in ("ftp://example.com/cb", "https://", 5):
        body = task_body()
        body["callBackUrl"] = bad
        response = kie.post("/api/v1/jobs/createTask", json=body)
        assert response.status_code == 422, bad
        assert kie_code(response) == (422, "callBackUrl must be an http(s) URL")
    assert sim.stats()["callbacks"]["pending"] == 0 and sim.callbacks() == []


def test_invalid_bodies(kie: httpx.Client) -> None:
    for raw in (b"not json", b"[1]", json.dumps({"model": 5, "input": {}}).encode()):
        response = kie.post("/api/v1/jobs/createTask", content=raw)
        assert response.status_code == 422, raw
    # A missing field is KIE's 500 "<field> is required", not a 422.
    response = kie.post("/api/v1/jobs/createTask", json={"model": MODEL})
    assert kie_code(response) == (500, "input is required")
    response = kie.post("/api/v1/jobs/createTask", json={"input": {}})
    assert kie_code(response) == (500, "model is required")
    response = kie.post("/api/v1/jobs/createTask", json={**task_body(), "priority": 1})
    assert kie_code(response) == (422, "priority is not a parameter of createTask")


def test_limits_of_valid_input(sim: RunningSimulator, kie: httpx.Client) -> None:
    create_id(kie, prompt="x" * 1000, duration="10")
    create_id(kie, sound=True)
    assert sim.stats()["paid_creates"] == 2
    assert sim.stats()["credits_by_model"] == {MODEL: 110 + 110}


def test_unknown_and_withdrawn_models(sim: RunningSimulator, kie: httpx.Client) -> None:
    response = create(kie, model="sora-3-image-to-video")
    unknown = "The model name you specified is not supported, please check the model name"
    assert kie_code(response) == (422, unknown)
    sim.configure({"kie": {"unknown_model_code": 404}})
    assert response.status_code == 422 and create(kie, model="nope").status_code == 404
    sim.configure({"kie": {"withdrawn_models": [MODEL]}})
    assert create(kie).status_code == 505
    sim.configure({"kie": {"unavailable_model_code": 404}})
    assert kie_code(create(kie)) == (404, "the page does not exist or is not published")
    assert sim.stats()["paid_creates"] == 0


def test_authentication(sim: RunningSimulator, kie: httpx.Client, http: httpx.Client) -> None:
    assert http.post("/api/v1/jobs/createTask", json=task_body()).status_code == 401
    # Without configured keys any bearer token works; with keys, only those.
    sim.configure({"kie": {"keys": {"good": {}, "gone": {"revoked": True}}}})
    for token, status in (("good", 200), (KEY, 401), ("gone", 401)):
        auth = {"Authorization": f"Bearer {token}"}
        assert http.post("/api/v1/jobs/createTask", json=task_body(), headers=auth).status_code == (
            status
        )
        assert http.get("/api/v1/chat/credit", headers=auth).status_code == status
    task_id = sim.tasks()[0]["task_id"]
    query = http.get(
        "/api/v1/jobs/recordInfo",
        params={"taskId": task_id},
        headers={"Authorization": "Bearer gone"},
    )
    assert query.status_code == 401
    assert [c["key"] for c in sim.calls("kie", "createTask")] == [None, "good", KEY, "gone"]


def test_credits_run_out_with_402(sim: RunningSimulator, kie: httpx.Client) -> None:
    sim.configure({"kie": {"keys": {KEY: {"credits": 2 * MODEL_CREDITS + 1}, "rich": {}}}})
    create_id(kie)
    assert create(kie, prompt="").status_code == 422  # refused requests cost nothing
    create_id(kie)
    response = create(kie)
    assert response.status_code == 402
    assert kie_code(response) == (402, "Credits insufficient")
    assert sim.config()["kie"]["keys"][KEY]["credits"] == 1
    assert kie.get("/api/v1/chat/credit").json()["data"] == 1
    rich = kie.post(
        "/api/v1/jobs/createTask", json=task_body(), headers={"Authorization": "Bearer rich"}
    )
    assert rich.status_code == 200
    sim.configure({"kie": {"keys": {KEY: {"credits": MODEL_CREDITS}}}})  # a top-up
    create_id(kie)
    assert sim.stats()["paid_creates_by_key"] == {KEY: 3, "rich": 1}


# --- KIE: error shapes ---------------------------------------------------------------------------


def test_error_code_in_body(sim: RunningSimulator, http: httpx.Client) -> None:
    sim.configure({"kie": {"code_in_body": "body", "message_key": "message"}})
    response = http.post("/api/v1/jobs/createTask", json=task_body())
    assert response.status_code == 200
    assert response.json() == {
        "code": 401,
        "message": "You do not have access permissions: missing API key",
        "data": None,
    }


def test_error_shapes_vary_when_mixed(sim: RunningSimulator, kie: httpx.Client) -> None:
    sim.configure({"kie": {"code_in_body": "mixed", "message_key": "mixed", "query_limit": 0}})
    statuses: set[int] = set()
    keys: set[str] = set()
    for _ in range(30):
        response = kie.get("/api/v1/jobs/recordInfo", params={"taskId": "task_nope"})
        body = response.json()
        statuses.add(response.status_code)
        keys.update(k for k in body if k in ("msg", "message"))
        assert body["code"] == 404
        assert body.get("msg", body.get("message")) == "task not found"
    assert statuses == {200, 404}
    assert keys == {"msg", "message"}


def test_unknown_task_is_404(kie: httpx.Client) -> None:
    response = kie.get("/api/v1/jobs/recordInfo", params={"taskId": "task_nope"})
    assert response.status_code == 404
    assert response.json() == {"code": 404, "msg": "task not found", "data": None}
    assert kie.get("/api/v1/jobs/recordInfo").status_code == 422


def test_empty_fields_vary_between_empty_string_and_null(
    sim: RunningSimulator, kie: httpx.Client
) -> None:
    sim.configure({"kie": {"render_seconds": 30, "query_limit": 0}})
    task_id = create_id(kie)
    seen = {poll(kie, task_id)["failCode"] for _ in range(20)}
    assert seen == {"", None}


# --- KIE: faults ---------------------------------------------------------------------------------


def test_429_is_always_a_real_http_429(sim: RunningSimulator, kie: httpx.Client) -> None:
    sim.configure({"kie": {"rate_429": 1, "code_in_body": "body"}})
    response = create(kie)
    assert response.status_code == 429
    assert "retry-after" not in response.headers
    assert kie_code(response)[0] == 429
    assert sim.stats()["paid_creates"] == 0
    assert sim.calls("kie")[0]["fault"] == "429"


def test_5xx_fault_json_and_html(sim: RunningSimulator, kie: httpx.Client) -> None:
    sim.configure({"kie": {"rate_5xx": 1, "html_error_share": 0}})
    response = create(kie)
    assert response.status_code == 500 and kie_code(response)[0] == 500
    sim.configure({"kie": {"html_error_share": 1}})
    response = kie.get("/api/v1/chat/credit")
    assert response.status_code in (502, 503)
    assert response.headers["content-type"].startswith("text/html")
    with pytest.raises(ValueError):
        response.json()
    assert sim.stats()["paid_creates"] == 0
    assert sim.stats()["faults"]["kie"] == {"5xx": 1, "5xx:html": 1}


def test_maintenance_is_455(sim: RunningSimulator, kie: httpx.Client) -> None:
    sim.configure({"kie": {"rate_maintenance": 1}})
    response = create(kie)
    assert response.status_code == 455
    assert kie_code(response)[0] == 455
    sim.configure({"kie": {"code_in_body": "body"}})
    response = create(kie)
    assert response.status_code == 200 and kie_code(response)[0] == 455


def test_malformed_answers(sim: RunningSimulator, kie: httpx.Client) -> None:
    sim.configure({"kie": {"rate_malformed": 1, "create_limit": 0}})
    for _ in range(40):
        response = create(kie)
        assert response.status_code == 200
        try:
            body = response.json()
        except ValueError:
            continue
        data = body.get("data")
        assert not (body.get("code") == 200 and isinstance((data or {}).get("taskId"), str))
    variants = {c["fault"] for c in sim.calls("kie", "createTask")}
    assert variants == {
        "malformed:text",
        "malformed:no_data",
        "malformed:missing_fields",
        "malformed:wrong_types",
    }
    assert sim.stats()["paid_creates"] == 0


def test_faults_only_on_chosen_endpoints(sim: RunningSimulator, kie: httpx.Client) -> None:
    sim.configure({"kie": {"rate_5xx": 1, "fault_endpoints": ["recordInfo"]}})
    task_id = create_id(kie)
    response = kie.get("/api/v1/jobs/recordInfo", params={"taskId": task_id})
    assert response.status_code >= 500


def test_timeout_still_creates_the_task(sim: RunningSimulator, kie: httpx.Client) -> None:
    sim.configure({"kie": {"rate_timeout": 1, "timeout_seconds": 0.5}})
    with pytest.raises(httpx.ReadTimeout):
        kie.post("/api/v1/jobs/createTask", json=task_body(), timeout=0.15)
    assert sim.stats()["paid_creates"] == 1  # paid, and the client never learned the task id
    assert len(sim.tasks()) == 1
    started = time.monotonic()
    assert kie.get("/api/v1/chat/credit").status_code == 200
    assert 0.4 < time.monotonic() - started < 2.0


def test_timeout_without_creating(sim: RunningSimulator, kie: httpx.Client) -> None:
    sim.configure(
        {"kie": {"rate_timeout": 1, "timeout_seconds": 0.2, "timeout_creates_task": False}}
    )
    response = create(kie)
    assert response.status_code == 500
    assert sim.tasks() == []
    assert sim.calls("kie")[0]["fault"] == "timeout"


def test_seed_reproduces_faults(sim: RunningSimulator, kie: httpx.Client) -> None:
    def run() -> list[int]:
        sim.reset()
        sim.configure({"seed": 42, "kie": {"rate_5xx": 0.5, "html_error_share": 0}})
        return [kie.get("/api/v1/chat/credit").status_code for _ in range(20)]

    first = run()
    assert first == run()
    assert set(first) == {200, 500}


def test_generation_failure(sim: RunningSimulator, kie: httpx.Client) -> None:
    sim.configure({"kie": {"rate_generation_fail": 1, "render_seconds": 0.2}})
    task_id = create_id(kie)
    assert poll(kie, task_id)["state"] in ("waiting", "queuing", "generating")
    data = wait_for(kie, task_id, {"fail", "success"})
    assert data["state"] == "fail"
    assert (data["failCode"], data["failMsg"]) == ("500", "internal error, please try again later")
    assert data["resultJson"] in ("", None)
    assert sim.stats()["paid_creates"] == 1


def test_content_policy_marker(sim: RunningSimulator, kie: httpx.Client) -> None:
    task_id = create_id(kie, prompt="A mug that is quite forbidden to show")
    data = wait_for(kie, task_id, {"fail", "success"})
    assert data["state"] == "fail"
    assert (data["failCode"], data["failMsg"]) == ("422", FORBIDDEN_MSG)
    sim.configure({"kie": {"content_policy_marker": "NOPE", "render_seconds": 0}})
    assert poll(kie, create_id(kie, prompt="forbidden is fine now"))["state"] == "success"


def test_query_rate_limit(sim: RunningSimulator, kie: httpx.Client) -> None:
    task_id = create_id(kie)
    statuses = [
        kie.get("/api/v1/jobs/recordInfo", params={"taskId": task_id}).status_code
        for _ in range(11)
    ]
    assert statuses == [200] * 10 + [429]
    other = kie.get(
        "/api/v1/jobs/recordInfo",
        params={"taskId": task_id},
        headers={"Authorization": "Bearer another"},
    )
    assert other.status_code == 200


def test_create_rate_limit(sim: RunningSimulator, kie: httpx.Client) -> None:
    statuses = [create(kie).status_code for _ in range(21)]
    assert statuses == [200] * 20 + [429]
    assert sim.stats()["paid_creates"] == 20
    assert sim.calls("kie", "createTask")[-1]["code"] == 429
    sim.configure({"kie": {"create_limit": 0}})
    assert create(kie).status_code == 200


# --- KIE: result files ---------------------------------------------------------------------------


def test_result_file_errors_and_size(
    sim: RunningSimulator, kie: httpx.Client, http: httpx.Client
) -> None:
    assert http.get("/files/task_unknown.mp4").status_code == 404
    sim.configure({"kie": {"render_seconds": 30}})
    assert http.get(f"/files/{create_id(kie)}.mp4").status_code == 404  # not finished
    size = 3 * 1024 * 1024 + 17
    sim.configure({"kie": {"render_seconds": 0, "result_size_bytes": size}})
    task_id = create_id(kie)
    with http.stream("GET", f"/files/{task_id}.mp4") as response:
        assert int(response.headers["content-length"]) == size
        total = sum(len(chunk) for chunk in response.iter_bytes())
    assert total == size


def test_malformed_result_is_an_html_page(
    sim: RunningSimulator, kie: httpx.Client, http: httpx.Client
) -> None:
    sim.configure({"kie": {"render_seconds": 0, "rate_malformed_result": 1}})
    task_id = create_id(kie)
    response = http.get(f"/files/{task_id}.mp4")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert b"ftyp" not in response.content[:16]


def test_admin_finish_and_fail(sim: RunningSimulator, kie: httpx.Client) -> None:
    sim.configure({"kie": {"render_seconds": 60, "rate_generation_fail": 1}})
    task_id = create_id(kie)
    finished = sim.finish_task(task_id)
    assert finished["state"] == "success" and finished["complete_at"] is not None
    data = poll(kie, task_id)
    assert data["state"] == "success" and data["completeTime"] is not None
    other = create_id(kie)
    assert sim.fail_task(other, "501", "generation failed")["state"] == "fail"
    assert (poll(kie, other)["failCode"], poll(kie, other)["failMsg"]) == (
        "501",
        "generation failed",
    )
    with pytest.raises(httpx.HTTPStatusError):
        sim.finish_task("task_nope")


# --- OpenAI --------------------------------------------------------------------------------------


def chat(http: httpx.Client, text: str, key: str = "sk-test", **extra: Any) -> httpx.Response:
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}], **extra}
    return http.post("/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"})


def sdk(sim: RunningSimulator, key: str = "sk-test", timeout: float = 5.0) -> openai.OpenAI:
    return openai.OpenAI(base_url=sim.openai_url, api_key=key, max_retries=0, timeout=timeout)


def test_openai_completion(sim: RunningSimulator, http: httpx.Client) -> None:
    response = chat(http, "Title: Red Ceramic Mug\nDescription: holds 350 ml")
    assert response.status_code == 200
    body = response.json()
    assert body["object"] == "chat.completion" and body["model"] == "gpt-4o-mini"
    [choice] = body["choices"]
    assert choice["finish_reason"] == "stop"
    message = choice["message"]
    assert message["role"] == "assistant" and message["refusal"] is None
    assert message["content"].startswith("A slow cinematic push-in on Red Ceramic Mug")
    usage = body["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"] > 0

    completion = sdk(sim).chat.completions.create(
        model="gpt-4o-mini",
        messages=[
            {"role": "system", "content": "You write video prompts."},
            {"role": "user", "content": [{"type": "text", "text": "A walnut desk lamp"}]},
        ],
        max_completion_tokens=300,
    )
    assert "A walnut desk lamp" in (completion.choices[0].message.content or "")
    [call] = sim.calls("openai")[-1:]
    assert call["endpoint"] == "chat.completions" and call["model"] == "gpt-4o-mini"


def test_openai_max_tokens_truncates(http: httpx.Client) -> None:
    body = chat(http, "A mug", max_tokens=5).json()
    assert body["choices"][0]["finish_reason"] == "length"
    assert len(body["choices"][0]["message"]["content"]) <= 20


def test_openai_auth_and_models(sim: RunningSimulator, http: httpx.Client) -> None:
    response = http.post("/v1/chat/completions", json={"model": "gpt-4o-mini", "messages": []})
    assert response.status_code == 401
    sim.configure({"openai": {"keys": {"sk-good": {}, "sk-old": {"revoked": True}}}})
    for key in ("sk-unknown", "sk-old"):
        with pytest.raises(openai.AuthenticationError) as info:
            sdk(sim, key).chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}]
            )
        assert info.value.code == "invalid_api_key"
    with pytest.raises(openai.NotFoundError) as not_found:
        sdk(sim, "sk-good").chat.completions.create(
            model="gpt-9", messages=[{"role": "user", "content": "x"}]
        )
    assert not_found.value.code == "model_not_found"
    models = http.get("/v1/models", headers={"Authorization": "Bearer sk-good"}).json()
    assert "gpt-4o-mini" in [m["id"] for m in models["data"]]


@pytest.mark.parametrize("code", QUOTA_CODES)
def test_openai_quota_exhausted(sim: RunningSimulator, code: str) -> None:
    sim.configure({"openai": {"keys": {"sk-poor": {"quota_exhausted": True, "quota_code": code}}}})
    with pytest.raises(openai.RateLimitError) as info:
        sdk(sim, "sk-poor").chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}]
        )
    assert info.value.code == code
    assert info.value.type == "insufficient_quota"


def test_openai_rate_limit_fault(sim: RunningSimulator, http: httpx.Client) -> None:
    sim.configure({"openai": {"rate_429": 1, "retry_after_seconds": 1.5}})
    response = chat(http, "A mug")
    assert response.status_code == 429
    assert response.headers["retry-after"] == "2"
    assert response.headers["retry-after-ms"] == "1500"
    assert response.json()["error"]["code"] == "rate_limit_exceeded"
    with pytest.raises(openai.RateLimitError) as info:
        sdk(sim).chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}]
        )
    assert info.value.code == "rate_limit_exceeded"


def test_openai_5xx_and_timeout(sim: RunningSimulator, http: httpx.Client) -> None:
    sim.configure({"openai": {"rate_5xx": 1}})
    response = chat(http, "A mug")
    assert response.status_code in (500, 503)
    assert response.json()["error"]["type"] == "server_error"
    sim.configure({"openai": {"rate_5xx": 0, "rate_timeout": 1, "timeout_seconds": 0.5}})
    with pytest.raises(openai.APITimeoutError):
        sdk(sim, timeout=0.15).chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}]
        )


@pytest.mark.parametrize("mode", ["http400", "invalid_prompt", "refusal", "content_filter"])
def test_openai_refusal_modes(sim: RunningSimulator, http: httpx.Client, mode: str) -> None:
    sim.configure({"openai": {"refusal_mode": mode}})
    response = chat(http, "Title: a FORBIDDEN thing")
    body = response.json()
    if mode in ("http400", "invalid_prompt"):
        assert response.status_code == 400
        code = "content_policy_violation" if mode == "http400" else "invalid_prompt"
        assert body["error"]["code"] == code
        return
    assert response.status_code == 200
    choice = body["choices"][0]
    if mode == "refusal":
        assert choice["message"]["refusal"] and choice["message"]["content"] is None
        assert choice["finish_reason"] == "stop"
    else:
        assert choice["finish_reason"] == "content_filter"
        assert choice["message"]["refusal"] is None


def test_openai_refusal_cycle_shows_every_form(sim: RunningSimulator, http: httpx.Client) -> None:
    forms = []
    for _ in range(4):
        response = chat(http, "forbidden")
        if response.status_code == 400:
            forms.append(response.json()["error"]["code"])
        else:
            choice = response.json()["choices"][0]
            forms.append("refusal" if choice["message"]["refusal"] else choice["finish_reason"])
    assert forms == ["content_policy_violation", "invalid_prompt", "refusal", "content_filter"]
    assert [c["code"] for c in sim.calls("openai")] == forms


# --- Telegram ------------------------------------------------------------------------------------

TOKEN = "123456:ABCdef"


def tg(http: httpx.Client, method: str, token: str = TOKEN, **kwargs: Any) -> httpx.Response:
    return http.post(f"/bot{token}/{method}", **kwargs)


def test_telegram_get_me(http: httpx.Client) -> None:
    for response in (http.get(f"/bot{TOKEN}/getMe"), tg(http, "getMe")):
        body = response.json()
        assert body["ok"] is True and body["result"]["is_bot"] is True
        assert body["result"]["id"] == 123456


def test_telegram_send_message(sim: RunningSimulator, http: httpx.Client) -> None:
    response = tg(http, "sendMessage", json={"chat_id": 42, "text": "Your video is ready"})
    assert response.status_code == 200
    result = response.json()["result"]
    assert result["chat"]["id"] == 42 and result["text"] == "Your video is ready"
    assert isinstance(result["message_id"], int) and isinstance(result["date"], int)
    form = tg(http, "sendMessage", data={"chat_id": "43", "text": "form-encoded"})
    assert form.json()["ok"] is True
    assert [m["text"] for m in sim.messages()] == ["Your video is ready", "form-encoded"]
    [only] = sim.messages(chat_id=43)
    assert only["method"] == "sendMessage" and only["chat_id"] == 43
    assert [c["chat_id"] for c in sim.calls("telegram", "sendMessage")] == [42, 43]


def test_telegram_send_video_upload_url_and_document(
    sim: RunningSimulator, http: httpx.Client
) -> None:
    import hashlib

    payload = b"\x00\x00\x00\x18ftypmp42" + b"v" * 5000
    response = tg(
        http,
        "sendVideo",
        data={"chat_id": "7", "caption": "Here it is"},
        files={"video": ("video.mp4", payload, "video/mp4")},
    )
    result = response.json()["result"]
    assert result["video"]["file_size"] == len(payload) and result["caption"] == "Here it is"
    by_url = tg(http, "sendVideo", json={"chat_id": 7, "video": "https://example.com/v.mp4"})
    assert by_url.json()["ok"] is True
    document = tg(
        http, "sendDocument", data={"chat_id": "7"}, files={"document": ("r.csv", b"a,b\n")}
    )
    assert document.json()["result"]["document"]["file_name"] == "r.csv"
    first, second, third = sim.messages(chat_id=7)
    assert first["file_sha256"] == hashlib.sha256(payload).hexdigest()
    assert first["file_size"] == len(payload) and first["caption"] == "Here it is"
    assert second["file_ref"] == "https://example.com/v.mp4" and second["file_size"] is None
    assert third["method"] == "sendDocument" and third["file_size"] == 4


def test_telegram_bad_requests(sim: RunningSimulator, http: httpx.Client) -> None:
    cases = [
        ("sendMessage", {"chat_id": 1, "text": ""}, "Bad Request: message text is empty"),
        ("sendMessage", {"chat_id": 1, "text": "x" * 4097}, "Bad Request: message is too long"),
        ("sendMessage", {"text": "hi"}, "Bad Request: chat_id is empty"),
        (
            "sendVideo",
            {"chat_id": 1, "video": "https://e.com/v.mp4", "caption": "c" * 1025},
            "Bad Request: message caption is too long",
        ),
        ("sendVideo", {"chat_id": 1}, "Bad Request: there is no video in the request"),
    ]
    for method, body, description in cases:
        response = tg(http, method, json=body)
        assert response.status_code == 400
        assert response.json() == {"ok": False, "error_code": 400, "description": description}
    assert tg(http, "sendMessage", json={"chat_id": 1, "text": "x" * 4096}).status_code == 200
    assert tg(http, "sendSticker", json={"chat_id": 1}).status_code == 404
    assert len(sim.messages()) == 1


def test_telegram_blocked_missing_and_token(sim: RunningSimulator, http: httpx.Client) -> None:
    sim.configure({"telegram": {"blocked_chats": [5], "missing_chats": [6], "bot_token": TOKEN}})
    blocked = tg(http, "sendMessage", json={"chat_id": 5, "text": "hi"})
    assert blocked.status_code == 403
    assert blocked.json()["description"] == "Forbidden: bot was blocked by the user"
    missing = tg(http, "sendMessage", json={"chat_id": "6", "text": "hi"})
    assert missing.status_code == 400
    assert missing.json()["description"] == "Bad Request: chat not found"
    wrong = tg(http, "sendMessage", token="999:nope", json={"chat_id": 1, "text": "hi"})
    assert wrong.status_code == 401
    assert wrong.json() == {"ok": False, "error_code": 401, "description": "Unauthorized"}
    assert sim.messages() == []


def test_telegram_upload_too_large(sim: RunningSimulator, http: httpx.Client) -> None:
    sim.configure({"telegram": {"max_upload_bytes": 100_000}})
    response = tg(
        http, "sendVideo", data={"chat_id": "1"}, files={"video": ("v.mp4", b"x" * 100_001)}
    )
    assert response.status_code == 413
    assert response.json()["description"] == "Request Entity Too Large"
    ok = tg(http, "sendVideo", data={"chat_id": "1"}, files={"video": ("v.mp4", b"x" * 100_000)})
    assert ok.status_code == 200
    assert len(sim.messages()) == 1


def test_telegram_per_chat_limit(sim: RunningSimulator, http: httpx.Client) -> None:
    sim.configure({"telegram": {"chat_limit": 1, "chat_window_seconds": 5}})
    assert tg(http, "sendMessage", json={"chat_id": 1, "text": "a"}).status_code == 200
    limited = tg(http, "sendMessage", json={"chat_id": 1, "text": "b"})
    assert limited.status_code == 429
    body = limited.json()
    assert body["error_code"] == 429 and body["parameters"]["retry_after"] == 5
    assert body["description"] == "Too Many Requests: retry after 5"
    assert tg(http, "sendMessage", json={"chat_id": 2, "text": "c"}).status_code == 200


def test_telegram_faults(sim: RunningSimulator, http: httpx.Client) -> None:
    sim.configure({"telegram": {"rate_429": 1, "retry_after_seconds": 3}})
    response = tg(http, "sendMessage", json={"chat_id": 1, "text": "a"})
    assert response.status_code == 429
    assert response.json()["parameters"] == {"retry_after": 3}
    assert response.json()["description"] == "Too Many Requests: retry after 3"
    sim.configure({"telegram": {"rate_429": 0, "rate_5xx": 1}})
    response = tg(http, "sendMessage", json={"chat_id": 1, "text": "a"})
    assert response.status_code == 500 and response.json()["error_code"] == 500
    assert sim.messages() == []
    assert sim.stats()["faults"]["telegram"] == {"429": 1, "5xx": 1}


# --- admin and configuration ---------------------------------------------------------------------


def test_admin_config_patch_and_reset(sim: RunningSimulator, kie: httpx.Client) -> None:
    assert sim.health() is True
    before = sim.config()
    assert before["kie"]["render_seconds"] == 0.3
    after = sim.configure({"kie": {"rate_5xx": 0.25, "keys": {"a": {"credits": 3}}}})
    assert after["kie"]["rate_5xx"] == 0.25
    assert after["kie"]["render_seconds"] == 0.3  # deep merge keeps siblings
    assert after["kie"]["keys"] == {"a": {"credits": 3, "revoked": False, "account": None}}
    assert sim.configure({"kie": {"keys": {"a": None}}})["kie"]["keys"] == {}
    for bad in (
        {"kie": {"rate_5xx": 2}},
        {"kie": {"rate_5xxx": 0.1}},
        {"openai": {"refusal_mode": "sometimes"}},
        {"kie": {"render_seconds": "fast"}},
        {"openai": {"keys": {"k": {"quota_code": "broke"}}}},
    ):
        with pytest.raises(ValueError):
            sim.configure(bad)
    assert sim.config()["kie"]["rate_5xx"] == 0.25  # a refused patch changes nothing

    sim.configure({"kie": {"keys": {}, "render_seconds": 0}})
    create_id(kie)
    sim.reset()
    assert sim.config() == before
    assert sim.tasks() == [] and sim.calls() == [] and sim.messages() == []
    assert sim.stats()["paid_creates"] == 0


def test_admin_calls_and_stats(
    sim: RunningSimulator, kie: httpx.Client, http: httpx.Client
) -> None:
    create_id(kie)
    kie.get("/api/v1/jobs/recordInfo", params={"taskId": "task_nope"})
    chat(http, "A mug")
    tg(http, "sendMessage", json={"chat_id": 1, "text": "hi"})
    calls = sim.calls()
    assert [(c["service"], c["endpoint"], c["status"]) for c in calls] == [
        ("kie", "createTask", 200),
        ("kie", "recordInfo", 404),
        ("openai", "chat.completions", 200),
        ("telegram", "sendMessage", 200),
    ]
    assert [c["seq"] for c in calls] == sorted(c["seq"] for c in calls)
    assert calls[1]["code"] == 404 and calls[3]["chat_id"] == 1 and calls[3]["key"] == TOKEN
    assert sim.calls(service="kie", endpoint="recordInfo") == [calls[1]]
    assert sim.calls(since=calls[1]["seq"]) == calls[2:]
    stats = sim.stats()
    assert stats["total_calls"] == 4
    assert stats["calls"]["kie"] == {"createTask": {"200": 1}, "recordInfo": {"404": 1}}
    assert stats["calls"]["telegram"] == {"sendMessage": {"200": 1}}
    assert stats["paid_creates"] == 1 and stats["messages"] == 1
    with pytest.raises(httpx.HTTPStatusError):
        sim.calls(service="stripe")


def test_a_call_asleep_across_a_reset_is_not_counted(
    sim: RunningSimulator, kie: httpx.Client
) -> None:
    sim.configure({"kie": {"rate_timeout": 1, "timeout_seconds": 0.3}})
    with pytest.raises(httpx.ReadTimeout):
        kie.get("/api/v1/chat/credit", timeout=0.1)
    sim.reset()
    time.sleep(0.35)
    assert sim.stats()["total_calls"] == 0 and sim.calls() == []


def test_recorded_calls_are_capped_but_counted(sim: RunningSimulator, http: httpx.Client) -> None:
    sim.configure({"max_recorded_calls": 2})
    for chat_id in (1, 2, 3):
        http.get(f"/bot{TOKEN}/sendMessage", params={"chat_id": chat_id, "text": "via GET"})
    assert [c["chat_id"] for c in sim.calls()] == [2, 3]
    assert sim.stats()["total_calls"] == 3
    assert [m["text"] for m in sim.messages()] == ["via GET"] * 3


def test_config_file_and_deep_merge(tmp_path: Path) -> None:
    path = tmp_path / "sim.json"
    path.write_text(json.dumps({"seed": 1, "telegram": {"blocked_chats": [1, "@chan"]}}))
    config = SimConfig.from_json_file(path)
    assert config.seed == 1 and config.telegram.blocked_chats == [1, "@chan"]
    assert config.kie.render_seconds == 3.0
    assert SimConfig.from_dict(config.to_dict()) == config
    assert SimConfig().to_dict()["kie"]["model_states"] == {}


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=3),
    lambda inner: st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=8,
)


@given(
    st.dictionaries(st.text(max_size=3), json_values, max_size=4),
    st.dictionaries(st.text(max_size=3), json_values, max_size=4),
)
def test_deep_merge_properties(base: dict[str, Any], patch: dict[str, Any]) -> None:
    merged = deep_merge(base, patch)
    assert set(merged) == set(base) | set(patch)
    for key, value in patch.items():
        if not (isinstance(value, dict) and isinstance(base.get(key), dict)):
            assert merged[key] == value
    assert deep_merge(merged, patch) == merged


def test_runs_as_a_separate_process(tmp_path: Path) -> None:
    config = tmp_path / "sim.json"
    config.write_text(json.dumps({"kie": {"code_in_body": "status"}}))
    command = [sys.executable, "-m", "simulator", "--port", "0", "--config", str(config)]
    command += ["--render-seconds", "0", "--seed", "3"]
    root = Path(__file__).resolve().parents[2]
    process = subprocess.Popen(command, cwd=root, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        assert line.startswith("simulator listening on http://127.0.0.1:")
        url = line.rsplit(" ", 1)[1]
        with RunningSimulator.connect(url, wait_seconds=5) as remote:
            assert remote.config()["kie"]["render_seconds"] == 0
            assert remote.config()["seed"] == 3
            with httpx.Client(base_url=remote.kie_url, headers={"Authorization": "Bearer k"}) as c:
                assert poll(c, create_id(c))["state"] == "success"
            assert remote.stats()["paid_creates"] == 1
    finally:
        process.terminate()
        assert process.wait(timeout=5) == 0
