"""KieClient against the local simulator: every error class, and the odd shapes KIE answers in.

Shapes the simulator cannot be told to produce come from the throwaway ``stub`` server; each such
test says which gap it covers.
"""

from __future__ import annotations

import dataclasses
import json
import socket
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from jobs.video.catalog import Family, ModelSpec, Options
from jobs.video.kie import KieClient, KieTask, TaskState, classify_task_failure
from jobs.video.models import get_model
from jobs.video.settings import video_settings
from simulator.testing import RunningSimulator
from worker.config import ApiKey, Settings
from worker.errors import ErrorClass, ProviderError

from .conftest import SHORT_TIMEOUT, Canned, Stub, make_key

SECRET = "kie-test-secret-0123456789"
KEY = make_key("kie", SECRET)
IMAGE = "https://example.test/mug.jpg"


#: The model the tests create tasks of (the default chain's first).
MODEL = "bytedance/seedance-2-mini"


def client(url: str, *, timeout: float = 5.0) -> KieClient:
    return KieClient(url, timeout=timeout)


def create(
    kie: KieClient,
    key: ApiKey = KEY,
    *,
    model: str | ModelSpec = MODEL,
    prompt: str = "p",
    image_url: str = IMAGE,
    callback_url: str | None = None,
) -> str:
    """createTask of ``model`` with the catalog's default options."""
    spec = get_model(model) if isinstance(model, str) else model
    inputs = spec.build(Options(), prompt=prompt, image_url=image_url)
    return kie.create_task(key, spec, inputs, callback_url=callback_url)


def raises(cls: ErrorClass, call: object, *args: object, **kwargs: object) -> ProviderError:
    assert callable(call)
    with pytest.raises(ProviderError) as info:
        call(*args, **kwargs)
    err = info.value
    assert err.error_class is cls, repr(err)
    assert err.provider == "kie"
    assert err.key_name == KEY.name
    return err


def sent_body(sim: RunningSimulator, task_id: str) -> Any:
    """The createTask body as KIE stored it (recordInfo's ``param``)."""
    answer = httpx.get(
        f"{sim.kie_url}/api/v1/jobs/recordInfo",
        params={"taskId": task_id},
        headers={"Authorization": f"Bearer {SECRET}"},
    ).json()
    return json.loads(answer["data"]["param"])


@pytest.fixture
def kie(sim: RunningSimulator) -> Iterator[KieClient]:
    instance = client(sim.kie_url)
    yield instance
    instance.close()


# --- the happy path ----------------------------------------------------------------------------


def test_create_and_poll_until_success(sim: RunningSimulator, kie: KieClient) -> None:
    task_id = create(kie, KEY, prompt="A red mug on a table", image_url=IMAGE)
    assert isinstance(task_id, str) and task_id
    body = sent_body(sim, task_id)
    assert body == {
        "model": MODEL,
        "input": {
            "prompt": "A red mug on a table",
            "first_frame_url": IMAGE,
            "duration": 5,
            "resolution": "720p",
            "aspect_ratio": "adaptive",
            "generate_audio": False,
        },
    }
    running = kie.get_task(KEY, task_id)
    assert running.state in (TaskState.WAITING, TaskState.QUEUING, TaskState.GENERATING)
    assert running.result_urls == ()
    assert running.fail_code is None and running.fail_msg is None  # "" or null, both None
    assert running.complete_time is None and isinstance(running.create_time, int)
    sim.finish_task(task_id)
    done = kie.get_task(KEY, task_id)
    assert done.state is TaskState.SUCCESS and done.state.finished
    assert len(done.result_urls) == 1 and done.result_urls[0].endswith(f"{task_id}.mp4")
    assert isinstance(done.complete_time, int)


def test_callback_url_is_sent_only_when_given(sim: RunningSimulator, kie: KieClient) -> None:
    sim.configure({"kie": {"callbacks": False}})  # nobody listens at hooks.example.test
    task_id = create(kie, callback_url="https://hooks.example.test/kie")
    assert sent_body(sim, task_id)["callBackUrl"] == "https://hooks.example.test/kie"
    # Each task carries its own URL (jobs.video.callbacks.callback_url); none means none is sent.
    task_id = create(kie, callback_url="https://hooks.example.test/kie?job=7")
    assert sent_body(sim, task_id)["callBackUrl"] == "https://hooks.example.test/kie?job=7"
    assert "callBackUrl" not in sent_body(sim, create(kie))
    # A model whose schema does not list callBackUrl never gets one.
    horse = create(kie, model="happyhorse-1-1/image-to-video", callback_url="https://h.test/k")
    assert "callBackUrl" not in sent_body(sim, horse)


