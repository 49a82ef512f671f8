"""KIE callbacks from the simulator, received over real HTTP (no mocks).

A small aiohttp receiver runs on its own event loop in a thread and records every POST (headers,
raw body, arrival time); it can answer 500 to the first N POSTs or answer slowly. One simulator
runs in a thread for the whole module and both are reset before every test. Render times are
fractions of a second; only the retry test waits for the simulator's 1 s and 2 s back-offs.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from aiohttp import web

from simulator.config import SimConfig
from simulator.testing import RunningSimulator, start_in_thread
from tests.simulator.conftest import FORBIDDEN_MSG, MODEL, VALID_INPUT

HMAC_KEY = "whsec-test-0123456789"
#: Slack for a callback's arrival after the moment it is due (thread hops, a loaded CI machine).
LATE = 0.5


# --- the receiver --------------------------------------------------------------------------------


@dataclass
class Arrival:
    at: float
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class Receiver:
    """A webhook endpoint in a thread that records every POST and answers as told."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._arrivals: list[Arrival] = []
        #: Answer 500 to this many POSTs (counted from the last reset), then 200.
        self.fail_first = 0
        #: Seconds to wait before answering.
        self.delay = 0.0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        with self._lock:
            arrival = Arrival(time.time(), request.path, dict(request.headers), body)
            self._arrivals.append(arrival)
            failing = len(self._arrivals) <= self.fail_first
        if self.delay:
            await asyncio.sleep(self.delay)
        return web.Response(status=500 if failing else 200, text="noted")

    async def _start(self) -> str:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        return f"http://127.0.0.1:{self._runner.addresses[0][1]}"

    def start(self) -> None:
        self._thread.start()
        base = asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(5)
        self.url = f"{base}/kie/callback"

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    def reset(self) -> None:
        with self._lock:
            self._arrivals.clear()
            self.fail_first = 0
            self.delay = 0.0

    def arrivals(self) -> list[Arrival]:
        with self._lock:
            return list(self._arrivals)

    def wait(self, count: int, limit: float = 2.0) -> list[Arrival]:
        """The arrivals once there are ``count`` of them; fails after ``limit`` seconds."""
        deadline = time.monotonic() + limit
        while len(self.arrivals()) < count:
            assert time.monotonic() < deadline, f"{len(self.arrivals())} of {count} callbacks"
            time.sleep(0.01)
        return self.arrivals()


# --- fixtures and helpers ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    running = Receiver()
    running.start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def sim() -> Iterator[RunningSimulator]:
    config = SimConfig.from_dict(
        {
            "seed": 7,
            "kie": {
                "render_seconds": 0.3,
                "code_in_body": "status",
                "message_key": "msg",
                "query_limit": 0,
            },
        }
    )
    with start_in_thread(config) as running:
        yield running


@pytest.fixture(autouse=True)
def fresh(sim: RunningSimulator, receiver: Receiver) -> None:
    sim.reset()
    receiver.reset()


def create(
    client: httpx.Client, callback_url: str | None, prompt: str = "A red ceramic mug"
) -> str:
    body: dict[str, Any] = {"model": MODEL, "input": {"prompt": prompt, **VALID_INPUT}}
    if callback_url is not None:
        body["callBackUrl"] = callback_url
    response = client.post("/api/v1/jobs/createTask", json=body)
    assert response.status_code == 200, response.text
    task_id: str = response.json()["data"]["taskId"]
    return task_id


def record_info(client: httpx.Client, task_id: str) -> dict[str, Any]:
    response = client.get("/api/v1/jobs/recordInfo", params={"taskId": task_id})
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


