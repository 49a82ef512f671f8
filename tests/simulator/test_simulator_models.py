"""Each KIE model as the simulator serves it: schemas, prices, states, Veo's own endpoints.

The bodies are the documented examples of KIE's model pages; the expected prices are written
out here from KIE's rate table (not computed by the simulator's own price functions), so a
wrong price or a schema that refuses a documented body fails a test.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.config import SimConfig
from simulator.kie_models import EXAMPLES, MODELS, VEO
from simulator.testing import RunningSimulator, start_in_thread
from tests.simulator.conftest import FORBIDDEN_MSG, IMAGE, KEY, MODEL, VALID_INPUT

PAUSED = (500, "This interface is temporarily paused")
UNKNOWN = (422, "The model name you specified is not supported, please check the model name")
CREATE = "/api/v1/jobs/createTask"
RECORD = "/api/v1/jobs/recordInfo"
VEO_CREATE = "/api/v1/veo/generate"
VEO_RECORD = "/api/v1/veo/record-info"

#: KIE credits of each documented example, from KIE's rate table and measured charges.
EXAMPLE_CREDITS = {
    "kling-2.6/image-to-video": 55,  # 5 s silent, per clip
    "kling-3.0/video": 70,  # std silent 14/s x 5 s
    "bytedance/seedance-2": 205,  # 720p 41/s x 5 s
    "bytedance/seedance-2-mini": 41,  # 720p 8.2/s x 5 s
    "wan/2-6-image-to-video": 70,  # 720p 14/s x 5 s
    "wan/2-7-image-to-video": 120,  # 1080p 24/s x 5 s
    "hailuo/2-3-image-to-video-pro": 48,  # 8/s x 6 s
    "minimax-h3/image-to-video": 48,  # 768P 8/s x 6 s
    "happyhorse-1-1/image-to-video": 145,  # 1080p 29/s x 5 s
    "grok-imagine/image-to-video": 27,  # 720p 4.5/s x 6 s
    "veo3": 250,  # per 8 s clip at 720p
    "veo3_fast": 60,
    "veo3_lite": 30,
}

#: Per model: a required field to leave out, and the field KIE names in its 500.
MISSING = {
    "kling-2.6/image-to-video": ("sound", "sound"),
    "kling-3.0/video": ("mode", "mode"),
    "bytedance/seedance-2": ("prompt", "prompt"),
    "bytedance/seedance-2-mini": ("prompt", "prompt"),
    "wan/2-6-image-to-video": ("image_urls", "image_urls"),
    "wan/2-7-image-to-video": ("first_frame_url", "first_frame_url"),
    "hailuo/2-3-image-to-video-pro": ("image_url", "image_url"),
    "minimax-h3/image-to-video": ("duration", "duration"),
    "happyhorse-1-1/image-to-video": ("image_urls", "image_urls"),
    "grok-imagine/image-to-video": ("image_urls", "image_urls"),
    "veo3": ("prompt", "prompt"),
    "veo3_fast": ("prompt", "prompt"),
    "veo3_lite": ("prompt", "prompt"),
}

#: Per model: a field sent with the wrong JSON type ("5" where KIE wants 5, or the reverse).
WRONG_TYPE = {
    "kling-2.6/image-to-video": ("duration", 5),
    "kling-3.0/video": ("duration", 5),
    "bytedance/seedance-2": ("duration", "5"),
    "bytedance/seedance-2-mini": ("duration", "5"),
    "wan/2-6-image-to-video": ("duration", 5),
    "wan/2-7-image-to-video": ("seed", "42"),
    "hailuo/2-3-image-to-video-pro": ("duration", 6),
    "minimax-h3/image-to-video": ("duration", "6"),
    "happyhorse-1-1/image-to-video": ("duration", "5"),
    "grok-imagine/image-to-video": ("nsfw_checker", "false"),
    "veo3": ("seeds", "12345"),
    "veo3_fast": ("enableTranslation", "true"),
    "veo3_lite": ("imageUrls", IMAGE),
}

#: Per model: a field it does not take (often one another model takes).
UNKNOWN_FIELD = {
    "kling-2.6/image-to-video": ("aspect_ratio", "9:16"),
    "kling-3.0/video": ("negative_prompt", "blur"),
    "bytedance/seedance-2": ("image_urls", [IMAGE]),
    "bytedance/seedance-2-mini": ("n_frames", "10"),
    "wan/2-6-image-to-video": ("seed", 42),
    "wan/2-7-image-to-video": ("aspect_ratio", "9:16"),
    "hailuo/2-3-image-to-video-pro": ("sound", False),
    "minimax-h3/image-to-video": ("aspect_ratio", "9:16"),
    "happyhorse-1-1/image-to-video": ("seed", 42),
    "grok-imagine/image-to-video": ("sound", True),
    "veo3": ("duration", 8),
    "veo3_fast": ("image_urls", [IMAGE]),
    "veo3_lite": ("input", {}),
}

CATALOG = sorted(EXAMPLE_CREDITS)


@pytest.fixture(scope="module")
def sim() -> Iterator[RunningSimulator]:
    config = SimConfig.from_dict(
        {
            "seed": 11,
            "kie": {
                "render_seconds": 0.2,
                "code_in_body": "status",
                "message_key": "msg",
                "query_limit": 0,
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


def is_veo(model: str) -> bool:
    return MODELS[model].family == VEO


def example(model: str) -> dict[str, Any]:
    return copy.deepcopy(EXAMPLES[model])


def params_of(model: str, body: dict[str, Any]) -> dict[str, Any]:
    """The object holding the model's fields: ``input`` for Market, the body itself for Veo."""
    if is_veo(model):
        return body
    params: dict[str, Any] = body["input"]
    return params