def test_veo_has_its_own_endpoints_and_success_flag(sim: RunningSimulator, kie: KieClient) -> None:
    sim.configure({"kie": {"callbacks": False}})
    task_id = create(kie, model="veo3_fast", callback_url="https://hooks.example.test/kie")
    (call,) = [c for c in sim.calls("kie") if c["task_id"] == task_id]
    assert call["endpoint"] == "veoGenerate" and call["status"] == 200
    running = kie.get_task(KEY, task_id, family=Family.VEO)
    assert running.state is TaskState.GENERATING and running.result_urls == ()
    sim.finish_task(task_id)
    done = kie.get_task(KEY, task_id, family=Family.VEO)
    assert done.state is TaskState.SUCCESS and len(done.result_urls) == 1
    failed = create(kie, model="veo3_lite")
    sim.fail_task(failed)
    task = kie.get_task(KEY, failed, family=Family.VEO)
    assert task.state is TaskState.FAIL and task.failure().error_class in (
        ErrorClass.TEMPORARY,
        ErrorClass.USER_ERROR,
    )


def test_credits_consumed_is_read(sim: RunningSimulator, kie: KieClient) -> None:
    task_id = create(kie)
    sim.finish_task(task_id)
    assert kie.get_task(KEY, task_id).credits == 41.0


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        # A paused model: no task was made (the fallback may try another model).
        (Canned(200, {"code": 500, "msg": "This interface is temporarily paused"}), "UNAVAILABLE"),
        (Canned(500, {"code": 500, "msg": "This interface is temporarily paused"}), "UNAVAILABLE"),
        (
            Canned(200, {"code": 422, "msg": "The model name you specified is not supported."}),
            "UNAVAILABLE",
        ),
        (
            Canned(404, {"code": 404, "msg": "The model name you specified is not supported"}),
            "UNAVAILABLE",
        ),
        (Canned(200, {"code": 505, "msg": ""}), "UNAVAILABLE"),
        # A content-policy 422 is the user's, never a reason to try another model.
        (Canned(200, {"code": 422, "msg": "prompt contains prohibited content"}), "USER_ERROR"),
        (Canned(200, {"code": 500, "msg": "internal error, please try again later"}), "TEMPORARY"),
    ],
)
def test_what_proves_no_task_was_made(stub: Stub, answer: Canned, expected: str) -> None:
    stub.answer(answer)
    raises(ErrorClass(expected), create, client(stub.url))


def test_a_paused_answer_on_record_info_is_not_unavailable(stub: Stub) -> None:
    # Only a create answer proves no task: a poll of a task that exists stays TEMPORARY.
    stub.answer(Canned(200, {"code": 500, "msg": "This interface is temporarily paused"}))
    raises(ErrorClass.TEMPORARY, client(stub.url).get_task, KEY, "task_1")


def test_credit_balance(sim: RunningSimulator, kie: KieClient) -> None:
    assert kie.credit_balance(KEY) == 1000.0
    sim.configure({"kie": {"keys": {SECRET: {"credits": 7}}}})
    assert kie.credit_balance(KEY) == 7.0


# --- error classes, with the code in the body and as the HTTP status, msg and message -----------

SHAPES = [("body", "msg"), ("status", "message"), ("body", "message"), ("status", "msg")]


@pytest.mark.parametrize(("code_in_body", "message_key"), SHAPES)
def test_auth_401(
    sim: RunningSimulator, kie: KieClient, code_in_body: str, message_key: str
) -> None:
    sim.configure(
        {
            "kie": {
                "code_in_body": code_in_body,
                "message_key": message_key,
                "keys": {"another-secret-key": {}},
            }
        }
    )
    err = raises(ErrorClass.AUTH, create, kie, KEY, prompt="p", image_url=IMAGE)
    assert err.code == "401"
    assert err.status == (200 if code_in_body == "body" else 401)
    assert "access permissions" in err.message  # the message read from msg or message
    raises(ErrorClass.AUTH, kie.get_task, KEY, "task_x")
    raises(ErrorClass.AUTH, kie.credit_balance, KEY)


