"""Provider callbacks on real PostgreSQL and Redis: what a callback wakes (``worker.webhooks``),
and `worker webhooks` over real HTTP (``worker.webhook_server``), KIE's reading and signature
(``jobs.video.callbacks``) included. The whole pipeline with the simulator calling back is in
tests/pipeline/test_callbacks.py."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import threading
import time
from typing import Any

import httpx
import pytest
import redis

from jobs.video.callbacks import SIGNATURE_TOLERANCE_SECONDS, callback_url, read, signature
from tests.conftest import PRODUCT, REDIS_URL, RunningWebhooks
from worker.client import Client
from worker.config import Settings, load_settings
from worker.db import AsyncDatabase, Database
from worker.kinds import get_kind
from worker.webhooks import Wake, WebhookRejected, WebhookRequest, wake

TASK = "task_0123456789abcdef"
HMAC_KEY = "whk-test-0123456789"


def _job(client: Client, user: int = 7) -> int:
    client.grant(user, 5)
    return client.submit_video(user_id=user, product=PRODUCT).job_ids[0]


def _place(
    db: Database,
    job_id: int,
    *,
    status: str,
    step: str,
    task: str | None = TASK,
    due: bool = False,
) -> None:
    """Put a job where a test needs it (as the steps would have left it)."""
    running = status == "running"
    finished = status in ("succeeded", "failed", "cancelled")
    db.fetchone(
        """UPDATE jobs SET status = %(status)s, step = %(step)s, provider_task_id = %(task)s,
                  key_name = CASE WHEN %(task)s::text IS NULL THEN NULL ELSE 'k1' END,
                  next_run_at = now() + CASE WHEN %(due)s THEN interval '-1 s'
                                             ELSE interval '10 min' END,
                  lease_owner = CASE WHEN %(running)s THEN 'test' END,
                  lease_expires_at = CASE WHEN %(running)s THEN now() + interval '1 min' END,
                  finished_at = CASE WHEN %(finished)s THEN now() END
            WHERE id = %(id)s RETURNING id""",
        {
            "status": status,
            "step": step,
            "task": task,
            "due": due,
            "running": running,
            "finished": finished,
            "id": job_id,
        },
    )


def _wake(settings: Settings, w: Wake, wait: float = 0.0, during: Any = None) -> str:
    """``wake`` on its own pool; ``during`` runs in a thread meanwhile (a step finishing)."""

    async def go() -> str:
        adb = await AsyncDatabase(settings.database_url, min_size=1, max_size=2).open()
        try:
            return await wake(adb, get_kind("video"), w, wait_seconds=wait)
        finally:
            await adb.close()

    if during is not None:
        threading.Timer(0.15, during).start()
    return asyncio.run(go())


def _w(job_id: int, task: str = TASK) -> Wake:
    return Wake(job_id, "poll", task, detail=f"KIE called back: task {task} is success")


def _events(db: Database, job_id: int) -> list[dict[str, Any]]:
    return db.fetchall(
        "SELECT event, detail, data FROM job_events WHERE job_id = %s ORDER BY id", (job_id,)
    )


# --- what a callback wakes ------------------------------------------------------------------


def test_a_callback_makes_the_waiting_poll_due_now_once(
    settings: Settings, db: Database, client: Client
) -> None:
    job = _job(client)
    _place(db, job, status="queued", step="poll")
    assert _wake(settings, _w(job)) == "woken"
    row = db.fetchone("SELECT next_run_at <= now() AS due, state FROM jobs WHERE id = %s", (job,))
    assert row is not None and row["due"] and "callback_at" in row["state"]
    (event,) = [e for e in _events(db, job) if e["event"] == "callback"]
    assert event["detail"] == f"KIE called back: task {TASK} is success"
    assert event["data"]["task_id"] == TASK
    # KIE may call back twice: the second finds the job due already and changes nothing.
    assert _wake(settings, _w(job)) == "due"
    assert [e["event"] for e in _events(db, job)].count("callback") == 1


@pytest.mark.parametrize(
    ("status", "step", "task", "outcome"),
    [
        ("queued", "poll", "task_of_an_earlier_generation", "stale"),
        ("queued", "deliver", TASK, "moved"),
        ("running", "deliver", TASK, "moved"),
        ("queued", "submit", None, "moved"),  # a resubmission is waiting to create its task
        ("running", "prompt", None, "moved"),
        ("succeeded", "deliver", TASK, "finished"),
        ("failed", "poll", TASK, "finished"),
    ],
)
def test_a_callback_wakes_nothing_that_does_not_wait_for_its_task(
    settings: Settings,
    db: Database,
    client: Client,
    status: str,
    step: str,
    task: str | None,
    outcome: str,
) -> None:
    job = _job(client)
    _place(db, job, status=status, step=step, task=task)
    before = db.fetchone("SELECT next_run_at, state, updated_at FROM jobs WHERE id = %s", (job,))
    assert _wake(settings, _w(job)) == outcome
    after = db.fetchone("SELECT next_run_at, state, updated_at FROM jobs WHERE id = %s", (job,))
    assert after == before
    assert "callback" not in [e["event"] for e in _events(db, job)]


def test_unknown_jobs_and_other_kinds_are_unknown(
    settings: Settings, db: Database, client: Client
) -> None:
    job = _job(client)
    _place(db, job, status="queued", step="poll")
    assert _wake(settings, _w(job + 1000)) == "unknown"
    db.fetchone("UPDATE jobs SET kind = 'report' WHERE id = %s RETURNING id", (job,))
    assert _wake(settings, _w(job)) == "unknown"


def test_a_callback_during_the_poll_of_its_task_wakes_the_job_once_the_poll_reschedules(
    settings: Settings, db: Database, client: Client
) -> None:
    """The safety-net poll runs, finds the task still rendering and reschedules itself for two
    minutes later, just as the callback arrives: the callback waits for that write."""
    job = _job(client)
    _place(db, job, status="running", step="poll")
    assert _wake(settings, _w(job)) == "running"  # no wait: it says so at once

    def poll_reschedules() -> None:
        _place(db, job, status="queued", step="poll")

    assert _wake(settings, _w(job), wait=5.0, during=poll_reschedules) == "woken"
    row = db.fetchone("SELECT next_run_at <= now() AS due FROM jobs WHERE id = %s", (job,))
    assert row is not None and row["due"]


def test_a_callback_before_its_task_is_recorded_waits_for_the_submit_step(
    settings: Settings, db: Database, client: Client
) -> None:
    """A task that ends at once can call back before createTask's answer is committed."""
    job = _job(client)
    _place(db, job, status="running", step="submit", task=None)

    def submit_records_the_task() -> None:
        _place(db, job, status="queued", step="poll")

    assert _wake(settings, _w(job), wait=5.0, during=submit_records_the_task) == "woken"