def send(kie: httpx.Client, model: str, body: dict[str, Any]) -> httpx.Response:
    return kie.post(VEO_CREATE if is_veo(model) else CREATE, json=body)


def answer(response: httpx.Response) -> tuple[int, str]:
    body = response.json()
    assert response.status_code == body["code"]  # the fixture puts codes in the HTTP status
    return body["code"], body["msg"]


def task_id_of(response: httpx.Response) -> str:
    assert response.status_code == 200, response.text
    task_id: str = response.json()["data"]["taskId"]
    return task_id


def record(kie: httpx.Client, task_id: str, veo: bool) -> dict[str, Any]:
    response = kie.get(VEO_RECORD if veo else RECORD, params={"taskId": task_id})
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


def wait_done(kie: httpx.Client, task_id: str, veo: bool, limit: float = 3.0) -> dict[str, Any]:
    deadline = time.monotonic() + limit
    while True:
        data = record(kie, task_id, veo)
        done = data["successFlag"] != 0 if veo else data["state"] in ("success", "fail")
        if done or time.monotonic() > deadline:
            return data
        time.sleep(0.03)


# --- every model: the documented body is accepted, a wrong one refused as KIE refuses it -------


def test_the_catalog_is_the_issue_list() -> None:
    live = {name for name, spec in MODELS.items() if spec.default_state == "live"}
    assert live == set(CATALOG) == set(EXAMPLES)
    assert {n for n, s in MODELS.items() if s.default_state == "paused"} == {
        "sora-2-image-to-video",
        "sora-2-pro-image-to-video",
    }