def test_revoked_key_is_auth(sim: RunningSimulator, kie: KieClient) -> None:
    sim.configure({"kie": {"keys": {SECRET: {"revoked": True}}}})
    raises(ErrorClass.AUTH, create, kie, KEY, prompt="p", image_url=IMAGE)


@pytest.mark.parametrize(("code_in_body", "message_key"), SHAPES[:2])
def test_billing_402(
    sim: RunningSimulator, kie: KieClient, code_in_body: str, message_key: str
) -> None:
    sim.configure(
        {
            "kie": {
                "code_in_body": code_in_body,
                "message_key": message_key,
                "keys": {SECRET: {"credits": 0}},
            }
        }
    )
    err = raises(ErrorClass.BILLING, create, kie, KEY, prompt="p", image_url=IMAGE)
    assert err.code == "402" and "Credits insufficient" in err.message


@pytest.mark.parametrize("code_in_body", ["body", "status"])
def test_validation_422_is_user_error(
    sim: RunningSimulator, kie: KieClient, code_in_body: str
) -> None:
    sim.configure({"kie": {"code_in_body": code_in_body}})
    err = raises(ErrorClass.USER_ERROR, create, kie, KEY, prompt="p", image_url="ftp://x/y.jpg")
    assert err.code == "422" and "first_frame_url" in err.message
    assert "could not accept" in err.user_message


def test_rate_limit_429_without_retry_after(sim: RunningSimulator, kie: KieClient) -> None:
    sim.configure({"kie": {"create_limit": 1, "create_window_seconds": 30}})
    create(kie, KEY, prompt="p", image_url=IMAGE)
    err = raises(ErrorClass.RATE_LIMIT, create, kie, KEY, prompt="p", image_url=IMAGE)
    assert err.status == 429 and err.retry_after is None


def test_rate_limit_fault_on_query(sim: RunningSimulator, kie: KieClient) -> None:
    sim.configure({"kie": {"rate_429": 1.0}})
    raises(ErrorClass.RATE_LIMIT, kie.get_task, KEY, "task_x")


def test_rate_limit_retry_after_header(stub: Stub) -> None:
    # Gap: the simulator never sends Retry-After on a KIE 429 (none is documented).
    stub.answer(Canned(429, {"code": 429, "msg": "slow down"}, headers={"Retry-After": "7"}))
    err = raises(ErrorClass.RATE_LIMIT, create, client(stub.url), KEY, prompt="p", image_url=IMAGE)
    assert err.retry_after == 7.0


@pytest.mark.parametrize("code_in_body", ["body", "status"])
def test_maintenance_455_is_temporary(
    sim: RunningSimulator, kie: KieClient, code_in_body: str
) -> None:
    sim.configure({"kie": {"rate_maintenance": 1.0, "code_in_body": code_in_body}})
    err = raises(ErrorClass.TEMPORARY, create, kie, KEY, prompt="p", image_url=IMAGE)
    assert err.code == "455"


@pytest.mark.parametrize(("code_in_body", "html"), [("body", 0.0), ("status", 0.0), ("body", 1.0)])
def test_server_error_is_temporary(
    sim: RunningSimulator, kie: KieClient, code_in_body: str, html: float
) -> None:
    sim.configure(
        {"kie": {"rate_5xx": 1.0, "html_error_share": html, "code_in_body": code_in_body}}
    )
    err = raises(ErrorClass.TEMPORARY, kie.get_task, KEY, "task_x")
    if html:
        assert err.status in (502, 503) and "non-JSON" in err.message
    else:
        assert err.code == "500"


@pytest.mark.parametrize("code", [505, 404])
def test_withdrawn_model_is_unavailable(sim: RunningSimulator, code: int) -> None:
    sim.configure(
        {
            "kie": {
                "withdrawn_models": [MODEL],
                "unavailable_model_code": code,
                "code_in_body": "status",
            }
        }
    )
    err = raises(
        ErrorClass.UNAVAILABLE, create, client(sim.kie_url), KEY, prompt="p", image_url=IMAGE
    )
    assert err.code == str(code) and "not published" in err.message
    assert "unavailable" in err.user_message