def test_a_step_that_keeps_running_is_left_to_the_safety_net(
    settings: Settings, db: Database, client: Client
) -> None:
    job = _job(client)
    _place(db, job, status="running", step="poll")
    started = time.monotonic()
    assert _wake(settings, _w(job), wait=0.4) == "running"
    assert time.monotonic() - started < 2.0


# --- KIE's callbacks: the URL, the body, the signature -----------------------------------------


def _settings(settings: Settings, **overrides: Any) -> Settings:
    return load_settings(
        database_url=settings.database_url,
        redis_url=settings.redis_url,
        redis_namespace=settings.redis_namespace,
        _env_file=None,
        **overrides,
    )


def test_the_callback_url_names_the_job(settings: Settings) -> None:
    assert callback_url(settings, 42) is None  # callbacks off
    on = _settings(settings, kie_callback_url="https://bot.example.com/callbacks/video/kie")
    assert callback_url(on, 42) == "https://bot.example.com/callbacks/video/kie?job=42"
    kept = _settings(settings, kie_callback_url="https://h.example.com/cb?route=kie&job=9")
    assert callback_url(kept, 42) == "https://h.example.com/cb?route=kie&job=42"


def _request(
    job: str | None = "42",
    data: Any = None,
    headers: dict[str, str] | None = None,
    raw: bytes | None = None,
    at: float | None = None,
) -> WebhookRequest:
    body = (
        raw
        if raw is not None
        else json.dumps(
            {
                "code": 200,
                "msg": "success",
                "data": data if data is not None else {"taskId": TASK, "state": "success"},
            }
        ).encode()
    )
    return WebhookRequest(
        headers={k.lower(): v for k, v in (headers or {}).items()},
        query={} if job is None else {"job": job},
        body=body,
        received_at=at if at is not None else time.time(),
    )