@pytest.mark.parametrize("model", CATALOG)
def test_documented_example_is_accepted_rendered_and_charged(
    sim: RunningSimulator, kie: httpx.Client, http: httpx.Client, model: str
) -> None:
    sim.configure({"kie": {"keys": {KEY: {"credits": 1000}}}})
    body = example(model)
    task_id = task_id_of(send(kie, model, body))
    veo = is_veo(model)
    assert task_id.startswith("veo_task_" if veo else "task_")
    data = wait_done(kie, task_id, veo)
    if veo:
        assert data["successFlag"] == 1
        assert json.loads(data["paramJson"]) == body
        urls = data["response"]["resultUrls"]
    else:
        assert data["state"] == "success" and data["model"] == model
        assert json.loads(data["param"]) == body
        assert data["creditsConsumed"] == EXAMPLE_CREDITS[model]
        urls = json.loads(data["resultJson"])["resultUrls"]
    assert urls == [f"{sim.url}/files/{task_id}.mp4"]
    assert http.get(urls[0]).headers["content-type"] == "video/mp4"
    assert kie.get("/api/v1/chat/credit").json()["data"] == 1000 - EXAMPLE_CREDITS[model]
    entry = sim.models()[model]
    assert (entry["state"], entry["create_calls"], entry["tasks"]) == ("live", 1, 1)
    assert entry["credits_charged"] == entry["example_credits"] == EXAMPLE_CREDITS[model]


@pytest.mark.parametrize("model", CATALOG)
def test_missing_required_field_is_500_field_is_required(
    sim: RunningSimulator, kie: httpx.Client, model: str
) -> None:
    body = example(model)
    left_out, named = MISSING[model]
    del params_of(model, body)[left_out]
    assert answer(send(kie, model, body)) == (500, f"{named} is required")
    assert sim.stats()["paid_creates"] == 0


@pytest.mark.parametrize("model", CATALOG)
def test_wrong_type_is_422_naming_the_field(
    sim: RunningSimulator, kie: httpx.Client, model: str
) -> None:
    body = example(model)
    name, value = WRONG_TYPE[model]
    params_of(model, body)[name] = value
    code, message = answer(send(kie, model, body))
    path = name if is_veo(model) else f"input.{name}"
    assert code == 422 and message.startswith(f"{path} must be ")
    assert sim.stats()["paid_creates"] == 0


@pytest.mark.parametrize("model", CATALOG)
def test_unknown_field_is_422_naming_the_field(
    sim: RunningSimulator, kie: httpx.Client, model: str
) -> None:
    body = example(model)
    name, value = UNKNOWN_FIELD[model]
    params_of(model, body)[name] = value
    path = name if is_veo(model) else f"input.{name}"
    assert answer(send(kie, model, body)) == (422, f"{path} is not a parameter of {model}")
    assert sim.stats()["paid_creates"] == 0


@pytest.mark.parametrize(
    ("model", "patch", "field"),
    [
        ("kling-2.6/image-to-video", {"duration": "15"}, "input.duration"),
        ("kling-2.6/image-to-video", {"prompt": "x" * 1001}, "input.prompt"),
        ("kling-3.0/video", {"image_urls": [IMAGE, IMAGE, IMAGE]}, "input.image_urls"),
        ("kling-3.0/video", {"multi_shots": True}, "input.sound"),
        ("bytedance/seedance-2", {"duration": 3}, "input.duration"),
        ("bytedance/seedance-2", {"aspect_ratio": "2:1"}, "input.aspect_ratio"),
        ("bytedance/seedance-2-mini", {"resolution": "1080p"}, "input.resolution"),
        ("bytedance/seedance-2-mini", {"reference_image_urls": [IMAGE]}, "input.first_frame_url"),
        ("wan/2-6-image-to-video", {"prompt": "x"}, "input.prompt"),
        ("wan/2-6-image-to-video", {"image_urls": [IMAGE, IMAGE]}, "input.image_urls"),
        ("wan/2-7-image-to-video", {"duration": 16}, "input.duration"),
        ("hailuo/2-3-image-to-video-pro", {"duration": "10", "resolution": "1080P"}, "duration"),
        ("hailuo/2-3-image-to-video-pro", {"image_url": "ftp://x/y.png"}, "input.image_url"),
        ("minimax-h3/image-to-video", {"resolution": "1080p"}, "input.resolution"),
        ("happyhorse-1-1/image-to-video", {"duration": 2}, "input.duration"),
        ("grok-imagine/image-to-video", {"mode": "spicy"}, "input.mode"),
        ("grok-imagine/image-to-video", {"duration": "31"}, "input.duration"),
        ("veo3_fast", {"aspect_ratio": "1:1"}, "aspect_ratio"),
        ("veo3", {"generationType": "REFERENCE_2_VIDEO"}, "REFERENCE_2_VIDEO"),
        ("veo3_lite", {"imageUrls": [IMAGE, IMAGE, IMAGE]}, "imageUrls"),
    ],
)
def test_bad_values_and_rules_are_422(
    sim: RunningSimulator, kie: httpx.Client, model: str, patch: dict[str, Any], field: str
) -> None:
    body = example(model)
    params_of(model, body).update(patch)
    code, message = answer(send(kie, model, body))
    assert code == 422 and field in message, message
    assert sim.stats()["paid_creates"] == 0