def test_unknown_model_is_unavailable(sim: RunningSimulator) -> None:
    unknown = dataclasses.replace(get_model(MODEL), id="no-such-model")
    raises(ErrorClass.UNAVAILABLE, create, client(sim.kie_url), model=unknown)


@pytest.mark.parametrize("code_in_body", ["body", "status"])
def test_unknown_task_404_is_temporary_then_internal(
    sim: RunningSimulator, kie: KieClient, code_in_body: str
) -> None:
    sim.configure({"kie": {"code_in_body": code_in_body}})
    err = raises(ErrorClass.TEMPORARY, kie.get_task, KEY, "task_missing")
    assert err.code == "404"
    raises(ErrorClass.INTERNAL, kie.get_task, KEY, "task_missing", not_found_before=True)


def test_create_404_without_json_is_unavailable(stub: Stub) -> None:
    # Gap: the simulator has no route-level 404 with an HTML page.
    stub.answer(
        Canned(404, "<html><body>The page does not exist or is not published</body></html>")
    )
    err = raises(ErrorClass.UNAVAILABLE, create, client(stub.url), KEY, prompt="p", image_url=IMAGE)
    assert err.status == 404


def test_not_published_message_under_any_code_is_unavailable(stub: Stub) -> None:
    stub.answer(
        Canned(200, {"code": 500, "message": "The page does not exist or is not published"})
    )
    raises(ErrorClass.UNAVAILABLE, create, client(stub.url), KEY, prompt="p", image_url=IMAGE)
    # ... but a 404 on recordInfo stays the "not found" rule unless it speaks of publishing.
    stub.answer(Canned(200, {"code": 404, "msg": "record does not exist"}))
    raises(ErrorClass.TEMPORARY, client(stub.url).get_task, KEY, "task_1")


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (Canned(403, {"code": 403, "msg": "Forbidden"}), ErrorClass.AUTH),
        (Canned(200, {"code": 403, "msg": None}), ErrorClass.AUTH),
        (Canned(200, {"code": 501, "msg": "Generation failed"}), ErrorClass.USER_ERROR),
        (Canned(501, {"code": 501, "message": "internal error"}), ErrorClass.TEMPORARY),
        (Canned(200, {"code": "505", "msg": ""}), ErrorClass.UNAVAILABLE),
        (Canned(503, {"code": 200, "msg": "success", "data": None}), ErrorClass.TEMPORARY),
        (Canned(400, {"code": 400, "msg": "bad request"}), ErrorClass.INTERNAL),
    ],
    ids=[
        "403-status",
        "403-body-null-msg",
        "501",
        "501-internal",
        "505-string",
        "503-body-200",
        "400",
    ],
)
def test_codes_the_simulator_does_not_send(
    stub: Stub, answer: Canned, expected: ErrorClass
) -> None:
    # Gap: the simulator never answers 403, 501 or 400 on a request, nor a string code.
    stub.answer(answer)
    raises(expected, create, client(stub.url))


# --- malformed answers, timeouts, connection errors -------------------------------------------


@pytest.mark.parametrize("endpoint", ["createTask", "recordInfo", "credit"])
def test_malformed_responses_are_temporary(
    sim: RunningSimulator, kie: KieClient, endpoint: str
) -> None:
    sim.configure({"kie": {"rate_malformed": 1.0}})
    calls = {
        "createTask": lambda: create(kie, KEY, prompt="p", image_url=IMAGE),
        "recordInfo": lambda: kie.get_task(KEY, "task_x"),
        "credit": lambda: kie.credit_balance(KEY),
    }
    for _ in range(8):  # the simulator draws among four malformed variants
        err = raises(ErrorClass.TEMPORARY, calls[endpoint])
        assert "malformed" in err.message or "non-JSON" in err.message
    faults = {c["fault"] for c in sim.calls("kie", endpoint)}
    assert len(faults) >= 2, faults