def test_kie_callbacks_are_read_into_a_wake(settings: Settings) -> None:
    w = read(_request(), settings)
    assert (w.job_id, w.step, w.provider_task_id) == (42, "poll", TASK)
    assert "is success" in w.detail
    # The documentation's example code reads data.task_id.
    assert (
        read(_request(data={"task_id": TASK, "state": "fail"}), settings).provider_task_id == TASK
    )


@pytest.mark.parametrize(
    ("request_", "reason"),
    [
        (_request(job=None), "no job="),
        (_request(job="abc"), "not a job id"),
        (_request(job="0"), "not a job id"),
        (_request(raw=b"<html>"), "not JSON"),
        (_request(raw=b"[1, 2]"), "no data"),
        (_request(data={"state": "success"}), "taskId"),
        (_request(data={"taskId": 12345}), "taskId"),
    ],
)
def test_unreadable_callbacks_are_refused_with_400(
    settings: Settings, request_: WebhookRequest, reason: str
) -> None:
    with pytest.raises(WebhookRejected) as err:
        read(request_, settings)
    assert err.value.status == 400 and reason in err.value.reason


def test_signed_callbacks_must_carry_kies_signature(settings: Settings) -> None:
    signed = _settings(settings, kie_webhook_hmac_key=HMAC_KEY)
    now = time.time()
    ts = str(int(now))
    good = {"X-Webhook-Timestamp": ts, "X-Webhook-Signature": signature(HMAC_KEY, TASK, ts)}
    assert read(_request(headers=good, at=now), signed).provider_task_id == TASK
    # The same vector, computed here from the documented formula.
    import base64
    import hashlib
    import hmac as hmac_lib

    expected = base64.b64encode(
        hmac_lib.new(HMAC_KEY.encode(), f"{TASK}.{ts}".encode(), hashlib.sha256).digest()
    ).decode()
    assert good["X-Webhook-Signature"] == expected

    refused = [
        {},  # not signed
        {"X-Webhook-Timestamp": ts},
        {**good, "X-Webhook-Signature": signature("another-key", TASK, ts)},
        {**good, "X-Webhook-Signature": "not base64!"},
        {**good, "X-Webhook-Timestamp": "yesterday"},
        {  # a replay: a valid signature from long ago
            "X-Webhook-Timestamp": str(int(now - SIGNATURE_TOLERANCE_SECONDS - 60)),
            "X-Webhook-Signature": signature(
                HMAC_KEY, TASK, str(int(now - SIGNATURE_TOLERANCE_SECONDS - 60))
            ),
        },
    ]
    for headers in refused:
        with pytest.raises(WebhookRejected) as err:
            read(_request(headers=headers, at=now), signed)
        assert err.value.status == 401
        assert HMAC_KEY not in err.value.reason
    # A signature for another task does not carry over.
    other = {"X-Webhook-Timestamp": ts, "X-Webhook-Signature": signature(HMAC_KEY, "task_x", ts)}
    with pytest.raises(WebhookRejected):
        read(_request(headers=other, at=now), signed)


# --- `worker webhooks` over HTTP ---------------------------------------------------------------


def _wakeups(settings: Settings) -> list[tuple[str, list[Any]]]:
    """The wake-up messages waiting on the video queue: (actor, args)."""
    r = redis.Redis.from_url(REDIS_URL)
    try:
        raw = r.hvals(f"{settings.redis_namespace}:q:video.msgs")
    finally:
        r.close()
    return [(m["actor_name"], m["args"]) for m in (json.loads(v) for v in raw)]


def _post(url: str, job: int | str, task: str = TASK, **headers: str) -> httpx.Response:
    body = {"code": 200, "msg": "success", "data": {"taskId": task, "state": "success"}}
    return httpx.post(f"{url}/callbacks/video/kie", params={"job": job}, json=body, headers=headers)


def _until(predicate: Any, timeout: float = 5.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := predicate()) and time.monotonic() < deadline:
        time.sleep(0.02)
    return value