@pytest.mark.parametrize(
    ("model", "patch", "credits"),
    [
        # Where KIE's sources disagree, either documented form is accepted.
        ("grok-imagine/image-to-video", {"duration": 10}, 45),
        ("grok-imagine/image-to-video", {"resolution": "1080p"}, 48),
        ("wan/2-7-image-to-video", {"duration": "5"}, 120),
        ("bytedance/seedance-2", {"reference_video_urls ": [IMAGE], "first_frame_url": None}, 205),
        ("veo3_fast", {"aspectRatio": "16:9", "aspect_ratio": None}, 60),
        ("kling-3.0/video", {"mode": "pro", "sound": True, "duration": "10"}, 270),
        ("bytedance/seedance-2-mini", {"resolution": "480p", "duration": 10}, 38),
        ("veo3", {"resolution": "1080p"}, 255),
        ("kling-2.6/image-to-video", {"sound": True, "duration": "10"}, 220),
    ],
)
def test_options_and_documented_variants(
    sim: RunningSimulator, kie: httpx.Client, model: str, patch: dict[str, Any], credits: float
) -> None:
    body = example(model)
    params = params_of(model, body)
    params.update(patch)
    for name in [k for k, v in params.items() if v is None]:
        del params[name]
    task_id_of(send(kie, model, body))
    assert sim.stats()["credits_by_model"] == {model: credits}


def test_models_lists_schemas_prices_and_states(sim: RunningSimulator) -> None:
    models = sim.models()
    assert set(CATALOG) <= set(models)
    kling = models["kling-2.6/image-to-video"]
    assert kling["family"] == "market" and kling["endpoint"] == CREATE
    assert kling["fields"]["duration"] == {
        "types": ["string"],
        "required": False,
        "choices": ["5", "10"],
        "default": "5",
    }
    assert kling["prompt_max"] == 1000 and kling["image_fields"] == ["image_urls"]
    assert models["veo3_lite"]["endpoint"] == VEO_CREATE
    assert models["sora-2-image-to-video"]["state"] == "paused"
    assert all(models[m]["typical_render_seconds"] > 0 for m in CATALOG)


# --- states: Sora 2 paused, pausing and resuming at run time -------------------------------------


@pytest.mark.parametrize(
    "model", ["sora-2-image-to-video", "sora-2-pro-image-to-video", "sora-2-text-to-video"]
)
def test_every_sora_2_model_is_paused(sim: RunningSimulator, kie: httpx.Client, model: str) -> None:
    sora = {"prompt": "A mug", "image_urls": [IMAGE], "aspect_ratio": "portrait", "n_frames": "10"}
    assert answer(kie.post(CREATE, json={"model": model, "input": sora})) == PAUSED
    # The state answers before the body is read: the zero-cost probe of KIE.
    assert answer(kie.post(CREATE, json={"model": model, "input": {}})) == PAUSED
    assert sim.stats()["paid_creates"] == 0
    assert sim.create_calls(model) == 2