@pytest.mark.parametrize(
    "data",
    [None, "not-an-object", {"taskId": "t"}, {"taskId": "t", "state": 3}],
    ids=["null", "string", "no-state", "int-state"],
)
def test_malformed_record_shapes(stub: Stub, data: object) -> None:
    stub.answer(Canned(200, {"code": 200, "msg": "success", "data": data}))
    err = raises(ErrorClass.TEMPORARY, client(stub.url).get_task, KEY, "t")
    assert "malformed" in err.message


def test_non_json_200_is_temporary(stub: Stub) -> None:
    stub.answer(Canned(200, "<html>oops</html>"))
    raises(ErrorClass.TEMPORARY, client(stub.url).credit_balance, KEY)


def test_timeout_is_temporary(sim: RunningSimulator) -> None:
    sim.configure({"kie": {"rate_timeout": 1.0, "timeout_seconds": 2.0}})
    fast = client(sim.kie_url, timeout=SHORT_TIMEOUT)
    err = raises(ErrorClass.TEMPORARY, fast.get_task, KEY, "task_x")
    assert "timed out" in err.message and err.outcome_unknown


def test_create_timeout_says_the_task_may_exist(sim: RunningSimulator) -> None:
    sim.configure({"kie": {"rate_timeout": 1.0, "fault_endpoints": ["createTask"]}})
    fast = client(sim.kie_url, timeout=SHORT_TIMEOUT)
    err = raises(ErrorClass.TEMPORARY, create, fast, KEY, prompt="p", image_url=IMAGE)
    assert err.outcome_unknown
    assert len(sim.tasks()) == 1  # the simulator did create (and charge) it


def test_connection_refused_is_temporary() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    err = raises(ErrorClass.TEMPORARY, client(f"http://127.0.0.1:{port}").credit_balance, KEY)
    assert "ConnectError" in err.message and not err.outcome_unknown


def test_no_hidden_retries(sim: RunningSimulator, kie: KieClient) -> None:
    sim.configure({"kie": {"rate_5xx": 1.0}})
    raises(ErrorClass.TEMPORARY, create, kie, KEY, prompt="p", image_url=IMAGE)
    assert len(sim.calls("kie", "createTask")) == 1


# --- task states and failures ------------------------------------------------------------------


def test_policy_failure_is_returned_then_classified(sim: RunningSimulator, kie: KieClient) -> None:
    sim.configure({"kie": {"render_seconds": 0.0}})
    task_id = create(kie, KEY, prompt="a FORBIDDEN thing", image_url=IMAGE)
    task = kie.get_task(KEY, task_id)
    assert task.state is TaskState.FAIL and task.state.finished
    assert task.fail_code == "422" and "prohibited" in (task.fail_msg or "")
    err = task.failure()
    assert err.error_class is ErrorClass.USER_ERROR and err.key_name == KEY.name
    assert err.user_message == (
        "The video service refused this product image or description as not allowed."
    )
    assert "422" in err.message and "prohibited content" in err.message


def test_generation_failure_is_temporary(sim: RunningSimulator, kie: KieClient) -> None:
    sim.configure({"kie": {"render_seconds": 0.0, "rate_generation_fail": 1.0}})
    task = kie.get_task(KEY, create(kie, KEY, prompt="p", image_url=IMAGE))
    assert task.state is TaskState.FAIL
    assert task.failure().error_class is ErrorClass.TEMPORARY


@pytest.mark.parametrize(
    ("code", "msg", "expected"),
    [
        ("501", "Generation failed", ErrorClass.USER_ERROR),
        ("500", "Your image was flagged as sensitive", ErrorClass.USER_ERROR),
        ("400", "content violates our safety policy", ErrorClass.USER_ERROR),
        ("422", "Invalid image size", ErrorClass.USER_ERROR),
        ("501", "internal error, please try again", ErrorClass.TEMPORARY),
        ("", "", ErrorClass.TEMPORARY),
        ("999", "weird", ErrorClass.TEMPORARY),
    ],
)
def test_forced_failures(
    sim: RunningSimulator, kie: KieClient, code: str, msg: str, expected: ErrorClass
) -> None:
    task_id = create(kie, KEY, prompt="p", image_url=IMAGE)
    sim.fail_task(task_id, fail_code=code, fail_msg=msg)
    task = kie.get_task(KEY, task_id)
    assert task.state is TaskState.FAIL
    assert task.fail_code == (code or None) and task.fail_msg == (msg or None)
    assert task.failure().error_class is expected