def same_data(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` with empty fields as ``None``: KIE sends ``""`` or ``null`` for them, either way."""
    return {k: (None if v == "" else v) for k, v in data.items()}


def eventually(check: Callable[[], bool], limit: float = 3.0) -> None:
    deadline = time.monotonic() + limit
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def settled(sim: RunningSimulator) -> dict[str, int]:
    """The callback stats once no callback is pending any more (every record is final)."""
    eventually(lambda: sim.stats()["callbacks"]["pending"] == 0)
    result: dict[str, int] = sim.stats()["callbacks"]
    return result


def verifies(arrival: Arrival, key: str = HMAC_KEY) -> bool:
    """Check the signature as a receiver would, with the standard library only."""
    task_id = arrival.json()["data"]["taskId"]
    timestamp = arrival.headers["X-Webhook-Timestamp"]
    digest = hmac.new(key.encode(), f"{task_id}.{timestamp}".encode(), hashlib.sha256).digest()
    return hmac.compare_digest(
        base64.b64encode(digest).decode(), arrival.headers["X-Webhook-Signature"]
    )


# --- delivery ------------------------------------------------------------------------------------


def test_success_callback_is_the_record_info_answer(
    sim: RunningSimulator, receiver: Receiver, kie: httpx.Client
) -> None:
    task_id = create(kie, receiver.url)
    [arrival] = receiver.wait(1)
    body = arrival.json()
    now = record_info(kie, task_id)
    assert body["code"] == 200 and body["msg"] == "success"
    assert set(body) == {"code", "msg", "data"}
    assert list(body["data"]) == list(now)
    assert same_data(body["data"]) == same_data(now)
    assert body["data"]["state"] == "success"
    urls = json.loads(body["data"]["resultJson"])["resultUrls"]
    assert urls == json.loads(now["resultJson"])["resultUrls"] == [f"{sim.url}/files/{task_id}.mp4"]

    created = sim.task(task_id)["created_at"]
    assert 0.3 - 0.02 <= arrival.at - created <= 0.3 + LATE
    assert arrival.path == "/kie/callback"
    assert arrival.headers["Content-Type"].startswith("application/json")
    assert "X-Webhook-Signature" not in arrival.headers
    assert "X-Webhook-Timestamp" not in arrival.headers

    assert settled(sim) == {"attempts": 1, "delivered": 1, "failed": 0, "lost": 0, "pending": 0}
    [record] = sim.callbacks(task_id=task_id)
    assert record["url"] == receiver.url and record["attempt"] == 1
    assert (record["status"], record["error"], record["fault"]) == (200, None, None)
    assert record["signed"] is False and record["duration_ms"] >= 0
    assert sim.task(task_id)["callbacks"] == 1
    # Outbound: not a provider call.
    assert [c["endpoint"] for c in sim.calls()] == ["createTask", "recordInfo"]
    time.sleep(0.2)
    assert len(receiver.arrivals()) == 1


def test_signed_callback_verifies(
    sim: RunningSimulator, receiver: Receiver, kie: httpx.Client
) -> None:
    sim.configure({"kie": {"webhook_hmac_key": HMAC_KEY, "render_seconds": 0.1}})
    create(kie, receiver.url)
    [arrival] = receiver.wait(1)
    timestamp = arrival.headers["X-Webhook-Timestamp"]
    assert timestamp.isdigit() and abs(int(timestamp) - arrival.at) <= 2
    assert len(base64.b64decode(arrival.headers["X-Webhook-Signature"], validate=True)) == 32
    assert verifies(arrival)
    assert not verifies(arrival, key="another-key")
    settled(sim)
    assert sim.callbacks()[0]["signed"] is True


def test_result_url_uses_the_public_url(
    sim: RunningSimulator, receiver: Receiver, kie: httpx.Client
) -> None:
    sim.configure({"kie": {"render_seconds": 0.05, "public_url": "https://cdn.example/"}})
    task_id = create(kie, receiver.url)
    [arrival] = receiver.wait(1)
    urls = json.loads(arrival.json()["data"]["resultJson"])["resultUrls"]
    assert urls == [f"https://cdn.example/files/{task_id}.mp4"]


@pytest.mark.parametrize(
    ("patch", "prompt", "code", "message", "after"),
    [
        ({}, "A mug that is FORBIDDEN", "422", FORBIDDEN_MSG, 0.03),
        (
            {"rate_generation_fail": 1, "render_seconds": 0.2},
            "A mug",
            "500",
            "internal error, please try again later",
            0.2,
        ),
    ],
    ids=["content_policy", "generation_fail"],
)
def test_planned_failure_calls_back_with_fail(
    sim: RunningSimulator,
    receiver: Receiver,
    kie: httpx.Client,
    patch: dict[str, Any],
    prompt: str,
    code: str,
    message: str,
    after: float,
) -> None:
    sim.configure({"kie": patch})
    task_id = create(kie, receiver.url, prompt=prompt)
    [arrival] = receiver.wait(1)
    assert (arrival.json()["code"], arrival.json()["msg"]) == (501, message)
    data = arrival.json()["data"]
    assert data["state"] == "fail"
    assert (data["failCode"], data["failMsg"]) == (code, message)
    assert data["resultJson"] in ("", None)
    assert same_data(data) == same_data(record_info(kie, task_id))
    assert after - 0.02 <= arrival.at - sim.task(task_id)["created_at"] <= after + LATE


def test_admin_finish_and_fail_call_back_at_once(
    sim: RunningSimulator, receiver: Receiver, kie: httpx.Client
) -> None:
    sim.configure({"kie": {"render_seconds": 0.6}})
    done, failed = create(kie, receiver.url), create(kie, receiver.url)
    assert sim.stats()["callbacks"]["pending"] == 2
    started = time.time()
    sim.finish_task(done)
    sim.fail_task(failed, "501", "generation failed")
    first, second = receiver.wait(2)
    assert max(first.at, second.at) - started < 0.3
    by_task = {a.json()["data"]["taskId"]: a.json()["data"] for a in (first, second)}
    assert by_task[done]["state"] == "success"
    assert (by_task[failed]["state"], by_task[failed]["failCode"]) == ("fail", "501")
    assert by_task[failed]["failMsg"] == "generation failed"
    # The callbacks planned for the end of the 0.6 s renders never come.
    time.sleep(0.6 + 0.2)
    assert len(receiver.arrivals()) == 2
    assert settled(sim)["attempts"] == 2


def test_zero_render_time_calls_back_at_once(
    sim: RunningSimulator, receiver: Receiver, kie: httpx.Client
) -> None:
    sim.configure({"kie": {"render_seconds": 0}})
    task_id = create(kie, receiver.url)
    [arrival] = receiver.wait(1, limit=LATE)
    assert arrival.json()["data"]["state"] == "success"
    assert arrival.json()["data"]["taskId"] == task_id


def test_delay_before_the_first_post(
    sim: RunningSimulator, receiver: Receiver, kie: httpx.Client
) -> None:
    sim.configure({"kie": {"render_seconds": 0.1, "callback_delay_seconds": 0.4}})
    task_id = create(kie, receiver.url)
    time.sleep(0.25)
    assert record_info(kie, task_id)["state"] == "success"
    assert receiver.arrivals() == [] and sim.stats()["callbacks"]["pending"] == 1
    [arrival] = receiver.wait(1)
    assert 0.5 - 0.02 <= arrival.at - sim.task(task_id)["created_at"] <= 0.5 + LATE


# --- faults --------------------------------------------------------------------------------------


def test_lost_callback_is_never_sent(
    sim: RunningSimulator, receiver: Receiver, kie: httpx.Client
) -> None:
    sim.configure({"kie": {"render_seconds": 0.05, "rate_callback_lost": 1}})
    task_id = create(kie, receiver.url)
    eventually(lambda: sim.callbacks() != [])
    assert settled(sim) == {"attempts": 0, "delivered": 0, "failed": 0, "lost": 1, "pending": 0}
    [record] = sim.callbacks()
    assert (record["task_id"], record["fault"], record["status"]) == (task_id, "lost", None)
    assert record["attempt"] == 0
    time.sleep(0.2)
    assert receiver.arrivals() == []
    assert sim.task(task_id)["callbacks"] == 0


def test_duplicate_callback_repeats_the_body(
    sim: RunningSimulator, receiver: Receiver, kie: httpx.Client
) -> None:
    sim.configure(
        {
            "kie": {
                "render_seconds": 0.05,
                "rate_callback_duplicate": 1,
                "webhook_hmac_key": HMAC_KEY,
            }
        }
    )
    task_id = create(kie, receiver.url)
    first, second = receiver.wait(2, limit=2.5)
    assert first.body == second.body
    assert 0.2 - 0.02 <= second.at - first.at <= 1.0 + LATE
    assert verifies(first) and verifies(second)
    assert settled(sim)["attempts"] == 2
    records = sim.callbacks(task_id=task_id)
    assert [(r["attempt"], r["fault"], r["status"]) for r in records] == [
        (1, None, 200),
        (2, "duplicate", 200),
    ]
    assert sim.task(task_id)["callbacks"] == 2


def test_bad_signature_does_not_verify(
    sim: RunningSimulator, receiver: Receiver, kie: httpx.Client
) -> None:
    sim.configure(
        {
            "kie": {
                "render_seconds": 0.05,
                "webhook_hmac_key": HMAC_KEY,
                "rate_callback_bad_signature": 1,
            }
        }
    )
    create(kie, receiver.url)
    [arrival] = receiver.wait(1)
    assert arrival.headers["X-Webhook-Timestamp"].isdigit()
    assert len(base64.b64decode(arrival.headers["X-Webhook-Signature"], validate=True)) == 32
    assert not verifies(arrival)
    settled(sim)
    [record] = sim.callbacks()
    assert (record["fault"], record["signed"], record["status"]) == ("bad_signature", True, 200)


def test_bad_signature_needs_a_key(
    sim: RunningSimulator, receiver: Receiver, kie: httpx.Client
) -> None:
    sim.configure({"kie": {"render_seconds": 0.05, "rate_callback_bad_signature": 1}})
    create(kie, receiver.url)
    [arrival] = receiver.wait(1)
    assert "X-Webhook-Signature" not in arrival.headers
    settled(sim)
    assert sim.callbacks()[0]["fault"] is None


def test_failed_posts_are_retried_with_backoff(
    sim: RunningSimulator, receiver: Receiver, kie: httpx.Client
) -> None:
    sim.configure({"kie": {"render_seconds": 0}})
    receiver.fail_first = 2
    task_id = create(kie, receiver.url)
    first, second, third = receiver.wait(3, limit=3.0 + 2 * LATE)
    assert first.body == second.body == third.body
    assert 1.0 - 0.05 <= second.at - first.at <= 1.0 + LATE
    assert 2.0 - 0.05 <= third.at - second.at <= 2.0 + LATE
    assert settled(sim) == {"attempts": 3, "delivered": 1, "failed": 2, "lost": 0, "pending": 0}
    records = sim.callbacks(task_id=task_id)
    assert [(r["attempt"], r["status"]) for r in records] == [(1, 500), (2, 500), (3, 200)]
    assert sim.task(task_id)["callbacks"] == 3


def test_no_retries(sim: RunningSimulator, receiver: Receiver, kie: httpx.Client) -> None:
    sim.configure({"kie": {"render_seconds": 0, "callback_retries": 0}})
    receiver.fail_first = 5
    create(kie, receiver.url)
    receiver.wait(1)
    assert settled(sim) == {"attempts": 1, "delivered": 0, "failed": 1, "lost": 0, "pending": 0}
    [record] = sim.callbacks()
    assert (record["attempt"], record["status"], record["error"]) == (1, 500, None)


def test_slow_or_down_receivers_fail_without_slowing_the_simulator(
    sim: RunningSimulator, receiver: Receiver, kie: httpx.Client
) -> None:
    sim.configure(
        {"kie": {"render_seconds": 0, "callback_retries": 0, "callback_timeout_seconds": 0.3}}
    )
    receiver.delay = 1.0
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    slow = [create(kie, receiver.url) for _ in range(5)]
    down = create(kie, f"http://127.0.0.1:{closed_port}/cb")
    started = time.monotonic()
    assert kie.get("/api/v1/chat/credit").status_code == 200
    assert record_info(kie, slow[0])["state"] == "success"
    assert time.monotonic() - started < 0.2
    assert settled(sim) == {"attempts": 6, "delivered": 0, "failed": 6, "lost": 0, "pending": 0}
    for task_id in slow:
        [record] = sim.callbacks(task_id=task_id)
        assert (record["status"], record["error"]) == (None, "timeout")
        assert 300 - 50 <= record["duration_ms"] <= 300 + 1000 * LATE
    [refused] = sim.callbacks(task_id=down)
    assert refused["status"] is None and refused["error"]


def test_request_faults_never_hit_callbacks(
    sim: RunningSimulator, receiver: Receiver, kie: httpx.Client
) -> None:
    sim.configure(
        {"kie": {"render_seconds": 0, "rate_5xx": 1, "fault_endpoints": ["recordInfo", "credit"]}}
    )
    create(kie, receiver.url)
    [arrival] = receiver.wait(1)
    assert arrival.json()["code"] == 200
    assert settled(sim)["delivered"] == 1
    assert sim.stats()["faults"] == {}


def test_seeded_runs_lose_the_same_callbacks(
    sim: RunningSimulator, receiver: Receiver, kie: httpx.Client
) -> None:
    def run() -> list[bool]:
        sim.reset()
        sim.configure({"seed": 42, "kie": {"render_seconds": 0, "rate_callback_lost": 0.5}})
        tasks = []
        for _ in range(12):
            tasks.append(create(kie, receiver.url))
            eventually(lambda: len(sim.callbacks(task_id=tasks[-1])) == 1)
        settled(sim)
        return [sim.callbacks(task_id=t)[0]["fault"] == "lost" for t in tasks]

    first = run()
    assert first == run()
    assert set(first) == {True, False}


# --- switches, reset, configuration --------------------------------------------------------------


def test_callbacks_switched_off_send_nothing(
    sim: RunningSimulator, receiver: Receiver, kie: httpx.Client
) -> None:
    sim.configure({"kie": {"render_seconds": 0.05, "callbacks": False}})
    task_id = create(kie, receiver.url)
    sim.finish_task(task_id)
    assert sim.stats()["callbacks"]["pending"] == 0
    # Switched off while a callback waits: it is dropped when due.
    sim.configure({"kie": {"callbacks": True, "render_seconds": 0.2}})
    create(kie, receiver.url)
    sim.configure({"kie": {"callbacks": False}})
    time.sleep(0.4)
    assert receiver.arrivals() == [] and sim.callbacks() == []
    assert settled(sim)["attempts"] == 0


def test_no_callback_without_a_url(
    sim: RunningSimulator, receiver: Receiver, kie: httpx.Client
) -> None:
    sim.configure({"kie": {"render_seconds": 0}})
    create(kie, None)
    assert sim.stats()["callbacks"]["pending"] == 0
    time.sleep(0.1)
    assert receiver.arrivals() == [] and sim.callbacks() == []


def test_reset_cancels_pending_callbacks_and_retries(
    sim: RunningSimulator, receiver: Receiver, kie: httpx.Client
) -> None:
    sim.configure({"kie": {"render_seconds": 0.4}})
    create(kie, receiver.url)
    assert sim.stats()["callbacks"]["pending"] == 1
    sim.reset()
    assert sim.stats()["callbacks"]["pending"] == 0
    time.sleep(0.6)
    assert receiver.arrivals() == []

    sim.configure({"kie": {"render_seconds": 0}})
    receiver.fail_first = 1
    create(kie, receiver.url)
    receiver.wait(1)
    eventually(lambda: sim.callbacks() != [] and sim.callbacks()[0]["status"] == 500)
    assert sim.stats()["callbacks"]["pending"] == 1  # waiting 1 s to retry
    sim.reset()
    time.sleep(1.2)
    assert len(receiver.arrivals()) == 1
    assert sim.callbacks() == [] and sim.stats()["callbacks"]["attempts"] == 0


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"callback_delay_seconds": -1}, "kie.callback_delay_seconds"),
        ({"callback_retries": -1}, "kie.callback_retries"),
        ({"callback_timeout_seconds": 0}, "kie.callback_timeout_seconds"),
        ({"rate_callback_lost": 1.5}, "kie.rate_callback_lost"),
        ({"rate_callback_duplicate": -0.1}, "kie.rate_callback_duplicate"),
        ({"rate_callback_bad_signature": 2}, "kie.rate_callback_bad_signature"),
        ({"webhook_hmac_key": ""}, "kie.webhook_hmac_key"),
        ({"webhook_hmac_key": 5}, "kie.webhook_hmac_key"),
        ({"callbacks": "yes"}, "kie.callbacks"),
        ({"callback_retries": 1.5}, "kie.callback_retries"),
    ],
)
def test_config_validation(sim: RunningSimulator, patch: dict[str, Any], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        sim.configure({"kie": patch})
    with pytest.raises(ValueError, match=field):
        SimConfig.from_dict({"kie": patch})


def test_config_defaults() -> None:
    kie = SimConfig().kie
    assert kie.callbacks is True and kie.webhook_hmac_key is None
    assert (kie.callback_delay_seconds, kie.callback_timeout_seconds) == (0.0, 5.0)
    assert kie.callback_retries == 2
    assert kie.rate_callback_lost == kie.rate_callback_duplicate == 0.0
    assert kie.rate_callback_bad_signature == 0.0


# --- admin API -----------------------------------------------------------------------------------


def test_admin_callbacks_filters_and_stats(
    sim: RunningSimulator, receiver: Receiver, kie: httpx.Client
) -> None:
    sim.configure({"kie": {"render_seconds": 0}})
    first = create(kie, receiver.url)
    receiver.wait(1)
    second = create(kie, receiver.url)
    receiver.wait(2)
    assert settled(sim) == {"attempts": 2, "delivered": 2, "failed": 0, "lost": 0, "pending": 0}
    records = sim.callbacks()
    assert [r["task_id"] for r in records] == [first, second]
    assert records[0]["seq"] < records[1]["seq"]
    assert set(records[0]) == {
        "seq",
        "at",
        "task_id",
        "url",
        "attempt",
        "status",
        "error",
        "fault",
        "signed",
        "duration_ms",
    }
    assert sim.callbacks(task_id=second) == [records[1]]
    assert sim.callbacks(since=records[0]["seq"]) == [records[1]]
    assert sim.callbacks(task_id=first, since=records[0]["seq"]) == []
    assert sim.callbacks(task_id="task_nope") == []
    assert {t["task_id"]: t["callbacks"] for t in sim.tasks()} == {first: 1, second: 1}
    with pytest.raises(httpx.HTTPStatusError):
        sim.callbacks(since="later")  # type: ignore[arg-type]


# --- Veo 3.1 callbacks ---------------------------------------------------------------------------


def veo_body(callback_url: str, prompt: str = "A red ceramic mug") -> dict[str, Any]:
    return {
        "prompt": prompt,
        "imageUrls": ["https://example.com/product.png"],
        "model": "veo3_fast",
        "aspect_ratio": "9:16",
        "callBackUrl": callback_url,
    }


def create_veo(client: httpx.Client, callback_url: str, prompt: str = "A red ceramic mug") -> str:
    response = client.post("/api/v1/veo/generate", json=veo_body(callback_url, prompt))
    assert response.status_code == 200, response.text
    task_id: str = response.json()["data"]["taskId"]
    return task_id


def test_veo_success_callback(sim: RunningSimulator, receiver: Receiver, kie: httpx.Client) -> None:
    sim.configure({"kie": {"webhook_hmac_key": HMAC_KEY}})
    task_id = create_veo(kie, receiver.url)
    [arrival] = receiver.wait(1)
    assert verifies(arrival)  # signed as Market callbacks are: taskId + "." + timestamp
    url = f"{sim.url}/files/{task_id}.mp4"
    assert arrival.json() == {
        "code": 200,
        "msg": "Veo3.1 video generated successfully.",
        "data": {
            "taskId": task_id,
            "info": {"resultUrls": [url], "originUrls": [url], "resolution": "720p"},
            "promptJson": veo_body(receiver.url),
            "fallbackFlag": False,
        },
    }
    record = kie.get("/api/v1/veo/record-info", params={"taskId": task_id}).json()["data"]
    assert record["successFlag"] == 1 and record["response"]["resultUrls"] == [url]


@pytest.mark.parametrize(
    ("prompt", "patch", "code", "message"),
    [
        (
            "A FORBIDDEN replica",
            {},
            400,
            "Your prompt was flagged by Website as violating content policies",
        ),
        ("A mug", {"rate_generation_fail": 1}, 500, "internal error, please try again later"),
    ],
    ids=["refused", "failed"],
)
def test_veo_failure_callback(
    sim: RunningSimulator,
    receiver: Receiver,
    kie: httpx.Client,
    prompt: str,
    patch: dict[str, Any],
    code: int,
    message: str,
) -> None:
    sim.configure({"kie": patch})
    task_id = create_veo(kie, receiver.url, prompt=prompt)
    [arrival] = receiver.wait(1)
    assert arrival.json() == {"code": code, "msg": message, "data": {"taskId": task_id}}