def test_sora_can_be_made_live_again(sim: RunningSimulator, kie: httpx.Client) -> None:
    # Its last documented schema is kept, for the day KIE resumes it.
    sim.resume_model("sora-2-image-to-video")
    sora = {"prompt": "A mug", "image_urls": [IMAGE], "aspect_ratio": "portrait", "n_frames": "10"}
    task_id_of(kie.post(CREATE, json={"model": "sora-2-image-to-video", "input": sora}))
    sora["n_frames"] = 10
    body = {"model": "sora-2-image-to-video", "input": sora}
    assert answer(kie.post(CREATE, json=body))[0] == 422


def test_pause_and_resume_a_model_at_run_time(
    sim: RunningSimulator, kie: httpx.Client, http: httpx.Client
) -> None:
    body = {"model": MODEL, "input": {"prompt": "A mug", **VALID_INPUT}}
    task_id_of(kie.post(CREATE, json=body))
    entry = sim.pause_model(MODEL)
    assert (entry["state"], entry["overridden"]) == ("paused", True)
    assert answer(kie.post(CREATE, json=body)) == PAUSED
    assert answer(kie.post(CREATE, json=body)) == PAUSED
    assert len(sim.calls_for_model(MODEL, "createTask")) == 3
    # Another model is untouched, and a task created before the pause still renders.
    task_id_of(send(kie, "veo3_lite", example("veo3_lite")))
    assert sim.resume_model(MODEL)["state"] == "live"
    task_id_of(kie.post(CREATE, json=body))
    entry = sim.models()[MODEL]
    assert (entry["create_calls"], entry["tasks"]) == (4, 2)
    assert sim.stats()["create_calls_by_model"] == {MODEL: 4, "veo3_lite": 1}

    sim.set_model_state(MODEL, "unknown")
    assert answer(kie.post(CREATE, json=body)) == UNKNOWN
    sim.set_model_state(MODEL, "withdrawn")
    assert answer(kie.post(CREATE, json=body)) == (
        505,
        "the page does not exist or is not published",
    )
    assert sim.set_model_state(MODEL, None)["overridden"] is False
    task_id_of(kie.post(CREATE, json=body))
    # Veo models pause the same way, on their own endpoint.
    sim.pause_model("veo3_fast")
    assert answer(send(kie, "veo3_fast", example("veo3_fast"))) == PAUSED
    sim.reset()
    assert sim.models()["veo3_fast"]["state"] == "live"

    for bad in ({"state": "sleeping"}, {"state": "live", "extra": 1}, {}):
        assert http.post(f"/_sim/models/{MODEL}", json=bad).status_code == 400
    with pytest.raises(ValueError, match="no schema"):
        sim.set_model_state("acme/video-9", "live")
    sim.set_model_state("acme/video-9", "paused")  # any name can be paused
    assert answer(kie.post(CREATE, json={"model": "acme/video-9", "input": {}})) == PAUSED


def test_states_from_configuration(sim: RunningSimulator, kie: httpx.Client) -> None:
    sim.configure({"kie": {"model_states": {"bytedance/seedance-2-mini": "paused"}}})
    mini = "bytedance/seedance-2-mini"
    assert answer(send(kie, mini, example(mini))) == PAUSED
    sim.configure({"kie": {"model_states": {mini: None}}})
    task_id_of(send(kie, mini, example(mini)))
    with pytest.raises(ValueError, match="model_states"):
        sim.configure({"kie": {"model_states": {MODEL: "resting"}}})


def test_families_do_not_mix(kie: httpx.Client) -> None:
    veo_on_market = {"model": "veo3_fast", "input": {"prompt": "A mug"}}
    assert answer(kie.post(CREATE, json=veo_on_market)) == UNKNOWN
    code, message = answer(kie.post(VEO_CREATE, json={"prompt": "A mug", "model": MODEL}))
    assert code == 422 and message == "model must be one of veo3, veo3_fast, veo3_lite"