def test_failure_of_a_running_task_is_a_bug() -> None:
    with pytest.raises(ValueError, match="not failed"):
        KieTask("t", TaskState.GENERATING).failure()


@pytest.mark.parametrize(
    ("code", "msg", "expected"),
    [
        ("422", "Invalid prompt: prompt contains prohibited content", ErrorClass.USER_ERROR),
        (None, "NSFW content detected", ErrorClass.USER_ERROR),
        ("500", "moderation blocked this request", ErrorClass.USER_ERROR),
        ("500", None, ErrorClass.TEMPORARY),
        (None, "Internal Error", ErrorClass.TEMPORARY),
        ("501", None, ErrorClass.USER_ERROR),
        ("505", "", ErrorClass.TEMPORARY),
    ],
)
def test_classify_task_failure_table(
    code: str | None, msg: str | None, expected: ErrorClass
) -> None:
    assert classify_task_failure(code, msg).error_class is expected


def _record(**data: object) -> Canned:
    base: dict[str, object] = {"taskId": "task_1", "state": "generating", "resultJson": ""}
    return Canned(200, {"code": 200, "msg": "success", "data": {**base, **data}})


def test_unknown_state_is_temporary(stub: Stub) -> None:
    # Gap: the simulator only reports the five documented states.
    stub.answer(_record(state="paused"))
    err = raises(ErrorClass.TEMPORARY, client(stub.url).get_task, KEY, "task_1")
    assert "unknown state" in err.message


def test_result_json_already_decoded_and_numbers_as_strings(stub: Stub) -> None:
    # Gap: the simulator always sends resultJson as a string.
    stub.answer(
        _record(
            state="SUCCESS",
            resultJson={"resultUrls": ["https://cdn.example.test/v.mp4"]},
            failCode=None,
            failMsg="",
            createTime="1700000000000",
            completeTime=1700000060000,
        )
    )
    task = client(stub.url).get_task(KEY, "task_1")
    assert task.state is TaskState.SUCCESS
    assert task.result_urls == ("https://cdn.example.test/v.mp4",)
    assert task.fail_code is None and task.fail_msg is None
    assert (task.create_time, task.complete_time) == (1700000000000, 1700000060000)


@pytest.mark.parametrize("result", ["", None, "{}", json.dumps({"resultUrls": []}), "not json"])
def test_success_without_result_url_is_temporary(stub: Stub, result: object) -> None:
    # Gap: the simulator always gives a successful task a result URL.
    stub.answer(_record(state="success", resultJson=result))
    err = raises(ErrorClass.TEMPORARY, client(stub.url).get_task, KEY, "task_1")
    assert "result" in err.message


def test_garbage_result_json_on_a_running_task_is_ignored(stub: Stub) -> None:
    stub.answer(_record(resultJson="not json", failCode="", failMsg=None, createTime=None))
    task = client(stub.url).get_task(KEY, "task_1")
    assert task.result_urls == () and task.create_time is None


def test_request_carries_bearer_key_and_explicit_timeout(stub: Stub) -> None:
    stub.answer(Canned(200, {"code": 200, "msg": "success", "data": 12.5}))
    kie = client(stub.url, timeout=3.0)
    assert kie.credit_balance(KEY) == 12.5
    assert stub.seen[0].headers["authorization"] == f"Bearer {SECRET}"
    assert kie.timeout == httpx.Timeout(connect=3.0, read=3.0, write=3.0, pool=3.0)


def test_from_settings(sim: RunningSimulator) -> None:
    settings = Settings(
        _env_file=None,
        kie_base_url=sim.kie_url,
        kie_api_keys=SecretStr(f"main={SECRET}"),
        kie_timeout=4.0,
    )
    kie = KieClient.from_settings(settings)
    task_id = create(kie, video_settings(settings).kie_keys[0], model="kling-2.6/image-to-video")
    body = sent_body(sim, task_id)
    assert body["model"] == "kling-2.6/image-to-video"
    assert body["input"]["duration"] == "5" and "callBackUrl" not in body
    assert kie.timeout.read == 4.0
    kie.close()