def test_the_server_wakes_the_job_and_sends_its_wake_up(
    settings: Settings, db: Database, client: Client, webhooks: RunningWebhooks
) -> None:
    job = _job(client)
    _place(db, job, status="queued", step="poll")
    answer = _post(webhooks.url, job)
    assert answer.status_code == 200 and answer.json() == {"ok": True}
    assert _until(lambda: ("video.poll", [job]) in _wakeups(settings))
    # A duplicate is answered the same way and sends nothing more.
    assert _post(webhooks.url, job).json() == {"ok": True}
    time.sleep(0.2)
    assert _wakeups(settings).count(("video.poll", [job])) == 1
    # What it woke is not told: an unknown job gets the same answer.
    assert _post(webhooks.url, job + 999).json() == {"ok": True}


def test_the_server_refuses_what_it_cannot_read(
    client: Client, db: Database, webhooks: RunningWebhooks
) -> None:
    job = _job(client)
    _place(db, job, status="queued", step="poll")
    bad = httpx.post(f"{webhooks.url}/callbacks/video/kie", params={"job": job}, content=b"nope")
    assert bad.status_code == 400 and bad.json() == {"ok": False, "error": "the body is not JSON"}
    assert httpx.post(f"{webhooks.url}/callbacks/video/kie", json={}).status_code == 400
    assert httpx.post(f"{webhooks.url}/callbacks/video/other", json={}).status_code == 404
    big = httpx.post(
        f"{webhooks.url}/callbacks/video/kie", params={"job": job}, content=b"x" * (2 << 20)
    )
    assert big.status_code == 413
    row = db.fetchone("SELECT next_run_at > now() AS waiting FROM jobs WHERE id = %s", (job,))
    assert row is not None and row["waiting"]


def test_the_server_answers_its_probe_and_health(webhooks: RunningWebhooks) -> None:
    probe = httpx.get(f"{webhooks.url}/callbacks/video/kie")
    assert probe.status_code == 200
    assert probe.json() == {"webhook": "video/kie", "signed": False}
    health = httpx.get(f"{webhooks.url}/healthz")
    assert health.status_code == 200 and health.json() == {"ok": True, "problems": []}


def test_a_signed_server_refuses_unsigned_callbacks(
    settings: Settings, db: Database, client: Client
) -> None:
    signed = _settings(settings, kie_webhook_hmac_key=HMAC_KEY)
    running = RunningWebhooks(signed)
    try:
        job = _job(client)
        _place(db, job, status="queued", step="poll")
        assert _post(running.url, job).status_code == 401
        ts = str(int(time.time()))
        forged = _post(
            running.url,
            job,
            **{"X-Webhook-Timestamp": ts, "X-Webhook-Signature": signature("guess", TASK, ts)},
        )
        assert forged.status_code == 401
        assert "callback" not in [e["event"] for e in _events(db, job)]
        good = _post(
            running.url,
            job,
            **{"X-Webhook-Timestamp": ts, "X-Webhook-Signature": signature(HMAC_KEY, TASK, ts)},
        )
        assert good.status_code == 200
        assert "callback" in [e["event"] for e in _events(db, job)]
        assert httpx.get(f"{running.url}/callbacks/video/kie").json()["signed"] is True
    finally:
        running.stop()


def test_without_its_database_the_server_asks_for_the_callback_again(
    client: Client, db: Database, webhooks: RunningWebhooks
) -> None:
    job = _job(client)
    _place(db, job, status="queued", step="poll")
    webhooks.call(webhooks.server.db.close())
    answer = _post(webhooks.url, job)
    assert answer.status_code == 503 and answer.json()["ok"] is False
    assert httpx.get(f"{webhooks.url}/healthz").status_code == 503


def test_worker_webhooks_serves_until_sigterm_and_exits_0(
    settings: Settings, tmp_path: Any
) -> None:
    env = {
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url,
        "REDIS_NAMESPACE": settings.redis_namespace,
        "PATH": "/usr/bin:/bin",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "worker.cli.main", "webhooks", "--port", "0"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("webhooks listening on http://127.0.0.1:"), line
        url = line.split()[-1]
        assert httpx.get(f"{url}/healthz").status_code == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