def test_create_calls_are_counted_even_when_refused_by_a_limit(
    sim: RunningSimulator, kie: httpx.Client
) -> None:
    sim.configure({"kie": {"create_limit": 1}})
    body = {"model": MODEL, "input": {"prompt": "A mug", **VALID_INPUT}}
    statuses = [kie.post(CREATE, json=body).status_code for _ in range(2)]
    # Veo's generate shares the account's create limit.
    statuses.append(send(kie, "veo3", example("veo3")).status_code)
    assert statuses == [200, 429, 429]
    assert sim.create_calls(MODEL) == 2 and sim.create_calls("veo3") == 1
    assert [c["status"] for c in sim.calls_for_model(MODEL)] == [200, 429]


# --- credits ---------------------------------------------------------------------------------------


def test_failed_tasks_are_not_charged(sim: RunningSimulator, kie: httpx.Client) -> None:
    sim.configure({"kie": {"keys": {KEY: {"credits": 500}}, "render_seconds": 30}})
    body = example("bytedance/seedance-2-mini")
    refused = copy.deepcopy(body)
    refused["input"]["prompt"] = "A FORBIDDEN replica"
    policy = task_id_of(kie.post(CREATE, json=refused))
    kept, dropped = task_id_of(kie.post(CREATE, json=body)), task_id_of(kie.post(CREATE, json=body))
    balance = kie.get("/api/v1/chat/credit").json()["data"]
    assert balance == 500 - 2 * 41
    sim.fail_task(dropped)  # a failure after acceptance gives the credits back
    sim.finish_task(policy)  # a task forced to succeed is charged after all
    assert kie.get("/api/v1/chat/credit").json()["data"] == 500 - 2 * 41
    assert record(kie, dropped, False)["creditsConsumed"] == 0
    assert record(kie, kept, False)["creditsConsumed"] == 0  # still rendering
    assert sim.task(dropped)["charged"] is False and sim.task(policy)["charged"] is True


def test_credits_per_create_overrides_the_price(sim: RunningSimulator, kie: httpx.Client) -> None:
    sim.configure({"kie": {"credits_per_create": 1, "keys": {KEY: {"credits": 1}}}})
    task_id_of(send(kie, "veo3", example("veo3")))
    assert answer(send(kie, "veo3", example("veo3"))) == (402, "Credits insufficient")


def test_a_model_can_render_slower(sim: RunningSimulator, kie: httpx.Client) -> None:
    sim.configure({"kie": {"model_render_seconds": {"veo3": 30}}})
    slow = task_id_of(send(kie, "veo3", example("veo3")))
    fast = task_id_of(send(kie, "veo3_lite", example("veo3_lite")))
    assert wait_done(kie, fast, True)["successFlag"] == 1
    assert record(kie, slow, True)["successFlag"] == 0
    assert sim.task(slow)["render_seconds"] == 30


# --- Veo 3.1 record-info ----------------------------------------------------------------------------


def test_veo_record_info_shapes(sim: RunningSimulator, kie: httpx.Client) -> None:
    body = example("veo3_fast")
    task_id = task_id_of(send(kie, "veo3_fast", body))
    first = record(kie, task_id, True)
    assert first["successFlag"] == 0 and first["response"] is None
    assert first["errorCode"] is None and first["completeTime"] is None
    assert set(first) == {
        "taskId",
        "paramJson",
        "createTime",
        "completeTime",
        "successFlag",
        "response",
        "errorCode",
        "errorMessage",
        "fallbackFlag",
    }
    done = wait_done(kie, task_id, True)
    url = f"{sim.url}/files/{task_id}.mp4"
    assert done["response"] == {
        "taskId": task_id,
        "resultUrls": [url],
        "originUrls": [url],  # 9:16: the uncropped original too
        "resolution": "720p",
    }
    wide = example("veo3_fast")
    del wide["aspect_ratio"]
    wide_id = task_id_of(send(kie, "veo3_fast", wide))
    assert wait_done(kie, wide_id, True)["response"]["originUrls"] is None
    # The families keep their tasks apart.
    assert kie.get(RECORD, params={"taskId": task_id}).status_code == 404
    assert kie.get(VEO_RECORD, params={"taskId": "veo_task_nope"}).status_code == 404
    sim.configure({"kie": {"unknown_task_code": 422}})
    assert answer(kie.get(VEO_RECORD, params={"taskId": "veo_task_nope"})) == (
        422,
        "record is null",
    )
    assert answer(kie.get(RECORD, params={"taskId": "x"})) == (422, "recordInfo is null")


