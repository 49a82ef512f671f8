"""`worker webhooks` under hostile input (issue 22, findings 6 and 7): every request that cannot
be read is a 400 with no traceback, nothing changes, the warning limiter stays small, and slow or
idle clients are cut off before they can starve the server."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from jobs.video.callbacks import signature
from tests.conftest import PRODUCT, RunningWebhooks
from worker.client import Client
from worker.config import Settings, load_settings
from worker.db import Database
from worker.webhook_server import WARN_REASONS

TASK = "task_0123456789abcdef"
HMAC_KEY = "whk-hostile-0123456789"


def _job(client: Client, db: Database) -> int:
    """A video job waiting at its poll step for TASK (as the submit step leaves it)."""
    client.grant(7, 5)
    job = client.submit_video(user_id=7, product=PRODUCT).job_ids[0]
    db.fetchone(
        """UPDATE jobs SET status = 'queued', step = 'poll', provider_task_id = %s,
                  key_name = 'k1', next_run_at = now() + interval '10 min'
            WHERE id = %s RETURNING id""",
        (TASK, job),
    )
    return job


def _snapshot(db: Database, job: int) -> tuple[object, ...]:
    row = db.fetchone(
        "SELECT status, step, next_run_at, (SELECT count(*) FROM job_events e "
        "WHERE e.job_id = j.id) AS events FROM jobs j WHERE id = %s",
        (job,),
    )
    assert row is not None
    return tuple(row.values())


def _raw_post(url: str, query: str, body: bytes, **headers: str) -> httpx.Response:
    return httpx.post(
        f"{url}/callbacks/video/kie?{query}",
        content=body,
        headers={"content-type": "application/json", **headers},
    )


def _body(task: str) -> bytes:
    # json.dumps would escape; the hostile strings are written as JSON escapes by hand
    return b'{"code": 200, "data": {"taskId": "' + task.encode() + b'", "state": "success"}}'


HOSTILE = [
    pytest.param("job=%C2%B2", _body(TASK), id="superscript-two"),  # '²'.isdigit() is True
    pytest.param("job=" + "9" * 5000, _body(TASK), id="5000-digits"),
    pytest.param("job={job}", b"[" * 100_000 + b"]" * 100_000, id="nested-100k"),
    pytest.param("job={job}", b'{"data": ' * 50_000 + b"1" + b"}" * 50_000, id="nested-objects"),
    pytest.param("job={job}", _body("task_\\ud800"), id="lone-surrogate"),
    pytest.param("job={job}", _body("task_\\u0000x"), id="nul"),
    pytest.param("job={job}", _body("task_\\u202eevil"), id="bidi"),
    pytest.param("job={job}", b"\xff\xfe\x00", id="not-utf8"),
    pytest.param("job=%FF%FE", _body(TASK), id="bad-percent"),
]


@pytest.mark.parametrize(("query", "body"), HOSTILE)
def test_unreadable_callbacks_are_400_without_a_traceback(
    client: Client,
    db: Database,
    webhooks: RunningWebhooks,
    caplog: pytest.LogCaptureFixture,
    query: str,
    body: bytes,
) -> None:
    job = _job(client, db)
    before = _snapshot(db, job)
    caplog.set_level(logging.DEBUG)
    answer = _raw_post(webhooks.url, query.format(job=job), body)
    assert answer.status_code == 400, answer.text
    assert answer.json()["ok"] is False
    assert "Traceback" not in answer.text
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
    assert _snapshot(db, job) == before
    assert httpx.get(f"{webhooks.url}/healthz").status_code == 200


def test_unprintable_characters_in_the_state_are_dropped(
    client: Client, db: Database, webhooks: RunningWebhooks
) -> None:
    job = _job(client, db)
    body = b'{"data": {"taskId": "' + TASK.encode() + b'", "state": "succ\\u0000ess\\ud800"}}'
    answer = _raw_post(webhooks.url, f"job={job}", body)
    assert answer.status_code == 200, answer.text
    row = db.fetchone(
        "SELECT detail FROM job_events WHERE job_id = %s AND event = 'callback'", (job,)
    )
    assert row is not None and "task_0123456789abcdef is success;" in row["detail"]


def test_the_warning_limiter_keys_on_a_fixed_set_of_reasons(
    client: Client, db: Database, webhooks: RunningWebhooks
) -> None:
    job = _job(client, db)
    for n in range(300):
        _raw_post(webhooks.url, f"job={job + n}", _body(f"task_{n}\\u0000"))
        _raw_post(webhooks.url, f"job={n}x", _body(TASK))
    warned = webhooks.server._warned
    assert len(warned) <= len(WARN_REASONS) * len(webhooks.server.routes)
    assert all(reason in WARN_REASONS for _route, reason in warned)


def _signed(settings: Settings) -> Settings:
    return load_settings(
        database_url=settings.database_url,
        redis_url=settings.redis_url,
        redis_namespace=settings.redis_namespace,
        kie_webhook_hmac_key=HMAC_KEY,
        _env_file=None,
    )


@pytest.mark.parametrize("stamp", ["nan", "NaN", "inf", "-inf", "1e999"])
def test_a_non_finite_timestamp_is_refused(
    settings: Settings, client: Client, db: Database, stamp: str
) -> None:
    running = RunningWebhooks(_signed(settings))
    try:
        job = _job(client, db)
        before = _snapshot(db, job)
        answer = _raw_post(
            running.url,
            f"job={job}",
            _body(TASK),
            **{
                "X-Webhook-Timestamp": stamp,
                "X-Webhook-Signature": signature(HMAC_KEY, TASK, stamp),
            },
        )
        assert answer.status_code == 401, answer.text
        assert _snapshot(db, job) == before
    finally:
        running.stop()


# --- slow and idle clients ---------------------------------------------------------------------


@pytest.fixture
def strict(settings: Settings) -> Iterator[RunningWebhooks]:
    """The server with short limits, so a test sees them act in a second or two."""
    running = RunningWebhooks(settings, header_timeout=1.0, body_timeout=1.0, max_connections=8)
    yield running
    running.stop()


def _connect(running: RunningWebhooks) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", running.port), timeout=10)
    return s


def _closed_within(s: socket.socket, seconds: float) -> tuple[bool, bytes]:
    """Whether the server closed ``s`` within ``seconds``, and what it sent before."""
    s.settimeout(seconds)
    got = b""
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            chunk = s.recv(4096)
            if not chunk:
                return True, got
            got += chunk
    except TimeoutError:
        return False, got
    except ConnectionResetError:
        return True, got
    return False, got


def test_half_sent_headers_are_cut_off(strict: RunningWebhooks) -> None:
    s = _connect(strict)
    try:
        s.sendall(b"POST /callbacks/video/kie?job=1 HTTP/1.1\r\nHost: x\r\n")
        closed, _ = _closed_within(s, 5.0)
        assert closed
    finally:
        s.close()


def test_an_idle_connection_is_cut_off(strict: RunningWebhooks) -> None:
    s = _connect(strict)
    try:
        assert _closed_within(s, 5.0)[0]
    finally:
        s.close()


def test_a_body_sent_too_slowly_is_cut_off(strict: RunningWebhooks) -> None:
    s = _connect(strict)
    try:
        s.sendall(
            b"POST /callbacks/video/kie?job=1 HTTP/1.1\r\nHost: x\r\n"
            b'Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"data"'
        )
        closed, got = _closed_within(s, 5.0)
        assert closed, got
        assert got.startswith(b"HTTP/1.1 408"), got
    finally:
        s.close()


def test_connections_over_the_cap_are_refused_and_health_answers_after(
    strict: RunningWebhooks,
) -> None:
    idle = [_connect(strict) for _ in range(8)]
    try:
        time.sleep(0.2)
        extra = _connect(strict)
        try:
            closed, got = _closed_within(extra, 2.0)
            assert closed and got.startswith(b"HTTP/1.1 503"), got
        finally:
            extra.close()
    finally:
        for s in idle:
            s.close()
    time.sleep(0.3)
    assert httpx.get(f"{strict.url}/healthz").status_code == 200
