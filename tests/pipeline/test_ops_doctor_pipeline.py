"""`worker doctor` against the simulator: a healthy setup, then broken provider keys."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from tests.pipeline.conftest import BOT_TOKEN, Pipeline
from worker.cli.main import cli

SECRETS = ("sim-kie-1", "sim-kie-2", "sim-openai-1", BOT_TOKEN, BOT_TOKEN.split(":")[1])


def doctor(
    pipeline: Pipeline, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *args: str
) -> tuple[int, dict[str, Any], str]:
    monkeypatch.chdir(tmp_path)  # no stray .env
    started = time.monotonic()
    result = CliRunner().invoke(cli, ["doctor", "--instances", "2", *args], env=pipeline.env)
    assert time.monotonic() - started < 10
    for secret in SECRETS:
        assert secret not in result.stdout and secret not in result.stderr
    if "--json" in args:
        return result.exit_code, json.loads(result.stdout), result.stderr
    return result.exit_code, {}, result.stdout


def by_name(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in report["checks"]}


def test_healthy_setup(pipeline: Pipeline, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    code, report, _ = doctor(pipeline, tmp_path, monkeypatch, "--json")
    assert code == 0, report
    assert report["ok"] is True
    assert all(set(c) >= {"name", "ok", "detail", "fix"} for c in report["checks"])
    checks = by_name(report)
    assert set(checks) == {
        "kie keys",
        "openai keys",
        "telegram token",
        "postgres",
        "migrations",
        "connections",
        "stuck jobs",
        "redis",
        "dead letters",
        "kie key states",
        "openai key states",
        "kie key k1",
        "kie key k2",
        "openai key o1",
        "telegram bot",
        "storage",
        "video backlog",
    }
    assert all(c["ok"] and not c["warning"] for c in report["checks"]), report
    assert "balance 1000 credits" in checks["kie key k1"]["detail"]
    # The balance in videos: 1000 // 41 (Seedance 2 Mini, the default chain's first model).
    assert "about 24 videos of tier standard" in checks["kie key k1"]["detail"]
    assert "gpt-4o-mini among them" in checks["openai key o1"]["detail"]
    assert checks["telegram bot"]["detail"].startswith("getMe answered: @")
    assert "2 instance(s)" in checks["connections"]["detail"]
    assert "answers in" in checks["redis"]["detail"]

    code, _, out = doctor(pipeline, tmp_path, monkeypatch)
    assert code == 0 and "all 17 checks passed" in out


def test_broken_provider_keys(
    pipeline: Pipeline, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pipeline.sim.configure(
        {
            "kie": {"keys": {"sim-kie-1": {"credits": 40}, "sim-kie-2": {"revoked": True}}},
            "openai": {"keys": {"sim-openai-1": {"quota_exhausted": True}}},
            "telegram": {"bot_token": "999:another-token-entirely"},
        }
    )
    code, report, _ = doctor(pipeline, tmp_path, monkeypatch, "--json")
    assert code == 1 and report["ok"] is False
    checks = by_name(report)

    low = checks["kie key k1"]
    assert low["ok"] and low["warning"] and "below 100" in low["detail"]
    assert "Top up the KIE account of key k1" in low["fix"]

    revoked = checks["kie key k2"]
    assert not revoked["ok"] and "rejected key k2" in revoked["detail"]
    assert "KIE_API_KEYS" in revoked["fix"] and "worker keys enable k2" in revoked["fix"]

    quota = checks["openai key o1"]
    assert not quota["ok"] and "BILLING" in quota["detail"]
    assert "Top up the OpenAI account of key o1" in quota["fix"]

    bot = checks["telegram bot"]
    assert not bot["ok"] and "TELEGRAM_BOT_TOKEN" in bot["fix"]

    for name in ("postgres", "redis", "storage", "kie keys", "openai keys"):
        assert checks[name]["ok"], checks[name]

    code, _, out = doctor(pipeline, tmp_path, monkeypatch)
    assert code == 1 and "3 of 17 checks failed" in out and "fix:" in out
