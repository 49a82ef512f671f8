"""`worker doctor` on broken setups: each failure names its fix, exit 1, fast, and no secrets."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from tests.conftest import PRODUCT
from worker import doctor as doc
from worker.broker import make_broker
from worker.cli.main import cli
from worker.client import Client
from worker.config import Settings, load_settings
from worker.db import Database
from worker.dispatch import Dispatcher

KIE_SECRET = "ops-doctor-kie-secret"
OPENAI_SECRET = "ops-doctor-openai-secret"
BOT = "424242:ops-doctor-bot-token-xyz"


@pytest.fixture
def env(settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """A configuration whose providers all point at a closed port (fails at once)."""
    monkeypatch.chdir(tmp_path)  # no stray .env
    for name in ("KIE_API_KEYS", "OPENAI_API_KEYS", "TELEGRAM_BOT_TOKEN", "SENTRY_DSN"):
        monkeypatch.delenv(name, raising=False)
    return {
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url,
        "REDIS_NAMESPACE": settings.redis_namespace,
        "STORAGE_DIR": str(tmp_path / "storage"),
        "KIE_API_KEYS": f"main={KIE_SECRET}",
        "OPENAI_API_KEYS": f"main={OPENAI_SECRET}",
        "TELEGRAM_BOT_TOKEN": BOT,
        "KIE_BASE_URL": "http://127.0.0.1:1",
        "OPENAI_BASE_URL": "http://127.0.0.1:1/v1",
        "TELEGRAM_API_URL": "http://127.0.0.1:1",
    }


def run(env: Mapping[str, str | None], *args: str) -> tuple[int, dict[str, Any], str]:
    started = time.monotonic()
    result = CliRunner().invoke(cli, ["doctor", "--json", "--instances", "2", *args], env=env)
    assert time.monotonic() - started < 8, "doctor must finish fast when things are down"
    for secret in (KIE_SECRET, OPENAI_SECRET, BOT, BOT.split(":")[1]):
        assert secret not in result.stdout and secret not in result.stderr
    return result.exit_code, json.loads(result.stdout), result.stderr


def checks(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in report["checks"]}


def test_unreachable_providers_fail_with_a_fix(env: dict[str, str]) -> None:
    code, report, _ = run(env)
    assert code == 1 and report["ok"] is False
    found = checks(report)
    for name in ("postgres", "migrations", "redis", "storage", "stuck jobs", "dead letters"):
        assert found[name]["ok"], found[name]
    for name, base in (
        ("kie key main", "KIE"),
        ("openai key main", "OpenAI"),
        ("telegram bot", "Telegram"),
    ):
        assert not found[name]["ok"]
        assert found[name]["fix"].startswith(f"Check the {base} base URL")


def test_missing_keys(env: dict[str, str]) -> None:
    code, report, _ = run(
        {**env, "KIE_API_KEYS": None, "OPENAI_API_KEYS": None, "TELEGRAM_BOT_TOKEN": None}
    )
    assert code == 1
    found = checks(report)
    for name, variable in (
        ("kie keys", "KIE_API_KEYS"),
        ("openai keys", "OPENAI_API_KEYS"),
        ("telegram token", "TELEGRAM_BOT_TOKEN"),
    ):
        assert not found[name]["ok"] and variable in found[name]["fix"]
    # nothing to call without keys
    assert not any(n.startswith(("kie key ", "openai key ", "telegram bot")) for n in found)


def test_unreachable_redis(env: dict[str, str]) -> None:
    code, report, _ = run({**env, "REDIS_URL": "redis://127.0.0.1:1/0"})
    assert code == 1
    found = checks(report)
    assert not found["redis"]["ok"] and "REDIS_URL" in found["redis"]["fix"]
    for name in ("dead letters", "kie key states", "openai key states"):
        assert not found[name]["ok"] and found[name]["detail"].startswith("not checked")
    assert found["postgres"]["ok"]


def test_unreachable_postgres(env: dict[str, str], tmp_path: Path) -> None:
    code, report, _ = run({**env, "DATABASE_URL": "postgresql://postgres@127.0.0.1:1/worker"})
    assert code == 1
    found = checks(report)
    assert not found["postgres"]["ok"] and "DATABASE_URL" in found["postgres"]["fix"]
    assert found["migrations"]["detail"].startswith("not checked")
    assert found["redis"]["ok"]


def test_unwritable_storage(env: dict[str, str], tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")  # root can write anywhere, but not below a file
    code, report, _ = run({**env, "STORAGE_DIR": str(blocker / "storage")})
    assert code == 1
    storage = checks(report)["storage"]
    assert not storage["ok"] and "not writable" in storage["detail"]
    assert "STORAGE_DIR" in storage["fix"]


def test_connection_budget(env: dict[str, str]) -> None:
    code, report, _ = run(env, "--instances", "500")
    connections = checks(report)["connections"]
    assert code == 1 and not connections["ok"]
    assert "(500 instance(s) × 3 + 6 webhooks and CLI)" in connections["detail"]  # DB_POOL_MAX
    assert "max_connections" in connections["fix"] and "PgBouncer" in connections["fix"]


def test_configuration_error_is_a_finding(env: dict[str, str]) -> None:
    code, report, _ = run({**env, "KIE_API_KEYS": "bad name=x"})
    assert code == 1
    assert [c["name"] for c in report["checks"]] == ["configuration"]
    assert "KIE_API_KEYS" in report["checks"][0]["detail"]


def test_stuck_jobs_fail_and_dead_letters_warn(
    settings: Settings, client: Client, db: Database, env: dict[str, str]
) -> None:
    client.grant(3, 5)
    job = client.submit_video(user_id=3, chat_id=3, product=PRODUCT, count=1).job_ids[0]
    db.fetchone(
        "UPDATE jobs SET next_run_at = now() - interval '6 minutes' WHERE id = %s RETURNING id",
        (job,),
    )
    broker = make_broker(settings)
    try:
        broker.declare_queue("notify")
        Dispatcher(broker).send("notify", job, "failure")
        consumer = broker.consume("notify", timeout=1000)
        message = next(consumer)
        assert message is not None
        consumer.nack(message)
        consumer.close()
    finally:
        broker.close()

    code, report, _ = run(env)
    assert code == 1
    found = checks(report)
    stuck = found["stuck jobs"]
    assert not stuck["ok"] and f"job {job}" in stuck["detail"]
    assert "worker.target" in stuck["fix"]
    dead = found["dead letters"]
    assert dead["ok"] and dead["warning"] and "notify: 1" in dead["detail"]
    assert f"{settings.redis_namespace}:q:notify.XQ" in dead["fix"]


def test_checks_are_data(settings: Settings) -> None:
    s = load_settings(
        database_url=settings.database_url,
        redis_url=settings.redis_url,
        redis_namespace=settings.redis_namespace,
        storage_dir=str(settings.storage_dir),
        kie_api_keys="",
        openai_api_keys="",
        telegram_bot_token="",
        _env_file=None,
    )
    found = doc.run_checks(s, instances=1, timeout=1.0)
    assert all(isinstance(c, doc.Check) for c in found)
    assert {c.level for c in found} <= {"ok", "warn", "fail"}
    assert [c.name for c in found if not c.ok] == ["kie keys", "openai keys", "telegram token"]


# --- provider callbacks ---------------------------------------------------------------------


def test_doctor_says_when_callbacks_cannot_reach_worker_webhooks(env: dict[str, str]) -> None:
    code, report, _ = run({**env, "KIE_CALLBACK_URL": "http://127.0.0.1:1/callbacks/video/kie"})
    check = checks(report)["callbacks video/kie"]
    assert code == 1 and not check["ok"]
    assert "does not answer" in check["detail"]
    assert "worker webhooks" in check["fix"] and "KIE_CALLBACK_URL" in check["fix"]


def test_doctor_finds_worker_webhooks_behind_the_callback_url(
    env: dict[str, str], settings: Settings
) -> None:
    from tests.conftest import RunningWebhooks

    running = RunningWebhooks(settings)
    try:
        url = f"{running.url}/callbacks/video/kie"
        _, report, _ = run({**env, "KIE_CALLBACK_URL": url})
        unsigned = checks(report)["callbacks video/kie"]
        assert unsigned["ok"] and unsigned["warning"]
        assert "not signed" in unsigned["detail"] and "KIE_WEBHOOK_HMAC_KEY" in unsigned["fix"]
        # A URL that answers, but not as `worker webhooks` (the proxy routes elsewhere).
        _, report, _ = run({**env, "KIE_CALLBACK_URL": f"{running.url}/healthz"})
        elsewhere = checks(report)["callbacks video/kie"]
        assert not elsewhere["ok"] and "not as `worker webhooks`" in elsewhere["detail"]
    finally:
        running.stop()
    signed_settings = load_settings(
        database_url=settings.database_url,
        redis_url=settings.redis_url,
        redis_namespace=settings.redis_namespace,
        kie_webhook_hmac_key="doctor-hmac-key",
        _env_file=None,
    )
    running = RunningWebhooks(signed_settings)
    try:
        _, report, _ = run(
            {
                **env,
                "KIE_CALLBACK_URL": f"{running.url}/callbacks/video/kie",
                "KIE_WEBHOOK_HMAC_KEY": "doctor-hmac-key",
            }
        )
        signed = checks(report)["callbacks video/kie"]
        assert signed["ok"] and not signed["warning"] and "must be signed" in signed["detail"]
        assert "doctor-hmac-key" not in json.dumps(report)
    finally:
        running.stop()


def test_doctor_does_not_look_for_callbacks_when_they_are_off(env: dict[str, str]) -> None:
    _, report, _ = run(env)
    assert not [name for name in checks(report) if name.startswith("callbacks")]