@pytest.mark.parametrize(
    ("patch", "prompt", "flag", "code", "message"),
    [
        (
            {},
            "A FORBIDDEN replica",
            2,
            400,
            "Your prompt was flagged by Website as violating content policies",
        ),
        ({"rate_generation_fail": 1}, "A mug", 3, 500, "internal error, please try again later"),
    ],
    ids=["refused", "failed_upstream"],
)
def test_veo_failures(
    sim: RunningSimulator,
    kie: httpx.Client,
    patch: dict[str, Any],
    prompt: str,
    flag: int,
    code: int,
    message: str,
) -> None:
    sim.configure({"kie": {**patch, "keys": {KEY: {"credits": 100}}}})
    body = example("veo3_fast")
    body["prompt"] = prompt
    done = wait_done(kie, task_id_of(send(kie, "veo3_fast", body)), True)
    assert (done["successFlag"], done["errorCode"], done["errorMessage"]) == (flag, code, message)
    assert done["response"] is None
    assert kie.get("/api/v1/chat/credit").json()["data"] == 100  # not charged


def test_veo_faults(sim: RunningSimulator, kie: httpx.Client) -> None:
    sim.configure({"kie": {"rate_malformed": 1, "fault_endpoints": ["recordInfo"]}})
    task_id = task_id_of(send(kie, "veo3_lite", example("veo3_lite")))
    for _ in range(30):
        response = kie.get(VEO_RECORD, params={"taskId": task_id})
        try:
            data = response.json().get("data")
        except ValueError:
            data = None
        assert not (isinstance(data, dict) and data.get("successFlag") in (0, 1, 2, 3))
    variants = {c["fault"] for c in sim.calls("kie", "veoRecordInfo")}
    assert len(variants) == 4
    sim.configure({"kie": {"rate_malformed": 0, "rate_maintenance": 1}})
    assert answer(kie.get(VEO_RECORD, params={"taskId": task_id}))[0] == 455


def test_content_policy_on_market_models(kie: httpx.Client) -> None:
    body = example("minimax-h3/image-to-video")
    body["input"]["prompt"] = "forbidden lipstick"
    data = wait_done(kie, task_id_of(kie.post(CREATE, json=body)), False)
    assert (data["state"], data["failCode"], data["failMsg"]) == ("fail", "422", FORBIDDEN_MSG)
    assert data["creditsConsumed"] == 0


# --- any body: a clear answer, never a crash ----------------------------------------------------

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-3, 40)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from(["", "5", "6", "10", "720p", "1080p", "768P", "std", "9:16", IMAGE, "x"])
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=6,
)


@settings(max_examples=60, deadline=None)
@given(data=st.data())
@pytest.mark.parametrize("model", sorted(MODELS))
def test_any_body_gets_a_clear_answer(model: str, data: st.DataObject) -> None:
    spec = MODELS[model]
    names = [f.name for f in spec.fields] + ["extra"]
    params = data.draw(
        st.dictionaries(st.sampled_from(names), json_values, max_size=len(names)), label="params"
    )
    base = spec.example_params() if data.draw(st.booleans(), label="from example") else {}
    params = {**base, **params}
    problem = spec.validate(params, "input.")
    if problem is None:
        assert spec.credits(params) >= 0  # whatever is accepted has a price
    else:
        assert problem.code in (422, 500) and problem.message
        if problem.code == 500:
            assert problem.message.endswith(" is required")
